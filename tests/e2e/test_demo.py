"""``make demo``'s stages against the session cluster: helm-installed chart, real operator and trainer.

The demo's own cluster start and teardown (demo/__main__.py) are not run here; ``run_demo`` is what
runs between them. A short job keeps it to tens of steps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from demo.flow import DemoResult
from kubesft_api.uris import parse_uri
from testing.devcluster.cluster import Cluster
from testing.devcluster.s3 import S3Server
from tests.support.demo_run import demo_settings, run_demo_then_uninstall

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_run(cluster: Cluster, s3: S3Server, namespace: str, tmp_path: Path) -> tuple[DemoResult, list[str]]:
    settings = demo_settings("demo-e2e", namespace, tmp_path / "results", max_steps=12, timeout_seconds=400)
    return run_demo_then_uninstall(cluster, s3, settings)


def test_demo_trains_to_succeeded_and_prints_existing_s3_paths(
    demo_run: tuple[DemoResult, list[str]], s3: S3Server, tmp_path: Path
) -> None:
    result, lines = demo_run
    text = "\n".join(lines)
    assert result.phase == "Succeeded", text

    header = next(line for line in lines if line.startswith("NAME "))
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "LOSS", "AGE"]
    rows = [line.split() for line in lines[lines.index(header) + 1 :] if line.startswith("tiny-chat ")]
    assert rows[-1][1:3] == ["Succeeded", "12/12"], text
    assert any(row[1] == "Running" for row in rows), text

    assert result.final_loss is not None and math.isfinite(result.final_loss)
    assert result.first_loss is not None and result.final_loss < result.first_loss, text
    assert re.search(rf"train loss: .* -> {result.final_loss:.4f} at step 12", text), text

    assert f"model:       {result.output_uri}/" in text, text
    assert f"loss curve:  {result.loss_curve_uri}" in text, text
    printed_objects = [
        f"{result.output_uri}/model.safetensors",
        f"{result.output_uri}/tokenizer.json",
        result.loss_curve_uri,
    ]
    for uri in printed_objects:
        parsed = parse_uri(uri, ("s3",))
        assert parsed.bucket_or_claim == s3.bucket
        head = s3.client().head_object(Bucket=parsed.bucket_or_claim, Key=parsed.path)
        assert head["ContentLength"] > 0, f"{uri} is empty"
    listed = [line.split()[-1] for line in lines if re.match(r"^\s+[\d,]+\s+\S+$", line)]
    assert {"loss_curve.png", "model.safetensors", "training_summary.json"} <= set(listed), text
    assert (tmp_path / "results" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
