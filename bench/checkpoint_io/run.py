"""Checkpoint I/O: the store's upload throughput, and how long training stalls per save.

1. Upload throughput. One checkpoint folder with the files of a full-model checkpoint (weights,
   optimizer state twice their size, scheduler, RNG and trainer state, tokenizer), random bytes,
   uploaded to moto's S3 server (its own process on loopback) by:
   - the store: ``CheckpointStore.upload`` (sha256 of every file, parallel multipart transfers,
     manifest last), and the store's file transfer alone (``upload_directory``);
   - a plain loop: boto3 ``client.upload_file`` for each file in turn, with boto3's defaults.
   Alternating, several rounds. Printed: MB/s of each and the ratio store / plain loop
   (target ≥ 1.0).
2. Training stall per save. The trainer runs in this process on a small Llama (hidden 256,
   4 layers, a ~40 MB checkpoint), once saving only at the end and once saving every
   ``--save-steps`` steps to the same S3 server with asynchronous upload. The stall is the
   trainer's own ``kubesft_checkpoint_save_seconds``: from the end of a step that saves until
   training goes on (the local write and the hand-over to the uploader), as a share of the save
   interval (target ≤ 10%). Also printed: the extra runtime per save against the run without
   checkpoints, which adds what the upload thread takes from training on shared CPUs; on a busy
   machine it is mostly noise.

Figures also go to ``bench/out/checkpoint_io.json``. Moto keeps objects in memory and serves
them from one Python process, so absolute MB/s are far below a real S3 or MinIO; the ratios are
the point.

Run: ``python bench/checkpoint_io/run.py [--rounds 5] [--mib 256] [--steps 60] [--save-steps 15]
[--only upload|training]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import tiny_config, write_figures  # noqa: E402
from kubesft_api.checkpoints import CheckpointSettings  # noqa: E402
from kubesft_api.trainer_config import TrainerConfig  # noqa: E402
from kubesft_trainer.checkpoints import CheckpointStore  # noqa: E402
from kubesft_trainer.storage.objects import open_store  # noqa: E402
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": REGION,
}
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in its own process, so it does not share this process's GIL."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def _empty(client: Any, bucket: str) -> None:
    """Moto holds every object in memory; each round starts from an empty bucket."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def make_checkpoint(folder: Path, total_mib: int) -> int:
    """The files a full-model checkpoint has, in its proportions; returns the total bytes."""
    folder.mkdir(parents=True)
    weights = total_mib * MIB // 3
    sizes = {
        "model.safetensors": weights,
        "optimizer.pt": 2 * weights,
        "tokenizer.json": 2 * MIB,
        "scheduler.pt": 1500,
        "rng_state.pth": 15_000,
        "trainer_state.json": 4000,
        "training_args.bin": 6000,
        "config.json": 700,
        "tokenizer_config.json": 3000,
    }
    for name, size in sizes.items():
        with (folder / name).open("wb") as handle:
            remaining = size
            while remaining:
                chunk = min(remaining, 8 * MIB)
                handle.write(os.urandom(chunk))
                remaining -= chunk
    return sum(sizes.values())


def upload_with_store(endpoint: str, bucket: str, folder: Path, step: int) -> float:
    uri = f"s3://{bucket}/store"
    settings = CheckpointSettings(uri=uri, endpoint_url=endpoint, region=REGION)
    store = CheckpointStore(open_store(uri, settings))
    started = time.perf_counter()
    store.upload(folder, step)
    return time.perf_counter() - started


def upload_files_with_store(endpoint: str, bucket: str, folder: Path, step: int) -> float:
    uri = f"s3://{bucket}/files"
    settings = CheckpointSettings(uri=uri, endpoint_url=endpoint, region=REGION)
    store = open_store(uri, settings)
    started = time.perf_counter()
    store.upload_directory(folder, f"checkpoint-{step}")
    return time.perf_counter() - started


def upload_with_plain_loop(endpoint: str, bucket: str, folder: Path, step: int) -> float:
    client = _client(endpoint)
    started = time.perf_counter()
    for path in sorted(folder.iterdir()):
        client.upload_file(str(path), bucket, f"plain/checkpoint-{step}/{path.name}")
    return time.perf_counter() - started


def throughput(endpoint: str, scratch: Path, rounds: int, total_mib: int) -> dict[str, Any]:
    client = _client(endpoint)
    bucket = "kubesft-bench-io"
    client.create_bucket(Bucket=bucket)
    folder = scratch / "checkpoint"
    size = make_checkpoint(folder, total_mib)
    methods = {
        "store": upload_with_store,
        "storeFilesOnly": upload_files_with_store,
        "plainLoop": upload_with_plain_loop,
    }
    results: list[dict[str, float]] = []
    for number in range(rounds):
        # Rotate the order so a warming (or cooling) server favours none of them.
        names = list(methods)
        names = names[number % len(names) :] + names[: number % len(names)]
        figures = {}
        # Unmeasured: the first upload after emptying the bucket ran slower whichever arm it was.
        upload_with_plain_loop(endpoint, bucket, folder, number)
        _empty(client, bucket)
        for name in names:
            seconds = methods[name](endpoint, bucket, folder, number)
            figures[name] = size / seconds / 1e6
            _empty(client, bucket)
        results.append(figures)
        print(
            f"round {number + 1}: " + ", ".join(f"{name} {figures[name]:.0f} MB/s" for name in methods),
            flush=True,
        )
    medians = {name: statistics.median(r[name] for r in results) for name in methods}
    ratio = medians["store"] / medians["plainLoop"]
    print(
        f"upload of a {size / 1e6:.0f} MB checkpoint, median: "
        + ", ".join(f"{name} {medians[name]:.0f} MB/s" for name in methods)
    )
    print(f"ratio store / plain loop: {ratio:.2f} (target ≥ 1.0)", flush=True)
    return {"checkpointBytes": size, "rounds": results, "medianMBps": medians, "ratio": ratio}


