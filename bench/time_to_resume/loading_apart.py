"""How much longer a plain ``transformers.Trainer`` takes to start and make its first step from the
resume's checkpoint than without it, outside the pod.

A reference beside the pod's own figure (the resumed attempt's ``checkpointRestore`` and
``firstStep`` less the killed attempt's ``trainerStart`` and ``firstStep``). Each start runs in a
fresh interpreter, as a resumed trainer does: it loads the job's model from the same files and
starts a Trainer on it, with the downloaded checkpoint or without it, in alternating pairs, timed
from ``train()`` to the end of the first optimizer step, with the weights, optimizer and scheduler
state loaded by the library code the trainer's SFTTrainer inherits. Much of a start's time here is
the kernel handing the process fresh memory for the optimizer state (tens of thousands of page
faults), which the resumed start pays while loading and the fresh one in its first step; a process
that had made that memory once before and freed it would measure less, and a pod's memory cgroup,
which charges each of those pages, is not here. A full garbage collection runs before each start,
so the collection the Trainer runs at its start (both arms pay it) does not move the difference.
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
from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.storage.objects import open_store
from testing.devcluster.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import gc, json, sys, time
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

model_dir, checkpoint, out, batch, resume = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
state = json.load(open(f"{checkpoint}/trainer_state.json"))

class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 4096
    def __getitem__(self, index):
        ids = torch.arange(64) % 100
        return {"input_ids": ids, "labels": ids}

class Stepped(Exception):
    pass

class StopAfterFirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise Stepped

def start(resume):
    args = TrainingArguments(
        output_dir=out, max_steps=int(state["global_step"]) + 100, per_device_train_batch_size=batch,
        report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no",
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[StopAfterFirstStep()])
    gc.collect()
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    except Stepped:
        return time.perf_counter() - started
    raise RuntimeError("the Trainer ended before its first step")

print(json.dumps(start(resume == "1")))
"""


def _start(model_dir: Path, checkpoint: Path, out: Path, batch: int, resume: bool) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _CHILD, str(model_dir), str(checkpoint), str(out), str(batch)]
    result = subprocess.run(
        [*command, "1" if resume else "0"], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"the loading run failed: {result.stderr[-2000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1]))


def loading_apart(
    s3: S3Server, uri: str, step: int, model_dir: Path, batch: int, pairs: int, scratch: Path
) -> dict[str, Any]:
    """Checkpoint ``step`` under ``uri`` downloaded once by the trainer's store, then ``pairs``
    Trainer starts with and without it, each in a fresh interpreter (which goes first alternates).
    Returns each arm's seconds and the median of the pairs' differences (``loading``)."""
    os.environ.update(s3.env())
    store = CheckpointStore(open_store(uri, CheckpointSettings(uri=uri, endpoint_url=s3.endpoint_url)))
    (manifest,) = [manifest for manifest in store.complete() if manifest.step == step]
    checkpoint = store.download(manifest, scratch / manifest.name)
    rows: dict[str, list[float]] = {"withCheckpoint": [], "without": []}
    try:
        for number in range(pairs):
            for resume in (False, True) if number % 2 == 0 else (True, False):
                seconds = _start(model_dir, checkpoint, scratch / "out", batch, resume)
                rows["withCheckpoint" if resume else "without"].append(seconds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {**rows, "loading": statistics.median(pair_differences(rows["without"], rows["withCheckpoint"]))}
