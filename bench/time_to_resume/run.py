"""Time to resume: a running SFTJob's trainer is killed, and the next attempt resumes from its
checkpoint on S3. How long each stage of the way back takes, on the local cluster.

Each round applies an SFTJob that trains a random-init Llama (hidden 640, 6 layers, ~22M
parameters, fp32, AdamW: a ~270 MB checkpoint) on a local S3, waits for its first complete
checkpoint, and SIGKILLs every process of the trainer pod (a crash; the process node runs pods as
local processes). The operator sees the pod fail and starts the next attempt, whose trainer
resumes and trains to the end. Printed, per round and as median and range over the rounds:

- detection: the failed pod on a watch -> the next attempt's Job on a watch (target ≤ 2 s); also
  from the kill;
- pod start: Job created -> pod Running on a watch, and -> the trainer process started (its
  kernel start time, which the trainer records);
- the trainer's own phases (``training_summary.json`` ``startup``, the same timeline its log line
  and ``kubesft_startup_seconds`` show): imports, model load, data, the checkpoint download (with
  the sha256 check: ``checkpointDownloadSeconds``; it runs beside the imports, the model and the data, so
  the ``checkpointDownload`` phase is only the wait for what is left of it), checkpoint restore
  (the Trainer loading the checkpoint's weights, optimizer and scheduler state, beside creating
  its optimizer and data loader, which the killed attempt's own ``trainerStart`` shows), and the
  first new optimizer step;
- loading the checkpoint: the resumed Trainer's start and first step (``checkpointRestore`` and
  ``firstStep``) less the killed attempt's (``trainerStart`` and ``firstStep``). The restore
  phase alone would count the optimizer state's memory, which a fresh Trainer makes in its first
  step instead (AdamW makes its state lazily): 180 MB of fresh pages either way;
- restore overhead: what the checkpoint adds to the way back, set against plain boto3
  ``get_object`` of the same objects from the same S3 (one after another, read to the end), timed
  after the job finished (target ≤ 1.2×). It is how much the download slowed the imports beside
  it, plus the wait for what was left of the download, plus loading the checkpoint
  (``restoreApartOverGet``); beside
  it, a plain Trainer's loading of the same checkpoint outside the pod (``loading_apart.py``). The
  imports' share is measured apart (``beside_imports.py``): each round times the trainer's imports
  in a fresh interpreter alone and beside the trainer's prefetch of the same checkpoint, in
  alternating pairs, since the two attempts' imports differ by more than the download takes, and
  a resumed attempt's imports were slower than the killed attempt's even without a prefetch. The
  phases after the imports that began before the download was done
  (``checkpointDownloadFinishedAt``) count by the attempts' difference; those after it ran
  without it and count nothing. Beside it: the same with the imports' and the loading's
  difference between the attempts (``restoreOverGet``), the download on its own, the download and
  loading one after the other (``serialRestoreOverGet``, the target's figure for a trainer without
  a prefetch), and the same checkpoint read back by this process in ranged GETs and by the
  trainer's own store (``read_back.py``), which shows where the download's time goes. The verdict
  is on all rounds at once: each part's median over every pair and every plain GET of the run.

The S3 server is gofakes3 (``--s3 gofakes3``, the default: it serves a ranged GET at the cost of
its bytes, as AWS S3 and MinIO do) or moto (``--s3 moto``, which copies the whole object for
each range, so the trainer's parallel ranged download costs far more there than anywhere real).

Figures also go to ``bench/out/time_to_resume.json``. The trainer runs from this checkout (the
node's image mode is off). Run:
``python bench/time_to_resume/run.py [--rounds 3] [--read-rounds 3] [--import-pairs 3] [--loading-pairs 3]
[--s3 gofakes3|moto]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import write_figures  # noqa: E402
from bench.local_cluster import bench_cluster  # noqa: E402
from bench.time_to_resume.beside_imports import beside_imports  # noqa: E402
from bench.time_to_resume.loading_apart import loading_apart  # noqa: E402
from bench.time_to_resume.moments import Moments  # noqa: E402
from bench.time_to_resume.read_back import read_back  # noqa: E402
from bench.time_to_resume.report import report, summarize, summary_lines  # noqa: E402
from kubesft_api import pod_contract  # noqa: E402
from kubesft_operator import names  # noqa: E402
from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME  # noqa: E402
from testing.devcluster.binaries import kubernetes_version  # noqa: E402
from testing.devcluster.cluster import Cluster  # noqa: E402
from testing.devcluster.kube import wait_until  # noqa: E402
from testing.devcluster.operator_install import OperatorInstall, running_operator  # noqa: E402
from testing.devcluster.s3 import S3Server  # noqa: E402
from testing.sftjob_manifests import small_fp32_training  # noqa: E402
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl  # noqa: E402

NAMESPACE = "resume"
SECRET = "s3-credentials"
PREFIX = "bench-resume"
TIMEOUT = 900.0
# The startup phases from the imports to the SFTTrainer built, which the checkpoint download runs beside.
BESIDE_THE_DOWNLOAD = ("imports", "setup", "modelFiles", "data", "modelLoad", "tokenizing")


def sftjob(s3: S3Server, name: str, steps: int, save_steps: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": s3.uri(f"{PREFIX}/inputs/model"), "chatTemplate": "chatml"},
            "dataset": {"uri": s3.uri(f"{PREFIX}/inputs/chat.jsonl")},
            "training": small_fp32_training(steps),
            # keep: every checkpoint stays, so the one resumed from is still there to read back.
            "checkpoints": {
                "uri": s3.uri(f"{PREFIX}/{name}/checkpoints"),
                "credentialsSecret": {"name": SECRET},
                "endpointUrl": s3.endpoint_url,
                "saveSteps": save_steps,
                "keep": 100,
            },
            "output": {"uri": s3.uri(f"{PREFIX}/{name}/output")},
            "validation": {"enabled": False},  # the resume is the subject, not the check before it
            # No sample prompts: with them each attempt answers them before training (the
            # ``samples`` phase), which on these CPUs outweighs everything measured here.
            "evaluation": {"sampleCount": 0},
            "resources": {"gpusPerNode": 0, "cpu": "1", "memory": "6Gi", "sharedMemory": "64Mi"},
            "runPolicy": {"backoffLimit": 2, "terminationGracePeriodSeconds": 30},
        },
    }


def stage_inputs(s3: S3Server, scratch: Path, hidden: int, layers: int) -> tuple[Path, int]:
    """The model and the data into S3; returns the model's local folder and parameter count."""
    from safetensors import safe_open

    model = build_tiny_model(scratch / "inputs" / "model", hidden_size=hidden, layers=layers)
    write_jsonl(scratch / "inputs" / "chat.jsonl", chat_rows(256))
    s3.upload_directory(scratch / "inputs", f"{PREFIX}/inputs")
    with safe_open(str(model / "model.safetensors"), "pt") as weights:
        return model, sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())  # noqa: SIM118


