"""Progress as the operator shows it (text, ETA, patches on change), and what it takes from a pod."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web

from kubesft_api.progress import ProgressReport
from kubesft_operator.progress import (
    MAX_PROGRESS_BYTES,
    eta_text,
    fetch_progress,
    loss_text,
    parse_progress,
    progress_patch,
    progress_text,
)


def test_progress_text_and_eta() -> None:
    assert progress_text(ProgressReport(step=420, total_steps=1000)) == "420/1000 (42%)"
    assert progress_text(ProgressReport(step=999, total_steps=1000)) == "999/1000 (99%)"
    assert progress_text(ProgressReport(step=7)) == "7 steps"
    assert [eta_text(s) for s in (45, 720, 3900, 2 * 86400 + 3 * 3600, None)] == [
        "45s",
        "12m",
        "1h05m",
        "2d3h",
        None,
    ]


def test_progress_patch_only_when_values_change() -> None:
    report = ProgressReport(
        step=10,
        total_steps=40,
        loss=2.5,
        eta_seconds=30,
        updated_at="t1",
        latest_checkpoint="s3://ckpt/chat/checkpoint-10",
    )
    patch = progress_patch({}, report)
    assert patch is not None
    assert patch["progressText"] == "10/40 (25%)" and patch["etaText"] == "30s"
    assert patch["lossText"] == "2.5"
    assert patch["latestCheckpoint"] == "s3://ckpt/chat/checkpoint-10"
    assert patch["progress"]["totalSteps"] == 40
    status = {"progress": patch["progress"]}
    assert progress_patch(status, report.model_copy(update={"updated_at": "t2"})) is None
    assert progress_patch(status, report.model_copy(update={"step": 11})) is not None


def test_the_loss_column_shows_four_significant_digits() -> None:
    assert [loss_text(v) for v in (0.47734904289245605, 12.345678, 2.5, 0.000123456, None)] == [
        "0.4773",
        "12.35",
        "2.5",
        "0.0001235",
        None,
    ]
    assert loss_text(float("nan")) == "nan"


# --- reading /progress from a pod that may run any image -----------------------------------------

REPORT = b'{"step": 7, "totalSteps": 100, "loss": 1.5}'


def test_only_a_json_object_of_the_reports_own_fields_is_a_report() -> None:
    report = parse_progress(REPORT)
    assert report is not None and report.step == 7
    for body in (
        b"[1, 2]",
        b'"step"',
        b'{"step": 7, "shell": "rm -rf /"}',
        b'{"step": -1}',
        b'{"step": 7, "loss": NaN}',
        b'{"step": 7, "loss": Infinity}',
        b"not json",
        b"\xff\xfe",
    ):
        assert parse_progress(body) is None, body


def _serve_and_fetch(handler: Any, timeout: float = 2.0) -> tuple[Any, list[str]]:
    """fetch_progress against an HTTP server on loopback whose /progress is ``handler``."""
    seen: list[str] = []

    async def real(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=REPORT, content_type="application/json")

    async def progress(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    async def run() -> Any:
        app = web.Application()
        app.router.add_get("/progress", progress)
        app.router.add_get("/real", real)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                return await fetch_progress(session, "127.0.0.1", port, timeout)
        finally:
            await runner.cleanup()

    return asyncio.run(run()), seen


def test_a_report_is_read() -> None:
    async def honest(request: web.Request) -> web.Response:
        return web.Response(body=REPORT, content_type="application/json")

    report, _ = _serve_and_fetch(honest)
    assert report is not None and report.step == 7


def test_a_redirect_is_not_followed() -> None:
    async def redirect(request: Any) -> Any:
        raise web.HTTPFound("/real")

    report, seen = _serve_and_fetch(redirect)
    assert report is None
    assert seen == ["/progress"]


def test_a_body_over_64_kib_is_not_read_to_its_end() -> None:
    async def huge(request: Any) -> Any:
        # Valid JSON all the same: only its size is wrong.
        return web.Response(body=REPORT[:-1] + b" " * (1 << 20) + b"}", content_type="application/json")

    async def chunked(request: Any) -> Any:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(REPORT[:-1])
        for _ in range(100):
            await response.write(b" " * 4096)
        await response.write(b"}")
        return response

    assert MAX_PROGRESS_BYTES == 64 * 1024
    assert _serve_and_fetch(huge)[0] is None
    assert _serve_and_fetch(chunked)[0] is None


def test_an_answer_slower_than_the_timeout_is_dropped() -> None:
    async def slow(request: Any) -> Any:
        response = web.StreamResponse(headers={"Content-Length": str(len(REPORT))})
        await response.prepare(request)
        for byte in REPORT:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.02)
        return response

    started = time.monotonic()
    assert _serve_and_fetch(slow, timeout=0.3)[0] is None
    assert time.monotonic() - started < 2
    assert _serve_and_fetch(slow, timeout=5)[0] is not None
