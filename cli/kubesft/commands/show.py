"""Text for ``kubesft list`` and ``kubesft status``, from the typed SFTJob and its events."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from kubesft.client import Event
from kubesft.job import SFTJob
from kubesft_api.times import parse_time

LAST_EVENTS = 8
KEY_WIDTH = 16


def human_duration(seconds: float) -> str:
    """An age as kubectl prints one (apimachinery's HumanDuration): 90s, 3m20s, 45m, 5h30m, 2d3h."""
    secs = max(0, int(seconds))
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    # (below this many seconds, the larger unit and its count, the smaller one's remainder or None)
    for limit, big, count, small, rest in (
        (120, "s", secs, "", None),
        (600, "m", mins, "s", secs % 60),
        (10800, "m", mins, "", None),
        (28800, "h", hours, "m", mins % 60),
        (172800, "h", hours, "", None),
        (691200, "d", days, "h", hours % 24),
        (730 * 86400, "d", days, "", None),
        (2920 * 86400, "y", days // 365, "d", days % 365),
    ):
        if secs < limit:
            return f"{count}{big}" + (f"{rest}{small}" if rest else "")
    return f"{days // 365}y"


def age(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    if moment is None:
        return "-"
    now = now or datetime.datetime.now(datetime.UTC)
    return human_duration((now - moment).total_seconds())


def created(job: SFTJob) -> datetime.datetime | None:
    return parse_time((job.raw.get("metadata") or {}).get("creationTimestamp"))


def eta(job: SFTJob) -> str:
    """The operator's ETA text while the job trains (what ``kubectl get -o wide`` shows); a
    suspended or finished job keeps the last one, which no longer means anything."""
    return (job.status.eta_text if job.status and job.phase == "Running" else None) or "-"


def progress_text(job: SFTJob) -> str:
    """The operator's ``step/total (percent)``, as the PROGRESS column of ``kubectl get``."""
    return (job.status.progress_text if job.status else None) or "-"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def job_table(
    jobs: Iterable[SFTJob], *, namespaces: bool = False, now: datetime.datetime | None = None
) -> str:
    header = ["NAME", "PHASE", "PROGRESS", "LOSS", "ETA", "RESTARTS", "AGE"]
    rows = [["NAMESPACE", *header] if namespaces else header]
    for job in jobs:
        status = job.status
        progress = status.progress if status else None
        row = [
            job.name,
            job.phase or "-",
            progress_text(job),
            number(progress.loss if progress else None),
            eta(job),
            str(status.restarts if status else 0),
            age(created(job), now),
        ]
        rows.append([job.namespace or "-", *row] if namespaces else row)
    return table(rows)


def _flat(prefix: str, value: Any) -> list[str]:
    """A nested status field as ``a.b value`` items, for fields this client has no model for."""
    if isinstance(value, dict):
        return [
            item
            for key, inner in value.items()
            for item in _flat(f"{prefix}.{key}" if prefix else key, inner)
        ]
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    return [f"{prefix} {shown}" if prefix else shown]


def status_text(job: SFTJob, events: Sequence[Event], now: datetime.datetime | None = None) -> str:
    status = job.status
    lines: list[tuple[str, str]] = [("Name", job.name), ("Namespace", job.namespace or "-")]
    if status is None:
        lines.append(("Phase", "- (the operator has not seen it yet)"))
    else:
        lines.append(
            ("Phase", f"{status.phase or '-'} (attempt {status.attempt}, restarts {status.restarts})")
        )
        if status.stage:
            lines.append(("Stage", status.stage))
        if status.validation is not None:
            lines.append(("Validation", status.validation.summary()))
        lines += _extra_fields(job)
        progress = status.progress
        if progress is not None:
            epoch = f", epoch {progress.epoch:.2f}" if progress.epoch is not None else ""
            lines.append(("Progress", progress_text(job) + epoch))
            loss = number(progress.loss)
            if progress.eval_loss is not None:
                loss += f" (eval {number(progress.eval_loss)})"
            lines.append(("Loss", loss))
            if progress.learning_rate is not None:
                lines.append(("Learning rate", f"{progress.learning_rate:.3g}"))
            if progress.tokens_per_second is not None:
                lines.append(("Throughput", f"{progress.tokens_per_second:,.0f} tokens/s"))
            if job.phase == "Running":
                lines.append(("ETA", eta(job)))
            if progress.resumed_from_step is not None:
                lines.append(("Resumed from", f"step {progress.resumed_from_step}"))
            failures = progress.checkpoint_upload_failures
            if failures or progress.checkpoint_status:
                note = [f"{failures} checkpoint uploads failed"] if failures else []
                lines.append(("Storage", "; ".join([*note, progress.checkpoint_status or ""]).strip("; ")))
        lines.append(("Started", status.start_time or "-"))
        if status.completion_time:
            lines.append(("Completed", status.completion_time))
        lines.append(
            ("Checkpoint", status.latest_checkpoint or job.spec.checkpoints.uri or "- (inside the pod only)")
        )
        lines.append(("Output", status.output_uri or job.spec.output.uri or "-"))
        if status.progress is not None and status.progress.mlflow_run_url:
            lines.append(("MLflow run", status.progress.mlflow_run_url))
    if status is None:
        lines.append(("Output", job.spec.output.uri or "-"))
    out = [f"{key + ':':<{KEY_WIDTH - 1}} {value}" for key, value in lines]
    if status is not None and status.conditions:
        out.append("Conditions:")
        reasons = max(len(condition.reason) for condition in status.conditions)
        for condition in status.conditions:
            text = f"  {condition.type:<10} {condition.status:<6} {condition.reason:<{reasons}}"
            out.append(f"{text}  {condition.message}".rstrip())
    out.append(f"Events (last {LAST_EVENTS}):" if events else "Events: none")
    for event in list(events)[-LAST_EVENTS:]:
        count = f" (x{event.count})" if event.count > 1 else ""
        out.append(
            f"  {age(event.time, now):>6} ago  {event.type:<8} {event.reason:<18} {event.message}{count}"
        )
    return "\n".join(out)


def _extra_fields(job: SFTJob) -> list[tuple[str, str]]:
    """Status fields from a newer operator (a stage, validation figures): shown as they are."""
    extra = job.extra_status()
    return [(key[0].upper() + key[1:], ", ".join(_flat("", extra[key]))) for key in sorted(extra)]