def sftjob_status(cluster: Cluster, name: str) -> dict[str, Any]:
    body = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", name, NAMESPACE) or {}
    return dict(body.get("status") or {})


def complete_checkpoints(s3: S3Server, name: str) -> list[int]:
    prefix = f"{PREFIX}/{name}/checkpoints/"
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    keys = [item["Key"].removeprefix(prefix) for item in listing.get("Contents", [])]
    return sorted(int(key.split("/")[0].split("-")[1]) for key in keys if key.endswith(f"/{MANIFEST_NAME}"))


def kill_pod_processes(cluster: Cluster, pod: str) -> float:
    """SIGKILL every process of the pod, as a crash or a lost node would; returns when."""
    pids = cluster.node.pod_pids(NAMESPACE, pod)
    if not pids:
        raise RuntimeError(f"pod {pod} has no processes to kill")
    killed = time.time()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # ended on its own meanwhile
            os.kill(pid, signal.SIGKILL)
    return killed


def unix_time(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def startup_phases(cluster: Cluster, pod: str) -> dict[str, float]:
    """A running trainer's ``kubesft_startup_seconds{phase}``, from its metrics endpoint."""
    body = cluster.kube.get("v1", "Pod", pod, NAMESPACE) or {}
    address = (body.get("status") or {}).get("podIP")
    url = f"http://{address}:{pod_contract.TRAINER_METRICS_PORT}{pod_contract.METRICS_PATH}"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["phase"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "kubesft_startup_seconds"
        for sample in family.samples
    }


def beside_the_download(summary: dict[str, Any], phases: dict[str, dict[str, Any]]) -> list[str]:
    """The phases up to the SFTTrainer built that began before the checkpoint was downloaded (all
    of them for a trainer that does not record when: one without a prefetch)."""
    done = summary.get("checkpointDownloadFinishedAt")
    if done is None:
        return list(BESIDE_THE_DOWNLOAD)
    return [phase for phase in BESIDE_THE_DOWNLOAD if unix_time(phases[phase]["startedAt"]) < unix_time(done)]


def one_round(
    cluster: Cluster, s3: S3Server, name: str, args: argparse.Namespace, model_dir: Path, scratch: Path
) -> dict[str, Any]:
    first, second = names.job_name(name, 0), names.job_name(name, 1)
    with Moments(cluster.kube.api, NAMESPACE) as moments:
        body = sftjob(s3, name, args.steps, args.save_steps)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
        wait_until(
            lambda: complete_checkpoints(s3, name) or None,
            timeout=TIMEOUT,
            describe=lambda: f"no complete checkpoint of {name}: {sftjob_status(cluster, name)}",
        )
        status = sftjob_status(cluster, name)
        if status.get("phase") != "Running":
            raise RuntimeError(f"{name} is {status.get('phase')}, not Running, at its first checkpoint")
        pod = moments.pod_names[first]
        fresh = startup_phases(cluster, pod)
        if "trainerStart" not in fresh:
            raise RuntimeError(f"the first attempt of {name} reports no trainerStart: {fresh}")
        killed = kill_pod_processes(cluster, pod)
        wait_until(
            lambda: sftjob_status(cluster, name).get("phase") in ("Succeeded", "Failed") or None,
            timeout=TIMEOUT,
            describe=lambda: f"{name} never finished: {sftjob_status(cluster, name)}",
        )
        first_log = cluster.node.logs(NAMESPACE, pod)
    status = sftjob_status(cluster, name)
    if status.get("phase") != "Succeeded" or status.get("restarts") != 1:
        raise RuntimeError(f"{name} ended {status.get('phase')} after {status.get('restarts')} restarts")
    summary_key = f"{PREFIX}/{name}/output/training_summary.json"
    summary = json.loads(s3.client().get_object(Bucket=s3.bucket, Key=summary_key)["Body"].read())
    step = int(summary["resumedFromStep"])
    uri = s3.uri(f"{PREFIX}/{name}/checkpoints")
    fetched = read_back(s3, uri, step, args.read_rounds, scratch)
    sizes, get_seconds = fetched["sizes"], fetched["seconds"]
    apart = beside_imports(s3, uri, args.import_pairs, scratch) if args.import_pairs else None
    batch = int(body["spec"]["training"]["perDeviceBatchSize"])
    loading = loading_apart(s3, uri, step, model_dir, batch, args.loading_pairs, scratch / "loading")
    phases = {phase["name"]: phase for phase in summary["startup"]}
    seconds = {key: float(phase["seconds"]) for key, phase in phases.items()}
    last = summary["startup"][-1]
    job_created = moments.job_added[second]
    process_started = unix_time(phases["imports"]["startedAt"])
    plain = statistics.median(get_seconds["plainGet"])
    # The restore phase less what the killed attempt's Trainer took to start without a checkpoint.
    restore_only = seconds["checkpointRestore"] - fresh["trainerStart"]
    # What loading the checkpoint adds: the resumed Trainer's start and first step beyond the
    # killed attempt's. A fresh Trainer makes its optimizer state in its first step (AdamW makes it
    # lazily), a resumed one while loading: the same memory, paid in another phase.
    load = restore_only + seconds["firstStep"] - fresh["firstStep"]
    # The download runs beside the imports, the model and the data; what it cost them is how much
    # longer they took than in the killed attempt, which had no checkpoint to fetch. Only the
    # phases that began before it was done count: the rest differ by the attempts alone.
    slower = {phase: seconds[phase] - fresh[phase] for phase in beside_the_download(summary, phases)}
    beside = sum(slower.values())
    # A trainer that downloads before it goes on (no prefetch) has the whole download in the phase.
    download = float(summary.get("checkpointDownloadSeconds") or seconds["checkpointDownload"])
    wait = seconds["checkpointDownload"]
    restore = beside + wait + load
    whole_phase = beside + wait + seconds["checkpointRestore"]
    measured_apart = {}
    if apart is not None:
        # The same with the imports' share measured apart, in alternating runs with and without
        # the download, instead of as the difference of two attempts' imports.
        controlled = beside - slower["imports"] + apart["slowdown"] + wait + load
        measured_apart = {
            "importsApart": apart,
            "importsSlowdownApartSeconds": apart["slowdown"],
            "otherPhasesSlowdownSeconds": beside - slower["imports"],
            "restoreOverheadApartSeconds": controlled,
            "restoreApartOverGet": controlled / plain,
        }
    return {
        **measured_apart,
        "sftjob": name,
        # The last step the killed attempt logged (loggingSteps is 1).
        "stepAtKill": max((int(n) for n in re.findall(r"\bstep (\d+)/\d+ \(", first_log)), default=0),
        "resumedFromStep": step,
        "checkpointBytes": sum(sizes.values()),
        "checkpointFiles": sizes,
        "detectionSeconds": job_created - moments.pod_seen[(first, "Failed")],
        "killToPodFailedSeconds": moments.pod_seen[(first, "Failed")] - killed,
        "killToJobCreatedSeconds": job_created - killed,
        "jobToPodRunningSeconds": moments.pod_seen[(second, "Running")] - job_created,
        "jobToProcessStartSeconds": process_started - job_created,
        "phaseSeconds": seconds,
        "modelLoadSeconds": seconds["modelFiles"] + seconds["modelLoad"],
        "freshPhaseSeconds": fresh,
        "checkpointLoadSeconds": load,
        "restoreLessTrainerStartSeconds": restore_only,
        "loadingApart": loading,
        "checkpointLoadApartSeconds": loading["loading"],
        "downloadSeconds": download,
        "downloadWaitSeconds": wait,
        "besideSlowdownSeconds": beside,
        "phasesBesideTheDownload": list(slower),
        # Apart, since the imports alone vary by a second or more from one start to the next.
        "importsSlowdownSeconds": slower["imports"],
        "restoreOverheadSeconds": restore,
        "readBackSeconds": get_seconds,
        "restoreOverGet": restore / plain,
        "downloadOverGet": download / plain,
        "serialRestoreOverGet": (download + load) / plain,
        "restorePhaseOverGet": whole_phase / plain,
        # Not one measurement: the store's download with whole-object GETs, timed from here, plus
        # the trainer's loading; what the ratio would be with one GET per object.
        "wholeObjectsRestoreOverGet": (statistics.median(get_seconds["storeWholeObjects"]) + load) / plain,
        "killToFirstStepSeconds": unix_time(last["startedAt"]) + float(last["seconds"]) - killed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="SFTJobs killed and resumed, one after another")
    parser.add_argument("--read-rounds", type=int, default=3, help="rounds of reading each checkpoint back")
    parser.add_argument(
        "--import-pairs",
        type=int,
        default=3,
        help="imports alone and beside the download, per round (0: none, for a trainer without a prefetch)",
    )
    parser.add_argument(
        "--loading-pairs",
        type=int,
        default=3,
        help="Trainer starts with and without the checkpoint, per round",
    )
    parser.add_argument(
        "--steps", type=int, default=12, help="raise it where the first attempt ends before the kill"
    )
    parser.add_argument("--save-steps", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument(
        "--s3", choices=("gofakes3", "moto"), default="gofakes3", help="the local S3 server (see above)"
    )
    args = parser.parse_args()
    if args.loading_pairs < 1:
        parser.error("--loading-pairs must be at least 1")
    rows: list[dict[str, Any]] = []
    with bench_cluster(args.s3) as (cluster, s3):
        with tempfile.TemporaryDirectory(prefix="kubesft-resume-") as scratch:
            model, parameters = stage_inputs(s3, Path(scratch), args.hidden, args.layers)
            print(f"model: {parameters / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers)")
            cluster.kubectl("create", "namespace", NAMESPACE)
            s3.credentials_secret(cluster.kube.api, NAMESPACE, SECRET)
            install = OperatorInstall.apply(cluster)
            with running_operator(install, Path(scratch) / "operator.log"):
                for number in range(args.rounds):
                    row = one_round(
                        cluster, s3, f"resume-{number}", args, model, Path(scratch) / f"read-{number}"
                    )
                    rows.append(row)
                    print(f"round {number + 1}: " + "\n".join(report(row)), flush=True)
                    # The next round starts with this one's objects gone from the server's memory.
                    cluster.kubectl("-n", NAMESPACE, "delete", "sftjob", row["sftjob"], "--wait=true")
                    _delete_prefix(s3, f"{PREFIX}/{row['sftjob']}/")
        load = os.getloadavg()
    summary = summarize(rows)
    for line in summary_lines(summary, len(rows)):
        print(line)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {[round(x, 1) for x in load]};"
        f" Kubernetes {kubernetes_version()}; S3: {args.s3}"
    )
    write_figures(
        "time_to_resume",
        {
            "rounds": rows,
            "summary": summary,
            "loadAverage": load,
            "kubernetes": kubernetes_version(),
            "s3": args.s3,
        },
    )


def _delete_prefix(s3: S3Server, prefix: str) -> None:
    s3_client = s3.client()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=s3.bucket, Delete={"Objects": keys})


if __name__ == "__main__":
    main()
