"""The CheckpointManager in real training: a tiny model trains through the CLI against moto's S3 server.

Each run is ``python -m kubesft_trainer`` as a pod runs it; the test watches it through
``/progress`` and ``/metrics`` and interrupts it the way Kubernetes does (SIGKILL, SIGTERM) or
takes its object storage away.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubesft_api import exit_codes
from kubesft_api.times import parse_time
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.checkpoints.manifest import step_of
from kubesft_trainer.reporting.startup import StartupPhaseName
from kubesft_trainer.storage.objects import open_store
from testing.devcluster.processes import free_port
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import (
    ROOT,
    summary,
    trainer_command,
    trainer_config,
    trainer_env,
    write_config,
)

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)
pytestmark = pytest.mark.slow

SAVE_STEPS = 4
KEEP = 2
EXACT_RESUME_STEPS = 16
"""Two epochs of 64 rows in batches of 8, so the resumed part crosses an epoch boundary."""

WAIT_SECONDS = 240.0
"""Upper bound for anything a run is waited on, far above what it takes on a loaded 2-core machine."""


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(64))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def metric_value(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


@dataclass
class Observation:
    progress: dict[str, Any]
    metrics: str

    @property
    def step(self) -> int:
        return int(self.progress["step"])

    @property
    def latest_step(self) -> int | None:
        latest = self.progress.get("latestCheckpoint")
        return step_of(latest.rsplit("/", 1)[-1]) if latest else None

    def metric(self, name: str) -> float | None:
        return metric_value(self.metrics, name)


class TrainerRun:
    """One trainer process with its HTTP port and a log file (a pipe could fill up and stall it)."""

    def __init__(self, config: Path, work_dir: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log
        self._log: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            trainer_command("--config", str(config)),
            env=trainer_env(work_dir, KUBESFT_METRICS_PORT=str(self.port), **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def observe(self) -> Observation | None:
        """What the trainer serves right now; None while it serves nothing (starting, or ended)."""
        try:
            progress = json.loads(_get(f"http://127.0.0.1:{self.port}/progress"))
            metrics = _get(f"http://127.0.0.1:{self.port}/metrics").decode()
        except OSError:
            return None
        return Observation(progress, metrics)

    def wait_for(self, what: str, condition: Callable[[Observation], bool]) -> Observation:
        """Poll ``/progress`` and ``/metrics`` until ``condition`` holds; fail if the run ends first."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert self.process.poll() is None, f"the run ended before {what}:\n{self.log[-4000:]}"
            assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS:.0f} s:\n{self.log[-4000:]}"
            seen = self.observe()
            if seen is not None and condition(seen):
                return seen
            time.sleep(0.02)

    def wait(self) -> int:
        try:
            code = self.process.wait(timeout=WAIT_SECONDS)
        finally:
            self.close()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def logged_steps(self) -> list[int]:
        return [int(step) for step in re.findall(r"\bstep (\d+)/\d+ \(", self.log)]

    def logged_losses(self) -> dict[int, str]:
        return {
            int(step): loss for step, loss in re.findall(r"\bstep (\d+)/\d+ \(\d+%\) \| loss (\S+)", self.log)
        }


@pytest.fixture
def runs() -> Iterator[list[TrainerRun]]:
    """Every trainer a test starts; any still running at the end is killed."""
    started: list[TrainerRun] = []
    yield started
    for run in started:
        run.close()


@dataclass
class Job:
    """One job's config, checkpoint location and output; each run gets a fresh work dir, like a new pod."""

    moto: MotoS3
    root: Path
    config: Path
    uri: str
    runs: list[TrainerRun]

    def start(self, name: str, **env: str) -> TrainerRun:
        run = TrainerRun(
            self.config, self.root / f"work-{name}", self.root / f"{name}.log", {**self.moto.env(), **env}
        )
        self.runs.append(run)
        return run

    @property
    def store(self) -> CheckpointStore:
        return CheckpointStore(open_store(self.uri, self.moto.settings(self.uri)))

    def complete_steps(self) -> list[int]:
        return [manifest.step for manifest in self.store.complete()]

    def folders(self) -> set[str]:
        return {key.split("/", 1)[0] for key in self.store.store.list_keys()}


