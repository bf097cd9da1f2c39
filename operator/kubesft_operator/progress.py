"""Training progress: read from rank 0's ``/progress`` and turned into status fields.

The trainer pods have no API access; the operator reads them over the pod network instead.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import aiohttp
from pydantic import ValidationError

from kubesft_api.pod_contract import PROGRESS_PATH
from kubesft_api.progress import ProgressReport

logger = logging.getLogger(__name__)


def progress_text(report: ProgressReport) -> str:
    """``420/1000 (42%)``, or ``420 steps`` while the total is unknown."""
    if not report.total_steps:
        return f"{report.step} steps"
    percent = math.floor(100 * min(report.step, report.total_steps) / report.total_steps)
    return f"{report.step}/{report.total_steps} ({percent}%)"


def eta_text(seconds: float | None) -> str | None:
    """A short duration for ``kubectl get -o wide``: 45s, 12m, 1h05m, 2d3h."""
    if seconds is None or not math.isfinite(seconds):
        return None
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _comparable(progress: dict[str, Any] | None) -> dict[str, Any]:
    """The report's values without its timestamp, which changes on every read."""
    return {k: v for k, v in (progress or {}).items() if k != "updatedAt" and v is not None}


def progress_patch(status: dict[str, Any], report: ProgressReport) -> dict[str, Any] | None:
    """Status fields to write for ``report``, or None when its values are those already shown."""
    progress = report.model_dump(mode="json", by_alias=True, exclude_none=True)
    if _comparable(progress) == _comparable(status.get("progress")):
        return None
    patch: dict[str, Any] = {
        "progress": progress,
        "progressText": progress_text(report),
        "etaText": eta_text(report.eta_seconds),
    }
    if report.latest_checkpoint:
        patch["latestCheckpoint"] = report.latest_checkpoint
    return patch


def finished_progress(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """Progress of a job that succeeded: every planned step is done, nothing is left."""
    if not progress or not progress.get("totalSteps"):
        return progress
    return {**progress, "step": progress["totalSteps"], "percent": 100.0, "etaSeconds": 0.0}


async def fetch_progress(
    session: aiohttp.ClientSession, pod_ip: str, port: int, timeout: float
) -> ProgressReport | None:
    """Rank 0's report, or None when it cannot be read now (starting, saving, gone)."""
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    url = f"http://{host}:{port}{PROGRESS_PATH}"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                logger.debug("GET %s: HTTP %s", url, response.status)
                return None
            return ProgressReport.model_validate(await response.json(content_type=None))
    except (aiohttp.ClientError, TimeoutError, ValueError, ValidationError) as exc:
        logger.debug("GET %s failed: %s", url, exc)
        return None
