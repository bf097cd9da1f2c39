"""``kubesft wait`` (and ``run --wait``): a progress bar drawn from the SFTJob's status.

The bar's step, loss and ETA are what the operator copied from the trainer into
``status.progress``; each phase change is printed as a line, so a log of the run (or a CI job
without a terminal) still shows what happened.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from kubesft.client import Client
from kubesft.commands.show import eta, number
from kubesft.job import SFTJob


class StatusBar:
    """A rich progress bar fed with SFTJobs; a line per phase change."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[steps]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.phase: str | None = None
        self.started = False

    def __enter__(self) -> StatusBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()

    def update(self, job: SFTJob) -> None:
        status = job.status
        phase = (status.phase if status else None) or "Pending"
        if phase != self.phase:
            reason = self._reason(job)
            # Not wrapped: a log of the run keeps one line per phase.
            self.console.print(f"{job.name}: {phase}{reason}", soft_wrap=True)
            self.phase = phase
        progress = status.progress if status else None
        if progress is None:
            return
        total = progress.total_steps
        steps = f"{progress.step}/{total}" if total else f"{progress.step} steps"
        loss = number(progress.loss)
        left = eta(job)
        if self.task is None:
            # The bar starts with the first progress report: a job that fails before training,
            # or an error before any status, leaves no empty bar behind.
            self.progress.start()
            self.started = True
            self.task = self.progress.add_task(
                job.name, total=total, completed=progress.step, steps=steps, loss=loss, eta=left
            )
        else:
            self.progress.update(
                self.task, total=total, completed=progress.step, steps=steps, loss=loss, eta=left
            )

    @staticmethod
    def _reason(job: SFTJob) -> str:
        if job.status is None or not job.status.phase:
            return ""
        condition = job.condition(job.status.phase)
        if condition is None or not condition.message:
            return ""
        return (
            f" ({condition.reason}: {condition.message})" if condition.reason else f" ({condition.message})"
        )


def follow(client: Client, name: str, namespace: str | None, timeout: float | None) -> int:
    """Wait with a progress bar; 0 when the job Succeeded, 1 when it Failed (its reason printed)."""
    with StatusBar() as bar:
        job = client.wait(name, namespace, timeout=timeout, callback=bar.update)
    if job.phase == "Succeeded":
        output = job.status.output_uri if job.status else None
        print(f"SFTJob {job.name} succeeded" + (f"; model in {output}" if output else ""))
        return 0
    print(f"SFTJob {job.name} failed: {job.failure() or 'no Failed condition'}", file=sys.stderr)
    return 1
