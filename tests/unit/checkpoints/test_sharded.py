"""FSDP (``training.sharding: fsdp``) through the production entrypoint and launcher: two CPU
processes under torchrun with gloo, checkpoints in moto's S3.

accelerate 1.15 leaves a CPU run data parallel even with an FSDP plugin; the trainer switches it to
FSDP (``sharded_trainer``), so what runs here is PyTorch's ``fully_shard`` and the sharded
checkpoint code a GPU run uses.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

import psutil
import pytest

from kubesft_api import exit_codes
from tests.support.trainer import summary
from tests.unit.checkpoints.test_manager import (  # noqa: F401 (fixtures)
    EXACT_RESUME_STEPS,
    KEEP,
    SAVE_STEPS,
    Job,
    TrainerRun,
    _weights,
    chat_data,
    make_job,
    runs,
)

pytest_plugins = ("tests.support.storage",)
pytestmark = pytest.mark.slow

TWO_PROCESSES = {"KUBESFT_NPROC_PER_NODE": "2"}
SHARDED = {"sharding": "fsdp"}


def _kill_tree(run: TrainerRun) -> None:
    """SIGKILL to the launcher and its workers at once, as when the node or the container is lost."""
    launcher = psutil.Process(run.process.pid)
    for process in [*launcher.children(recursive=True), launcher]:
        with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
            process.kill()
    run.wait()


def test_two_sharded_processes_checkpoint_every_shard_resume_exactly_and_gather_a_model(
    make_job: Callable[..., Job],  # noqa: F811
) -> None:
    reference = make_job("fsdp-uninterrupted", EXACT_RESUME_STEPS, training=SHARDED)
    run_a = reference.start("a", **TWO_PROCESSES)
    assert run_a.wait() == exit_codes.SUCCESS, run_a.log[-4000:]
    assert "[rank 1]" in run_a.log and "FSDP: sharding LlamaDecoderLayer blocks" in run_a.log

    # Every rank's shard of the weights and of the optimizer state is in the checkpoint, and the
    # manifest lists each of them with its hash.
    manifest = reference.store.complete()[0]
    listed = {item.path for item in manifest.files}
    for rank in (0, 1):
        assert f"pytorch_model_fsdp_0/__{rank}_0.distcp" in listed, sorted(listed)
        assert f"optimizer_0/__{rank}_0.distcp" in listed
        assert f"rng_state_{rank}.pth" in listed
    assert {"pytorch_model_fsdp_0/.metadata", "optimizer_0/.metadata", "trainer_state.json"} <= listed
    assert not any(path.startswith("model") and path.endswith(".safetensors") for path in listed)
    downloaded = reference.store.download(manifest, reference.root / "downloaded")
    assert (downloaded / "pytorch_model_fsdp_0/__1_0.distcp").is_file()

    job = make_job("fsdp-interrupted", EXACT_RESUME_STEPS, training=SHARDED)
    first = job.start("b-killed", **TWO_PROCESSES)
    seen = first.wait_for(
        "a step between two saves after a complete checkpoint",
        lambda o: o.latest_step is not None and o.step % SAVE_STEPS != 0 and o.step > o.latest_step,
    )
    _kill_tree(first)
    # /progress can show a step whose log line the kill cut off.
    killed_at = max([seen.step, *first.logged_steps()])
    newest_complete = job.complete_steps()[0]
    assert newest_complete < killed_at < EXACT_RESUME_STEPS

    second = job.start("b-resumed", **TWO_PROCESSES)
    assert second.wait() == exit_codes.SUCCESS, second.log[-4000:]
    assert f"resuming from {job.uri}/checkpoint-{newest_complete} (step {newest_complete})" in second.log
    assert min(second.logged_steps()) == newest_complete + 1
    # The same losses after the resume as without the kill (see test_manager for the tolerance).
    losses_a, losses_b = run_a.logged_losses(), second.logged_losses()
    for step in range(newest_complete + 1, EXACT_RESUME_STEPS + 1):
        assert losses_b[step] == losses_a[step], f"step {step}: {losses_b[step]} != {losses_a[step]}"

    # The output is one ordinary model gathered from the shards, the same as the uninterrupted run's.
    output = job.root / "output"
    weights_a, weights_b = _weights(reference.root / "output"), _weights(output)
    assert weights_a.keys() == weights_b.keys() and len(weights_b) > 0
    worst = max(float((weights_b[name] - tensor).abs().max()) for name, tensor in weights_a.items())
    assert worst <= 1e-6
    assert summary(output)["worldSize"] == 2
    assert summary(output)["samples"][0]["after"] is not None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    ids = tokenizer("hello", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > ids["input_ids"].shape[1]
    assert (output / "generation_config.json").is_file()

    # Retention as for any checkpoint: the `keep` newest complete ones, nothing partial.
    last_saves = [EXACT_RESUME_STEPS - SAVE_STEPS * i for i in range(KEEP)]
    assert job.complete_steps() == last_saves
    assert job.folders() == {f"checkpoint-{step}" for step in last_saves}


def test_sigterm_saves_every_shard_before_the_sharded_run_exits_as_preempted(
    make_job: Callable[..., Job],  # noqa: F811
) -> None:
    job = make_job("fsdp-preempted", 400, training=SHARDED, saveSteps=1000)
    run = job.start("run", **TWO_PROCESSES)
    run.wait_for("a few steps", lambda o: o.step >= 2)
    run.process.send_signal(signal.SIGTERM)
    assert run.wait() == exit_codes.PREEMPTED, run.log[-4000:]
    manifests = job.store.complete()
    assert len(manifests) == 1
    listed = {item.path for item in manifests[0].files}
    assert {"pytorch_model_fsdp_0/__0_0.distcp", "pytorch_model_fsdp_0/__1_0.distcp"} <= listed
    job.store.download(manifests[0], job.root / "downloaded")
