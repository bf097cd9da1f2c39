"""Training progress: read from rank 0's ``/progress`` and turned into status fields.

The trainer pods have no API access; the operator reads them over the pod network instead. A pod
may run a tenant's image, so what it answers is bounded and checked before anything is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import aiohttp
from pydantic import ValidationError

from kubesft_api.pod_contract import PROGRESS_PATH
from kubesft_api.progress import ProgressReport

logger = logging.getLogger(__name__)

MAX_PROGRESS_BYTES = 64 * 1024
"""A report is a few hundred bytes; a pod that sends more is not sending one."""
_REPORT_FIELDS = frozenset(field.alias or name for name, field in ProgressReport.model_fields.items())
STAGE_TEXT = {
    "Validating": "validating",
    "DownloadingModel": "downloading the model",
    "DownloadingData": "downloading the data",
    "Tokenizing": "tokenizing the data",
    "Training": "training",
    "Evaluating": "evaluating",
    "SavingCheckpoint": "saving a checkpoint",
    "UploadingOutput": "uploading the output",
}
"""Each stage as the Running condition says it."""


def progress_text(report: ProgressReport) -> str:
    """``420/1000 (42%)``, or ``420 steps`` while the total is unknown."""
    if not report.total_steps:
        return f"{report.step} steps"
    percent = math.floor(100 * min(report.step, report.total_steps) / report.total_steps)
    return f"{report.step}/{report.total_steps} ({percent}%)"


def loss_text(loss: float | None) -> str | None:
    """The loss to 4 significant digits (``0.4773``, ``12.35``, ``nan``): a printer column cannot
    format numbers, and the raw float shows every digit."""
    return None if loss is None else f"{loss:.4g}"


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
        "lossText": loss_text(report.loss),
        "etaText": eta_text(report.eta_seconds),
        "stage": report.stage,
    }
    if report.latest_checkpoint:
        patch["latestCheckpoint"] = report.latest_checkpoint
    return patch


def finished_progress(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """Progress of a job that succeeded: every planned step is done, nothing is left."""
    if not progress or not progress.get("totalSteps"):
        return progress
    return {**progress, "step": progress["totalSteps"], "percent": 100.0, "etaSeconds": 0.0}


def parse_progress(body: bytes) -> ProgressReport | None:
    """The report in ``body`` if it is a JSON object of the report's own fields, else None.

    The pod may run any image, so nothing else is accepted: not another shape, not NaN or
    Infinity (which the API server could not store), not fields the operator does not know.
    """
    try:
        raw = json.loads(body, parse_constant=_refuse_constant)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not set(raw) <= _REPORT_FIELDS:
        return None
    try:
        return ProgressReport.model_validate(raw)
    except ValidationError:
        return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None as soon as it proves longer than ``limit`` bytes."""
    if (response.content_length or 0) > limit:
        return None
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


async def fetch_progress(
    session: aiohttp.ClientSession, pod_ip: str, port: int, timeout: float
) -> ProgressReport | None:
    """Rank 0's report, or None when it cannot be read now (starting, saving, gone) or the pod
    answers with anything but a report: a redirect (never followed), a body over
    ``MAX_PROGRESS_BYTES``, an answer slower than ``timeout`` seconds in all, or another shape.
    """
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    url = f"http://{host}:{port}{PROGRESS_PATH}"
    try:
        async with asyncio.timeout(timeout):
            async with session.get(
                url, allow_redirects=False, headers={"Accept-Encoding": "identity"}
            ) as response:
                if response.status != 200:
                    logger.debug("GET %s: HTTP %s", url, response.status)
                    return None
                body = await _read_capped(response, MAX_PROGRESS_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.debug("GET %s failed: %s", url, exc)
        return None
    if body is None:
        logger.info("GET %s: the body is over %d bytes; ignored", url, MAX_PROGRESS_BYTES)
        return None
    report = parse_progress(body)
    if report is None:
        logger.info("GET %s: not a progress report; ignored", url)
    return report
