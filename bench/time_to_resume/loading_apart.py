"""How long the Trainer takes to load the resume's checkpoint, measured apart.

In a pod the figure is the resumed attempt's ``checkpointRestore`` less the killed attempt's
``trainerStart`` (the Trainer's start without a checkpoint): two processes, whose heaps and CPU
share differ, so the difference carries their noise (0.25 to 0.94 s by round on one machine, for
a loading that takes a tenth of a second or two). Here a fresh interpreter loads the job's model
from the same files and starts a ``transformers.Trainer`` on it, once with the downloaded
checkpoint and once without, in alternating pairs, each timed from ``train()`` to
``on_train_begin``: the same span as the two phases, with the weights, optimizer and scheduler
state loaded by the same library code the trainer's SFTTrainer inherits. A full garbage
collection runs before each start, so the collection the Trainer runs at its start (which both
arms pay) does not move the difference.
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

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.storage.objects import open_store
from testing.devcluster.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import gc, json, sys, time
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

model_dir, checkpoint, out, pairs, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
state = json.load(open(f"{checkpoint}/trainer_state.json"))

class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 4096
    def __getitem__(self, index):
        ids = torch.arange(64) % 100
        return {"input_ids": ids, "labels": ids}

class Begun(Exception):
    pass

class StopAtBegin(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        raise Begun

def start(resume):
    args = TrainingArguments(
        output_dir=out, max_steps=int(state["global_step"]) + 100, per_device_train_batch_size=batch,
        report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no",
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[StopAtBegin()])
    gc.collect()
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    except Begun:
        return time.perf_counter() - started
    raise RuntimeError("the Trainer trained past its start")

start(True)  # unmeasured: the first start pays the one-time costs of both arms
rows = {"withCheckpoint": [], "without": []}
for number in range(pairs):
    for resume in ((False, True) if number % 2 == 0 else (True, False)):
        rows["withCheckpoint" if resume else "without"].append(start(resume))
print(json.dumps(rows))
"""


def loading_apart(
    s3: S3Server, uri: str, step: int, model_dir: Path, batch: int, pairs: int, scratch: Path
) -> dict[str, Any]:
    """Checkpoint ``step`` under ``uri`` downloaded once by the trainer's store, then ``pairs``
    Trainer starts with and without it. Returns each arm's seconds and the median of the pairs'
    differences (``loading``)."""
    os.environ.update(s3.env())
    store = CheckpointStore(open_store(uri, CheckpointSettings(uri=uri, endpoint_url=s3.endpoint_url)))
    (manifest,) = [manifest for manifest in store.complete() if manifest.step == step]
    checkpoint = store.download(manifest, scratch / manifest.name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _CHILD, str(model_dir), str(checkpoint), str(scratch / "out")]
    result = subprocess.run(
        [*command, str(pairs), str(batch)], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"the loading run failed: {result.stderr[-2000:]}")
    rows: dict[str, list[float]] = json.loads(result.stdout.strip().splitlines()[-1])
    pairs_seen = zip(rows["without"], rows["withCheckpoint"], strict=True)
    return {**rows, "loading": statistics.median(loaded - fresh for fresh, loaded in pairs_seen)}