@pytest.fixture
def make_job(
    moto_s3: MotoS3, s3_bucket: str, model: Path, chat_data: Path, tmp_path: Path, runs: list[TrainerRun]
) -> Callable[..., Job]:
    def make(name: str, max_steps: int, training: dict[str, Any] | None = None, **checkpoints: Any) -> Job:
        root = tmp_path / name
        root.mkdir()
        uri = checkpoints.pop("uri", f"s3://{s3_bucket}/{name}/checkpoints")
        settings = {
            "uri": uri,
            "endpointUrl": moto_s3.endpoint_url,
            "region": "us-east-1",
            "saveSteps": SAVE_STEPS,
            "keep": KEEP,
            **checkpoints,
        }
        raw = trainer_config(
            model,
            chat_data,
            root / "output",
            training={"maxSteps": max_steps, "loggingSteps": 1, "seed": 7, **(training or {})},
            checkpoints=settings,
        )
        return Job(moto_s3, root, write_config(root / "config.yaml", raw), uri, runs)

    return make


def _unix(rfc3339: str) -> float:
    moment = parse_time(rfc3339)
    assert moment is not None
    return moment.timestamp()


def _weights(output: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(output / "model.safetensors")


def test_a_killed_run_resumes_exactly_and_reports_where_it_resumed(make_job: Callable[..., Job]) -> None:
    reference = make_job("uninterrupted", EXACT_RESUME_STEPS)
    run_a = reference.start("a")
    assert run_a.wait() == exit_codes.SUCCESS, run_a.log[-4000:]

    job = make_job("interrupted", EXACT_RESUME_STEPS)
    first = job.start("b-killed")
    # SIGKILL (node loss, OOM kill) between two saves, once at least one checkpoint is complete.
    seen = first.wait_for(
        "a step between two saves after a complete checkpoint",
        lambda o: o.latest_step is not None and o.step % SAVE_STEPS != 0 and o.step > o.latest_step,
    )
    first.process.send_signal(signal.SIGKILL)
    first.wait()
    # /progress can show a step whose log line the kill cut off.
    killed_at = max([seen.step, *first.logged_steps()])
    assert killed_at < EXACT_RESUME_STEPS
    newest_complete = job.complete_steps()[0]
    assert newest_complete % SAVE_STEPS == 0 and newest_complete >= (seen.latest_step or 0)
    assert newest_complete < killed_at, "the kill landed on a save; the run would lose no steps"

    second = job.start("b-resumed")
    resumed = second.wait_for(
        "the resumed step in /progress", lambda o: o.progress.get("resumedFromStep") is not None
    )
    assert second.wait() == exit_codes.SUCCESS, second.log[-4000:]

    # Reported in all three places: /progress, /metrics and the log.
    assert resumed.progress["resumedFromStep"] == newest_complete
    assert resumed.metric("kubesft_checkpoint_resumed_from_step") == newest_complete
    assert f"resuming from {job.uri}/checkpoint-{newest_complete} (step {newest_complete})" in second.log
    assert summary(job.root / "output")["resumedFromStep"] == newest_complete
    # Where the restart's time went: each phase of its start, in the summary and in one log line.
    phases = [phase["name"] for phase in summary(job.root / "output")["startup"]]
    # Every phase in its order, with the checkpoint's restore where a fresh run starts its trainer.
    assert phases == [
        name for name in get_args(StartupPhaseName) if name not in ("warmStart", "trainerStart")
    ]
    # The download's own time: it ran beside the imports and the loading, so the phase may be less.
    assert summary(job.root / "output")["checkpointDownloadSeconds"] > 0
    assert summary(reference.root / "output")["checkpointDownloadSeconds"] is None
    # Done after the process started and by the end of the wait for it, on the phases' clock.
    startup = {phase["name"]: phase for phase in summary(job.root / "output")["startup"]}
    done = _unix(summary(job.root / "output")["checkpointDownloadFinishedAt"])
    wait = startup["checkpointDownload"]
    # The phases round to the millisecond.
    assert _unix(startup["imports"]["startedAt"]) < done <= _unix(wait["startedAt"]) + wait["seconds"] + 0.002
    assert summary(reference.root / "output")["checkpointDownloadFinishedAt"] is None
    (line,) = [text for text in second.log.splitlines() if "to the end of the first step:" in text]
    assert "checkpointDownload" in line and "checkpointRestore" in line, line
    (fresh,) = [text for text in run_a.log.splitlines() if "to the end of the first step:" in text]
    assert "trainerStart" in fresh and "checkpointRestore" not in fresh, fresh
    # The answers before training come with the checkpoint: the resumed attempt's model is no longer
    # the one they describe, and answering again would only cost time.
    assert (
        f"took the answers before training to 3 sample prompt(s) from checkpoint-{newest_complete}"
        in second.log
    )
    assert "sample prompt(s) before training" not in second.log
    before = [(a["prompt"], a["before"]) for a in summary(reference.root / "output")["samples"]]
    assert [(a["prompt"], a["before"]) for a in summary(job.root / "output")["samples"]] == before
    # The resumed run starts at the step after the checkpoint and redoes the steps the kill lost.
    assert min(second.logged_steps()) == newest_complete + 1
    assert summary(job.root / "output")["globalStep"] == summary(reference.root / "output")["globalStep"]
    assert summary(reference.root / "output")["globalStep"] == EXACT_RESUME_STEPS

    # Same data order, RNG and optimizer state: every step after the resume logs the loss the
    # uninterrupted run logged, and the final weights match. On CPU with a fixed seed the runs are
    # expected to be bit-identical; the 1e-6 absolute tolerance only leaves room for float32
    # rounding if a kernel split a reduction differently between processes (weights here are of
    # order 1e-2..1). A lost optimizer state, scheduler step or data position moves weights by about
    # the learning rate (1e-3) per step, far beyond it.
    losses_a, losses_b = run_a.logged_losses(), second.logged_losses()
    for step in range(newest_complete + 1, EXACT_RESUME_STEPS + 1):
        assert losses_b[step] == losses_a[step], f"step {step}: {losses_b[step]} != {losses_a[step]}"
    weights_a, weights_b = _weights(reference.root / "output"), _weights(job.root / "output")
    assert weights_a.keys() == weights_b.keys()
    differences = {name: float((weights_b[name] - tensor).abs().max()) for name, tensor in weights_a.items()}
    worst = max(differences, key=lambda name: differences[name])
    assert differences[worst] <= 1e-6, f"{worst} differs by up to {differences[worst]:.3g}"

    # Retention: exactly the `keep` newest complete checkpoints remain, and no partial upload.
    last_saves = [EXACT_RESUME_STEPS - SAVE_STEPS * i for i in range(KEEP)]
    for finished in (reference, job):
        assert finished.complete_steps() == last_saves
        assert finished.folders() == {f"checkpoint-{step}" for step in last_saves}


def test_sigterm_saves_the_current_step_to_s3_before_exiting_as_preempted(
    make_job: Callable[..., Job],
) -> None:
    # Saves are never due on their own here: whatever lands in S3 was saved because of SIGTERM.
    job = make_job("preempted", 400, saveSteps=1000)
    run = job.start("run")
    seen = run.wait_for("a few steps", lambda o: o.step >= 2)
    assert job.complete_steps() == []
    run.process.send_signal(signal.SIGTERM)
    code = run.wait()

    assert code == exit_codes.PREEMPTED == 75, run.log[-4000:]
    match = re.search(r"preempted at step (\d+); the checkpoint is saved", run.log)
    assert match, run.log[-4000:]
    stopped_at = int(match.group(1))
    assert seen.step <= stopped_at < 400
    # Complete (a valid manifest) and intact (every file matches its sha256), at the step it stopped.
    manifests = job.store.complete()
    assert [manifest.step for manifest in manifests] == [stopped_at]
    local = job.store.download(manifests[0], job.root / "downloaded")
    assert json.loads((local / "trainer_state.json").read_text())["global_step"] == stopped_at
    assert "kubesft: error:" not in run.log


def test_training_goes_on_while_storage_is_down_and_the_next_save_lands(
    make_job: Callable[..., Job], moto_s3: MotoS3
) -> None:
    save_steps = 3
    job = make_job("outage", 400, saveSteps=save_steps)
    run = job.start("run")
    before = run.wait_for("a complete checkpoint", lambda o: o.latest_step is not None)
    assert before.latest_step in job.complete_steps()
    # /metrics is read after /progress, so it has counted at least the upload that /progress names.
    uploaded_before = before.metric("kubesft_checkpoint_upload_bytes_total") or 0
    assert uploaded_before > 0
    assert (before.metric("kubesft_checkpoint_upload_seconds_count") or 0) >= 1
    assert (before.metric("kubesft_checkpoint_save_seconds_count") or 0) >= 1
    assert (before.metric("kubesft_checkpoint_latest_step") or 0) >= before.latest_step

    moto_s3.stop()
    try:
        down = run.wait_for(
            "upload failures while storage is down",
            lambda o: (
                o.progress["checkpointUploadFailures"] > 0
                and (o.metric("kubesft_checkpoint_upload_failures_total") or 0) > 0
            ),
        )
        assert "failed" in down.progress["checkpointStatus"], down.progress
        # Training goes on through several save points while nothing can be uploaded.
        later = run.wait_for("training past two more saves", lambda o: o.step >= down.step + 2 * save_steps)
        assert later.metric("kubesft_train_global_step") == pytest.approx(later.step, abs=1)
        stuck_at = later.latest_step
        # latest still names a checkpoint that was complete before the outage, never a newer one.
        assert stuck_at is not None and stuck_at <= down.step
    finally:
        moto_s3.start()
    assert stuck_at in job.complete_steps()

    after = run.wait_for(
        "a save landing after storage came back",
        lambda o: o.latest_step is not None and o.latest_step > later.step,
    )
    assert after.latest_step is not None and "failed" not in after.progress["checkpointStatus"], (
        after.progress
    )
    assert (after.metric("kubesft_checkpoint_upload_bytes_total") or 0) > uploaded_before
    # /metrics is read just after /progress, so it may already show a newer save.
    assert (after.metric("kubesft_checkpoint_latest_step") or 0) >= after.latest_step
    assert after.latest_step in job.complete_steps()

    run.process.send_signal(signal.SIGTERM)
    assert run.wait() == exit_codes.PREEMPTED, run.log[-4000:]
    assert re.search(r"upload of \S+/checkpoint-\d+ failed \(attempt 1, ", run.log), run.log[-4000:]
    match = re.search(r"preempted at step (\d+); the checkpoint is saved", run.log)
    assert match, run.log[-4000:]
    # Retention with real training: the preemption save is the newest of exactly `keep`.
    complete = job.complete_steps()
    assert len(complete) == KEEP and complete[0] == int(match.group(1)) >= after.latest_step
    assert job.folders() == {f"checkpoint-{step}" for step in complete}


def _identity(name: str, uid: str) -> dict[str, str]:
    """The job identity the operator gives a trainer pod."""
    return {"KUBESFT_NAMESPACE": "team-a", "KUBESFT_JOB_NAME": name, "KUBESFT_JOB_UID": uid}


def test_checkpoints_belong_to_their_settings_and_a_warm_start_takes_only_the_weights(
    make_job: Callable[..., Job],
) -> None:
    original = make_job("original", 8)
    first = original.start("first", **_identity("chat", "uid-1"))
    assert first.wait() == exit_codes.SUCCESS, first.log[-4000:]
    assert original.complete_steps() == [8, 4]
    manifest = original.store.complete()[0]
    assert str(manifest.job) == "team-a/chat (uid uid-1)"
    before = {key: original.store.store.read_bytes(key) for key in original.store.store.list_keys()}

    # Another job on the same prefix, tokenizing its data differently: refused, nothing touched.
    other = make_job("other", 8, training={"maxLength": 96}, uri=original.uri)
    refused = other.start("refused", **_identity("other-chat", "uid-2"))
    assert refused.wait() == exit_codes.INVALID_CONFIG, refused.log[-4000:]
    line = refused.log.strip().splitlines()[-1]
    assert (
        f"kubesft: error: spec.checkpoints.uri: {original.uri} holds checkpoints of SFTJob team-a/chat"
        in line
    )
    assert "training.maxLength: 128 there, 96 here" in line
    after = {key: original.store.store.read_bytes(key) for key in original.store.store.list_keys()}
    assert after == before, "no checkpoint deleted, rewritten or added"

    # The same job created again (a new uid) with another learning rate and more steps resumes.
    again = make_job("again", 12, training={"learningRate": 5e-4}, uri=original.uri)
    resumed = again.start("resumed", **_identity("chat", "uid-3"))
    assert resumed.wait() == exit_codes.SUCCESS, resumed.log[-4000:]
    assert f"resuming from {original.uri}/checkpoint-8 (step 8)" in resumed.log
    assert "training.learningRate: 0.001 there, 0.0005 here" in resumed.log
    assert min(resumed.logged_steps()) == 9

    # A warm start from checkpoint-8 (retention has removed checkpoint-4 by now): its weights, with
    # a fresh optimizer, schedule and step count.
    source = f"{original.uri}/checkpoint-8"
    warm = make_job("warm", 4, resumeFrom=source)
    started = warm.start("warm", **_identity("warm-chat", "uid-4"))
    assert started.wait() == exit_codes.SUCCESS, started.log[-4000:]
    assert f"warm start from {source}: its weights, with a fresh optimizer and schedule" in started.log
    assert min(started.logged_steps()) == 1 and "resuming from" not in started.log
    assert summary(warm.root / "output")["warmStartedFrom"] == source
    # Step 1 sees the same batch as the original run's step 1, on the trained weights.
    fresh, warmed = first.logged_losses(), started.logged_losses()
    assert float(warmed[1]) < float(fresh[1]) - 0.5, (warmed, fresh)