def _sample(name: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name) or 0.0


def train_once(
    endpoint: str | None, model: Path, data: Path, scratch: Path, steps: int, save_steps: int
) -> dict[str, float]:
    """One training run in this process; returns its runtime and the save pauses it recorded."""
    from kubesft_trainer.config.runtime_env import RuntimeEnv
    from kubesft_trainer.train import train

    checkpoints: dict[str, Any] = {"saveSteps": save_steps if endpoint else steps}
    if endpoint:
        checkpoints.update(uri=f"s3://kubesft-bench-train/{scratch.name}", endpointUrl=endpoint, keep=2)
    raw = tiny_config(model, data, scratch / "output", steps)
    config = TrainerConfig.model_validate({**raw, "checkpoints": checkpoints})
    env = RuntimeEnv.from_environ(
        {**os.environ, "KUBESFT_WORK_DIR": str(scratch / "work"), "KUBESFT_METRICS_PORT": "0"}
    )
    save_sum = _sample("kubesft_checkpoint_save_seconds_sum")
    save_count = _sample("kubesft_checkpoint_save_seconds_count")
    code, reason = train(config, env)
    if code != 0:
        raise RuntimeError(f"training failed with exit code {code}: {reason}")
    summary = json.loads((scratch / "output" / "training_summary.json").read_text())
    return {
        "runtimeSeconds": float(summary["trainRuntimeSeconds"]),
        "saveSecondsSum": _sample("kubesft_checkpoint_save_seconds_sum") - save_sum,
        "saves": _sample("kubesft_checkpoint_save_seconds_count") - save_count,
    }


def stall(endpoint: str, scratch: Path, rounds: int, steps: int, save_steps: int) -> dict[str, Any]:
    _client(endpoint).create_bucket(Bucket="kubesft-bench-train")
    model = build_tiny_model(scratch / "model", hidden_size=256, layers=4)
    data = write_jsonl(scratch / "chat.jsonl", chat_rows(512))
    saves = steps // save_steps
    results = []
    for number in range(rounds):
        order: list[str | None] = [None, endpoint] if number % 2 == 0 else [endpoint, None]
        figures: dict[str, dict[str, float]] = {}
        for target in order:
            name = "withCheckpoints" if target else "withoutCheckpoints"
            run_dir = scratch / f"round-{number}-{name}"
            figures[name] = train_once(target, model, data, run_dir, steps, save_steps)
        base = figures["withoutCheckpoints"]["runtimeSeconds"]
        extra = figures["withCheckpoints"]["runtimeSeconds"] - base
        # Both runs save once at the end; the other saves are the ones checkpointing adds.
        per_save = extra / max(1, saves - 1)
        interval = base / saves
        pause = figures["withCheckpoints"]["saveSecondsSum"] / max(1.0, figures["withCheckpoints"]["saves"])
        row = {
            "runtimeWithoutSeconds": base,
            "runtimeWithSeconds": base + extra,
            "saveIntervalSeconds": interval,
            "stallPerSaveSeconds": pause,
            "stallShare": pause / interval,
            "extraRuntimePerSaveSeconds": per_save,
        }
        results.append(row)
        print(
            f"round {number + 1}: stall per save {pause:.2f} s = {100 * pause / interval:.1f}% of the "
            f"{interval:.1f} s save interval; {steps} steps in {base:.1f} s without checkpoints, "
            f"{base + extra:.1f} s saving every {save_steps} ({per_save:+.2f} s per save)",
            flush=True,
        )
    share = statistics.median(r["stallShare"] for r in results)
    pause = statistics.median(r["stallPerSaveSeconds"] for r in results)
    extra = statistics.median(r["extraRuntimePerSaveSeconds"] for r in results)
    print(
        f"training stall per save, median: {pause:.2f} s = {100 * share:.1f}% of the save interval "
        f"(target ≤ 10%); extra runtime per save {extra:+.2f} s",
        flush=True,
    )
    return {
        "steps": steps,
        "saveSteps": save_steps,
        "rounds": results,
        "medianStallShare": share,
        "medianStallPerSaveSeconds": pause,
        "medianExtraRuntimePerSaveSeconds": extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256, help="size of the checkpoint for the throughput part")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save-steps", type=int, default=15)
    parser.add_argument("--only", choices=["upload", "training"], help="run one of the two parts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="kubesft-bench-") as tmp, moto_server() as endpoint:
        scratch = Path(tmp)
        (scratch / "io").mkdir()
        (scratch / "train").mkdir()
        results: dict[str, Any] = {}
        if args.only in (None, "upload"):
            results["upload"] = throughput(endpoint, scratch / "io", args.rounds, args.mib)
        if args.only in (None, "training"):
            results["training"] = stall(endpoint, scratch / "train", args.rounds, args.steps, args.save_steps)
    write_figures("checkpoint_io", results, merge=True)


if __name__ == "__main__":
    main()
