"""What the validation stage adds to ``make demo``: the demo's SFTJob with validation on and off.

Each round applies the demo's SFTJob (its tiny Llama, its 200 conversations, 40 steps) twice on
the local cluster, once with ``validation.enabled`` (the default) and once without, one after the
other, and times on watches:

- apply -> the trainer Job created: with validation this holds the validation Job, its pod (the
  trainer image's ``validate`` command: imports, data read, tokenizing, storage probes) and the
  operator's reading of the report; without, only the operator's reaction;
- the validation pod itself, Running -> Succeeded, and validation pod Succeeded -> trainer Job;
- apply -> Succeeded, the whole job.

What validation adds is the first figure's difference between the arms (target under 15 s).
Figures also go to ``bench/out/validation_cost.json``. The trainer runs from this checkout (the
node's image mode is off). Run: ``python bench/validation_cost/run.py [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import write_figures  # noqa: E402
from bench.local_cluster import bench_cluster  # noqa: E402
from bench.time_to_resume.moments import Moments  # noqa: E402
from demo.flow import DemoSettings, sftjob_manifest, stage_inputs  # noqa: E402
from kubesft_operator import names  # noqa: E402
from testing.devcluster.binaries import kubernetes_version  # noqa: E402
from testing.devcluster.cluster import Cluster  # noqa: E402
from testing.devcluster.operator_install import OperatorInstall, running_operator, wait_for_phase  # noqa: E402
from testing.devcluster.s3 import S3Server  # noqa: E402

NAMESPACE = "validation-cost"
TIMEOUT = 900.0
ARMS = ("on", "off")


def one_run(
    cluster: Cluster, s3: S3Server, settings: DemoSettings, name: str, validate: bool
) -> dict[str, Any]:
    manifest = sftjob_manifest(settings, s3)
    manifest["metadata"]["name"] = name
    spec = manifest["spec"]
    spec["validation"] = {"enabled": validate}
    # Each run its own checkpoints, so none resumes from another's.
    spec["checkpoints"]["uri"] = s3.uri(f"{settings.prefix}/{name}/checkpoints")
    spec["output"]["uri"] = s3.uri(f"{settings.prefix}/{name}/output")
    trainer_job = names.job_name(name, 0)
    with Moments(cluster.kube.api, NAMESPACE) as moments:
        applied = time.time()
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        done = wait_for_phase(cluster, NAMESPACE, name, "Succeeded", "Failed", timeout=TIMEOUT)
        finished = time.time()
    status = done.get("status") or {}
    if status.get("phase") != "Succeeded":
        raise RuntimeError(f"{name} ended {status.get('phase')}: {status.get('conditions')}")
    row: dict[str, Any] = {
        "sftjob": name,
        "validation": validate,
        "applyToTrainerJobSeconds": moments.job_added[trainer_job] - applied,
        "applyToSucceededSeconds": finished - applied,
    }
    # The watch lists the earlier runs' Jobs too.
    checks = [job for job in moments.job_added if job.startswith(f"{name}-") and job != trainer_job]
    if validate:
        if len(checks) != 1:
            raise RuntimeError(f"expected one validation Job of {name}, saw {checks}")
        (check,) = checks
        row["validationPodSeconds"] = (
            moments.pod_seen[(check, "Succeeded")] - moments.pod_seen[(check, "Running")]
        )
        row["validationJobToPodRunningSeconds"] = (
            moments.pod_seen[(check, "Running")] - moments.job_added[check]
        )
        row["reportToTrainerJobSeconds"] = (
            moments.job_added[trainer_job] - moments.pod_seen[(check, "Succeeded")]
        )
    elif checks:
        raise RuntimeError(f"validation is off, yet {name} ran {checks}")
    return row


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(row[key]) for row in rows if key in row)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, validation on then off")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with bench_cluster() as (cluster, s3):
        settings = DemoSettings(namespace=NAMESPACE, prefix="bench-validation")
        with tempfile.TemporaryDirectory(prefix="kubesft-validation-") as scratch:
            stage_inputs(s3, Path(scratch), settings.prefix, lambda _line: None)
            cluster.kubectl("create", "namespace", NAMESPACE)
            s3.credentials_secret(cluster.kube.api, NAMESPACE)
            install = OperatorInstall.apply(cluster)
            with running_operator(install, Path(scratch) / "operator.log"):
                for number in range(args.rounds):
                    for arm in ARMS:
                        row = one_run(cluster, s3, settings, f"demo-{arm}-{number}", arm == "on")
                        rows.append(row)
                        print(
                            f"round {number + 1}, validation {arm}: apply -> trainer Job"
                            f" {row['applyToTrainerJobSeconds']:.1f} s, apply -> Succeeded"
                            f" {row['applyToSucceededSeconds']:.1f} s"
                            + (
                                f"; validation pod {row['validationPodSeconds']:.1f} s, its Job -> pod"
                                f" Running {row['validationJobToPodRunningSeconds']:.1f} s, pod Succeeded"
                                f" -> trainer Job {row['reportToTrainerJobSeconds']:.1f} s"
                                if arm == "on"
                                else ""
                            ),
                            flush=True,
                        )
        load = os.getloadavg()
    on = [row for row in rows if row["validation"]]
    off = [row for row in rows if not row["validation"]]
    summary = {
        "addedBeforeTrainingSeconds": _median(on, "applyToTrainerJobSeconds")
        - _median(off, "applyToTrainerJobSeconds"),
        "addedToTheJobSeconds": _median(on, "applyToSucceededSeconds")
        - _median(off, "applyToSucceededSeconds"),
        "validationPodSeconds": _median(on, "validationPodSeconds"),
        "validationJobToPodRunningSeconds": _median(on, "validationJobToPodRunningSeconds"),
        "reportToTrainerJobSeconds": _median(on, "reportToTrainerJobSeconds"),
    }
    print(f"over {args.rounds} rounds, medians:")
    for key, value in summary.items():
        print(f"  {key:34s} {value:7.1f} s")
    added = summary["addedBeforeTrainingSeconds"]
    print(
        f"validation adds {added:.1f} s before training (target under 15 s): {'met' if added < 15 else 'missed'}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {[round(x, 1) for x in load]}; Kubernetes {kubernetes_version()}"
    )
    write_figures(
        "validation_cost",
        {"rounds": rows, "summary": summary, "loadAverage": load, "kubernetes": kubernetes_version()},
    )


if __name__ == "__main__":
    main()
