"""How much the resume's checkpoint download slows the imports it runs beside, measured apart.

In a pod the two attempts of a job import torch and transformers in 11 to 15 s on two CPUs, a
spread larger than the whole download, so comparing the killed and the resumed attempt cannot
tell the download's share. Here a fresh interpreter imports what the trainer imports before its
setup, once alone and once with the trainer's own prefetch (``ResumePrefetch``: its process and
store) downloading a checkpoint of the job, started first as ``python -m kubesft_trainer`` starts
it, in alternating pairs on the same machine and S3.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import pair_differences
from testing.devcluster.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]

# What the trainer imports before its setup phase: ``kubesft_trainer.train`` and the modules its
# ``train`` imports when called (the manager is imported first in both arms).
_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
uri, endpoint, target, download = sys.argv[1:]
from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints.prefetch import ResumePrefetch
from kubesft_trainer.checkpoints.resume import ResumeChoice
settings = CheckpointSettings(uri=uri, endpoint_url=endpoint)
work = ResumePrefetch(ResumeChoice(settings, None, 0, Path(target))) if download == "1" else None
import kubesft_trainer.train
import kubesft_trainer.checkpoints.warm_start
import kubesft_trainer.reporting.mlflow_run
import kubesft_trainer.reporting.telemetry
imports = time.perf_counter() - started
if work is not None:
    work.result()
print(json.dumps({"imports": imports, "download": work.seconds if work else None}))
"""


def _one(s3: S3Server, uri: str, scratch: Path, download: bool) -> dict[str, Any]:
    env = {**os.environ, **s3.env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            uri,
            s3.endpoint_url,
            str(scratch),
            "1" if download else "0",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"the import run failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def beside_imports(s3: S3Server, uri: str, pairs: int, scratch: Path) -> dict[str, Any]:
    """The newest checkpoint under ``uri`` (the one resumed from: later ones are of the same size),
    ``pairs`` times: the imports alone and beside the download, in turns (which first alternates).

    Returns each arm's import seconds, the download's seconds, and the median of the pairs'
    differences (``slowdown``)."""
    alone: list[float] = []
    beside: list[float] = []
    downloads: list[float] = []
    for number in range(pairs):
        order = (False, True) if number % 2 == 0 else (True, False)
        for download in order:
            row = _one(s3, uri, scratch, download)
            if download:
                beside.append(float(row["imports"]))
                downloads.append(float(row["download"]))
            else:
                alone.append(float(row["imports"]))
    return {
        "importsAlone": alone,
        "importsBesideDownload": beside,
        "downloadBesideImports": downloads,
        "slowdown": statistics.median(pair_differences(alone, beside)),
    }
