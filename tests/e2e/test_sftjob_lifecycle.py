"""The SFTJob lifecycle end to end: the real operator, real trainer pods, real S3.

One operator runs under the chart's RBAC (a ServiceAccount kubeconfig, see
testing/devcluster/operator_install.py) for the whole module, with progress read every second.
The process node runs each trainer pod as ``python -m kubesft_trainer`` from this repository, and
the trainer reads the tiny model and the data from, and writes checkpoints and the model to,
moto's S3 server on the node bridge.

Several SFTJobs run at once, each with its own name, checkpoint and output prefix, and each test
waits on its own: the jobs that need no action from a test start with the module, the ones a
test acts on mid-run start in that test. A recorder polls every SFTJob's status, so a test can
check what a job went through even when the test looked at it late. The operator restart test
kills the shared operator, so it runs last.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.storage.objects import open_store
from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import wait_until
from testing.devcluster.operator_install import (
    OperatorInstall,
    OperatorProcess,
    running_operator,
    wait_for_phase,
)
from testing.devcluster.s3 import S3Server
from testing.sftjob_manifests import small_fp32_training
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl

PREFIX = "operator-e2e"
NAMESPACE = "kubesft-e2e"
SECRET = "s3-credentials"
GROUP_VERSION = ("kubesft.io", "v1alpha1", "sftjobs")
BAD_ROW = 7
"""Index of the invalid row in bad.jsonl."""
TRAIN_TIMEOUT = 240.0


# --- the module's cluster-side set-up ---------------------------------------------------------------


@dataclass
class StatusHistory:
    """Every distinct (phase, step) each SFTJob of a namespace showed, from a watch in a thread.

    A watch delivers every write, so a phase the operator held for a moment is seen too."""

    api: client.CustomObjectsApi
    namespace: str
    seen: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    finalizers: dict[str, set[str]] = field(default_factory=dict)
    """Every finalizer any SFTJob ever carried, by SFTJob."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StatusHistory:
        self._thread = threading.Thread(target=self._watch, name="sftjob-status-history", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self.api.list_namespaced_custom_object,
                *GROUP_VERSION[:2],
                self.namespace,
                GROUP_VERSION[2],
                resource_version=resource_version,
                timeout_seconds=2,
            )
            try:
                for event in stream:
                    item = event["object"]
                    resource_version = item["metadata"]["resourceVersion"]
                    if item["metadata"].get("finalizers"):
                        marks = self.finalizers.setdefault(item["metadata"]["name"], set())
                        marks.update(item["metadata"]["finalizers"])
                    if event["type"] == "DELETED":
                        continue
                    status = item.get("status") or {}
                    entry = (status.get("phase") or "", (status.get("progress") or {}).get("step"))
                    history = self.seen.setdefault(item["metadata"]["name"], [])
                    if not history or history[-1] != entry:
                        history.append(entry)
            except client.ApiException as error:
                if error.status == 410:  # too old to resume: start from now
                    resource_version = ""
                time.sleep(0.2)

    def phases(self, name: str) -> list[str]:
        out: list[str] = []
        for phase, _ in self.seen.get(name, []):
            if phase and (not out or out[-1] != phase):
                out.append(phase)
        return out

    def steps(self, name: str) -> list[int]:
        return sorted({step for _, step in self.seen.get(name, []) if step is not None})


@dataclass
class E2E:
    cluster: Cluster
    s3: S3Server
    operator: OperatorProcess
    history: StatusHistory
    namespace: str = NAMESPACE
    actions: dict[str, concurrent.futures.Future[dict[str, Any]]] = field(default_factory=dict)

    def acted(self, name: str) -> dict[str, Any]:
        """What the mid-run action on ``name`` saw; its failure, if it failed."""
        return self.actions[name].result(timeout=2 * TRAIN_TIMEOUT)

    def spec(
        self,
        name: str,
        *,
        steps: int,
        save_steps: int,
        data: str = "chat.jsonl",
        secret: str = SECRET,
        **run_policy: Any,
    ) -> dict[str, Any]:
        """A tiny SFTJob: ``steps`` optimizer steps, a checkpoint every ``save_steps``."""
        return {
            "apiVersion": "kubesft.io/v1alpha1",
            "kind": "SFTJob",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "model": {"uri": self.s3.uri(f"{PREFIX}/inputs/model"), "chatTemplate": "chatml"},
                "dataset": {"uri": self.s3.uri(f"{PREFIX}/inputs/{data}")},
                "training": small_fp32_training(steps),
                "checkpoints": {
                    "uri": self.checkpoint_uri(name),
                    "credentialsSecret": {"name": secret},
                    "endpointUrl": self.s3.endpoint_url,
                    "saveSteps": save_steps,
                    "keep": 2,
                },
                "output": {"uri": self.output_uri(name)},
                "resources": {
                    "gpusPerNode": 0,
                    "cpu": "1",
                    "memory": "4Gi",
                    "sharedMemory": "64Mi",
                    # Several trainers share two cores; one thread each keeps them from thrashing.
                    "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
                },
                "runPolicy": {"backoffLimit": 2, "terminationGracePeriodSeconds": 30, **run_policy},
            },
        }

    def checkpoint_uri(self, name: str) -> str:
        return self.s3.uri(f"{PREFIX}/{name}/checkpoints")

    def output_uri(self, name: str) -> str:
        return self.s3.uri(f"{PREFIX}/{name}/output")

    def apply(self, body: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def get(self, name: str) -> dict[str, Any] | None:
        return self.cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", name, self.namespace)

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.get(name) or {}).get("status") or {})

    def wait(self, name: str, *phases: str, timeout: float = TRAIN_TIMEOUT) -> dict[str, Any]:
        try:
            job = wait_for_phase(self.cluster, self.namespace, name, *phases, timeout=timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\noperator log tail:\n{self.operator.log()[-4000:]}") from None
        return dict(job.get("status") or {})

    def wait_finished_or_gone(self, name: str) -> None:
        """Wait until SFTJob ``name`` succeeded or failed, or was deleted (by a test or its TTL)."""

        def finished() -> bool | None:
            job = self.get(name)
            return job is None or (job.get("status") or {}).get("phase") in ("Succeeded", "Failed") or None

        wait_until(
            finished,
            timeout=TRAIN_TIMEOUT,
            describe=lambda: f"{name} never finished:\n{yaml.safe_dump(self.status(name))}",
        )

    def wait_until_training(self, name: str, min_step: int = 1) -> dict[str, Any]:
        """Wait until the operator has copied a step >= ``min_step`` from rank 0 into the status."""

        def training() -> dict[str, Any] | None:
            status = self.status(name)
            if status.get("phase") in ("Succeeded", "Failed"):
                raise AssertionError(
                    f"{name} finished before the test could act on it:\n{yaml.safe_dump(status)}"
                )
            step = (status.get("progress") or {}).get("step") or 0
            return status if status.get("phase") == "Running" and step >= min_step else None

        return wait_until(
            training,
            timeout=TRAIN_TIMEOUT,
            describe=lambda: f"{name} never showed step {min_step}:\n{yaml.safe_dump(self.status(name))}",
        )

    def patch_spec(self, name: str, patch: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "-n", self.namespace, "patch", "sftjob", name, "--type=merge", "-p", json.dumps({"spec": patch})
        )

    def jobs(self, name: str) -> list[str]:
        """Names of the trainer Jobs of SFTJob ``name`` (one per attempt), terminating ones included."""
        return self._jobs(name, "kubesft.io/attempt")

    def validation_jobs(self, name: str) -> list[str]:
        """Names of the CPU validation Jobs of SFTJob ``name``."""
        return self._jobs(name, "kubesft.io/stage=validation")

    def _jobs(self, name: str, selector: str) -> list[str]:
        items = self.cluster.kube.batch.list_namespaced_job(
            self.namespace, label_selector=f"kubesft.io/job={name},{selector}"
        ).items
        return sorted(job.metadata.name for job in items)

    def pods(self, name: str, attempt: int | None = None) -> list[client.V1Pod]:
        """Trainer pods of SFTJob ``name`` (of one attempt, or all); not its validation pod."""
        selector = f"kubesft.io/job={name}," + (
            f"kubesft.io/attempt={attempt}" if attempt is not None else "kubesft.io/attempt"
        )
        return list(self.cluster.kube.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def events(self, name: str) -> list[client.CoreV1Event]:
        selector = f"involvedObject.kind=SFTJob,involvedObject.name={name}"
        return list(
            self.cluster.kube.core.list_namespaced_event(self.namespace, field_selector=selector).items
        )

    def checkpoints(self, name: str) -> CheckpointStore:
        settings = CheckpointSettings(uri=self.checkpoint_uri(name), endpoint_url=self.s3.endpoint_url)
        return CheckpointStore(open_store(self.checkpoint_uri(name), settings))

    def summary(self, name: str) -> dict[str, Any]:
        """training_summary.json the trainer wrote next to the model."""
        key = f"{PREFIX}/{name}/output/training_summary.json"
        body = self.s3.client().get_object(Bucket=self.s3.bucket, Key=key)["Body"].read()
        data: dict[str, Any] = json.loads(body)
        return data

    def output_keys(self, name: str) -> list[str]:
        prefix = f"{PREFIX}/{name}/output/"
        listing = self.s3.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=prefix)
        return sorted(item["Key"].removeprefix(prefix) for item in listing.get("Contents", []))

    def trainer_log(self, pod: client.V1Pod) -> str:
        return self.cluster.node.logs(self.namespace, pod.metadata.name)


def _validation_failure(status: dict[str, Any]) -> tuple[str, str]:
    """(reason, message) of the Failed condition, checked to come from validation."""
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    validated = next(c for c in status["conditions"] if c["type"] == "Validated")
    assert validated["status"] == "False", status
    assert "validation failed, no training Job was created" in failed["message"]
    return failed["reason"], failed["message"]


def _stage_inputs(s3: S3Server, directory: Path) -> None:
    """A tiny model, a good conversational dataset and one with a single invalid row, into S3."""
    build_tiny_model(directory / "model")
    rows = chat_rows(64)
    bad = [dict(row) for row in rows]
    bad[BAD_ROW] = {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]}
    write_jsonl(directory / "chat.jsonl", rows)
    write_jsonl(directory / "bad.jsonl", bad)
    s3.upload_directory(directory, f"{PREFIX}/inputs")


HAPPY = "happy"
BAD_DATA = "bad-data"
CUT_ANSWERS = "cut-answers"
UNWRITABLE = "unwritable-output"
NO_SECRET = "no-secret"
LATE_SECRET = "late-credentials"
PREEMPTED = "preempted"
SUSPENDED = "suspended"
LONG_RUN = 240
"""Steps of the jobs acted on mid-run: enough that the action lands while they train, also on
a fast machine (a few seconds of training there)."""
HAPPY_STEPS = 150
"""Enough steps for several progress reads (one a second) while the job trains."""


# --- the actions taken on jobs mid-run: each runs in its own thread, and its test checks what it saw


def _preempt_after_a_checkpoint(run: E2E) -> dict[str, Any]:
    body = run.spec(PREEMPTED, steps=LONG_RUN, save_steps=10)
    # No retries: the job can only finish if the preemption does not count as one.
    body["spec"]["runPolicy"] = {**body["spec"].get("runPolicy", {}), "backoffLimit": 0}
    run.apply(body)
    store = run.checkpoints(PREEMPTED)
    checkpoint = wait_until(
        lambda: (
            next(iter(store.complete()), None) if run.status(PREEMPTED).get("phase") == "Running" else None
        ),
        timeout=TRAIN_TIMEOUT,
        describe=lambda: f"no complete checkpoint of {PREEMPTED}:\n{yaml.safe_dump(run.status(PREEMPTED))}",
    )
    (pod,) = run.pods(PREEMPTED, attempt=0)
    # SIGKILL, as when a node is lost: the trainer gets no chance to save, so only the upload counts.
    run.cluster.node.preempt_pod(run.namespace, pod.metadata.name, reason="Preempted")
    return {"checkpoint_step": checkpoint.step}


def _suspend_mid_run_then_resume(run: E2E) -> dict[str, Any]:
    # saveSteps is larger than the run: the only checkpoint is the one saved on SIGTERM.
    run.apply(run.spec(SUSPENDED, steps=LONG_RUN, save_steps=1000))
    run.wait_until_training(SUSPENDED, min_step=2)
    run.patch_spec(SUSPENDED, {"runPolicy": {"suspend": True}})
    status = run.wait(SUSPENDED, "Suspended", "Failed", "Succeeded")
    seen: dict[str, Any] = {"status": status}
    if status.get("phase") != "Suspended":
        return seen
    # The stopped pod is gone once its process has exited, as a kubelet removes it.
    wait_until(
        lambda: not run.pods(SUSPENDED) or None,
        timeout=60,
        describe=lambda: f"pods of {SUSPENDED} left: {[p.metadata.name for p in run.pods(SUSPENDED)]}",
    )
    seen["jobs"] = {
        job.metadata.name: job.spec.suspend
        for job in run.cluster.kube.batch.list_namespaced_job(
            run.namespace, label_selector=f"kubesft.io/job={SUSPENDED},kubesft.io/attempt"
        ).items
    }
    store = run.checkpoints(SUSPENDED)
    saved = next(iter(store.complete()), None)
    seen["checkpoint_step"] = saved.step if saved is not None else None
    if saved is not None:
        # Complete means every file is there with the size and sha256 its manifest lists.
        with tempfile.TemporaryDirectory() as scratch:
            store.download(saved, Path(scratch) / "checkpoint")
    run.patch_spec(SUSPENDED, {"runPolicy": {"suspend": False}})
    return seen


def _create_the_missing_secret_later(run: E2E) -> dict[str, Any]:
    waiting = run.cluster.kube.wait_for_object(
        "kubesft.io/v1alpha1",
        "SFTJob",
        NO_SECRET,
        run.namespace,
        lambda job: any(
            c["type"] == "Validated" and c["reason"] == "CreateContainerConfigError"
            for c in (job.get("status") or {}).get("conditions") or []
        ),
        timeout=TRAIN_TIMEOUT,
        what="a Validated condition saying the Secret is missing",
    )["status"]
    # Several resyncs later: the condition holds, no attempt is spent, the operator keeps running.
    time.sleep(3)
    seen = {"waiting": waiting, "later": run.status(NO_SECRET), "jobs": run.jobs(NO_SECRET)}
    run.s3.credentials_secret(run.cluster.kube.api, run.namespace, LATE_SECRET)
    return seen


@contextlib.contextmanager
def running_e2e(
    cluster: Cluster, s3: S3Server, work: Path, namespace: str = NAMESPACE, **operator_env: str
) -> Iterator[E2E]:
    """Inputs in S3, ``namespace`` with the S3 Secret, and one operator under the chart's RBAC
    with progress read every second (``operator_env`` sets more of its settings); the namespace
    goes afterwards."""
    _stage_inputs(s3, work / "inputs")
    cluster.kubectl("create", "namespace", namespace)
    s3.credentials_secret(cluster.kube.api, namespace, SECRET)
    install = OperatorInstall.apply(cluster)
    history = StatusHistory(client.CustomObjectsApi(cluster.kube.api), namespace).start()
    try:
        with (
            pytest.MonkeyPatch.context() as env,
            running_operator(
                install, work / "operator.log", env=operator_env, KUBESFT_PROGRESS_INTERVAL_SECONDS="1"
            ) as operator,
        ):
            # The test reads checkpoints through the trainer's own store, with the credentials pods get.
            for variable, value in s3.env().items():
                env.setenv(variable, value)
            yield E2E(cluster, s3, operator, history, namespace=namespace)
    finally:
        history.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def e2e(cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    with (
        running_e2e(cluster, s3, tmp_path_factory.mktemp("operator-e2e")) as run,
        concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="scenario") as actors,
    ):
        run.apply(run.spec(HAPPY, steps=HAPPY_STEPS, save_steps=50))
        run.apply(run.spec(BAD_DATA, steps=10, save_steps=5, data="bad.jsonl"))
        cut = run.spec(CUT_ANSWERS, steps=10, save_steps=5)
        # chatml's system and user turns alone are longer than 8 tokens: no answer is left to learn.
        cut["spec"]["training"].update(maxLength=8, assistantOnlyLoss=True)
        run.apply(cut)
        unwritable = run.spec(UNWRITABLE, steps=10, save_steps=5)
        unwritable["spec"]["output"]["uri"] = f"s3://kubesft-no-such-bucket/{UNWRITABLE}"
        run.apply(unwritable)
        run.apply(run.spec(NO_SECRET, steps=6, save_steps=3, secret=LATE_SECRET, ttlSecondsAfterFinished=5))
        for name, scenario in (
            (PREEMPTED, _preempt_after_a_checkpoint),
            (SUSPENDED, _suspend_mid_run_then_resume),
            (NO_SECRET, _create_the_missing_secret_later),
        ):
            run.actions[name] = actors.submit(scenario, run)
        yield run


def test_preempted_trainer_retries_and_resumes_from_its_checkpoint(e2e: E2E) -> None:
    checkpoint_step = e2e.acted(PREEMPTED)["checkpoint_step"]
    status = e2e.wait(PREEMPTED, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert (status["restarts"], status["preemptions"], status["attempt"]) == (0, 1, 1)
    # The retry starts over from Pending; the final Succeeded may come after the recorder's last look.
    assert _in_order(e2e.history.phases(PREEMPTED), ["Running", "Pending", "Running"]), e2e.history.seen[
        PREEMPTED
    ]
    (retry,) = e2e.pods(PREEMPTED, attempt=1)
    assert "resuming from" in e2e.trainer_log(retry)
    summary = e2e.summary(PREEMPTED)
    assert summary["resumedFromStep"] >= checkpoint_step > 0
    assert summary["globalStep"] == LONG_RUN
    reasons = {event.reason for event in e2e.events(PREEMPTED)}
    assert "Preempted" in reasons, reasons


def test_suspend_saves_a_checkpoint_and_resume_finishes_the_same_steps(e2e: E2E) -> None:
    """The operator suspends by setting the Job's own .spec.suspend (as Kueue does): the Job
    stays, the Job controller removes its pods, and the trainer saves on SIGTERM."""
    seen = e2e.acted(SUSPENDED)
    assert seen["status"]["phase"] == "Suspended", yaml.safe_dump(seen["status"])
    assert seen["status"]["restarts"] == 0
    assert seen["jobs"] == {f"{SUSPENDED}-0": True}
    saved = seen["checkpoint_step"]
    assert saved is not None, "the suspended trainer uploaded no complete checkpoint"
    assert 0 < saved < LONG_RUN

    status = e2e.wait(SUSPENDED, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert status["restarts"] == 0, "a suspension is not a restart"
    # Resuming clears the same Job's .spec.suspend: no new attempt, no second Job.
    assert status["attempt"] == 0
    assert e2e.jobs(SUSPENDED) == [f"{SUSPENDED}-0"]
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == LONG_RUN
    summary = e2e.summary(SUSPENDED)
    assert summary["globalStep"] == LONG_RUN
    assert summary["resumedFromStep"] == saved
    reasons = {event.reason for event in e2e.events(SUSPENDED)}
    assert {"Suspending", "Suspended", "Resumed"} <= reasons, reasons


# --- the jobs nobody acts on mid-run ------------------------------------------------------------


def test_job_trains_to_success_with_progress_output_and_events(e2e: E2E) -> None:
    status = e2e.wait(HAPPY, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert "Running" in e2e.history.phases(HAPPY)
    steps = e2e.history.steps(HAPPY)
    assert len(steps) >= 2, f"status.progress showed steps {steps}"
    assert status["progress"]["step"] == HAPPY_STEPS
    assert status["outputUri"] == e2e.output_uri(HAPPY)
    assert status["startTime"] <= status["completionTime"]
    assert status["restarts"] == 0
    assert status["latestCheckpoint"].startswith(e2e.checkpoint_uri(HAPPY))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Created"]["reason"] == "JobCreated"
    keys = e2e.output_keys(HAPPY)
    assert "model.safetensors" in keys and "training_summary.json" in keys, keys
    assert e2e.summary(HAPPY)["globalStep"] == HAPPY_STEPS
    reasons = {event.reason for event in e2e.events(HAPPY)}
    assert {"Validating", "Validated", "JobCreated", "Training", "Completed"} <= reasons, reasons
    # Validated on a CPU pod first, then trained: the figures stay in the status.
    assert _in_order(e2e.history.phases(HAPPY), ["Validating", "Pending", "Running"]), e2e.history.seen[HAPPY]
    figures = status["validation"]
    assert figures["trainingRows"] == 64 and figures["emptyLossExamples"] == 0, figures
    assert 0 < figures["tokensP50"] <= figures["tokensP95"] <= figures["tokensMax"]
    assert figures["stepsPerEpoch"] == 16 and figures["totalSteps"] == HAPPY_STEPS, figures
    assert figures["memoryPerGpuGib"] > 0, figures
    assert (
        conditions["Validated"]["status"] == "True"
        and "64 training rows" in conditions["Validated"]["message"]
    )
    assert len(e2e.validation_jobs(HAPPY)) == 1 and "stage" not in status
    # kubectl get's Loss column: the last loss to 4 significant digits.
    assert status["lossText"] == f"{status['progress']['loss']:.4g}", status
    # The checkpoints know whose they are: the operator passed the job's identity to the pod.
    job = e2e.get(HAPPY)
    assert job is not None
    manifest = e2e.checkpoints(HAPPY).complete()[0]
    assert manifest.job is not None and manifest.settings is not None
    assert (manifest.job.namespace, manifest.job.name) == (e2e.namespace, HAPPY)
    assert manifest.job.uid == job["metadata"]["uid"]


def test_bad_dataset_row_fails_in_validation_with_the_row_named_and_no_training_job_ever(e2e: E2E) -> None:
    status = e2e.wait(BAD_DATA, "Failed", "Succeeded")
    assert status["phase"] == "Failed", yaml.safe_dump(status)
    reason, message = _validation_failure(status)
    assert reason == "InvalidData"
    assert f"row {BAD_ROW}" in message and "robot" in message, message
    assert e2e.history.phases(BAD_DATA)[-2:] == ["Validating", "Failed"], e2e.history.seen[BAD_DATA]
    assert status["restarts"] == 0 and "jobName" not in status
    assert e2e.jobs(BAD_DATA) == [], "a job that fails validation never gets a trainer Job"
    assert len(e2e.validation_jobs(BAD_DATA)) == 1
    assert e2e.pods(BAD_DATA) == []
    warnings = [e for e in e2e.events(BAD_DATA) if e.type == "Warning" and e.reason == "InvalidData"]
    assert warnings and f"row {BAD_ROW}" in warnings[0].message


def test_max_length_that_cuts_every_answer_fails_in_validation_naming_an_example(e2e: E2E) -> None:
    status = e2e.wait(CUT_ANSWERS, "Failed", "Succeeded")
    assert status["phase"] == "Failed", yaml.safe_dump(status)
    reason, message = _validation_failure(status)
    assert reason == "InvalidData"
    assert "64 of 64 training examples have no token in the loss within training.maxLength (8" in message
    assert "e.g. training example" in message, message
    assert e2e.jobs(CUT_ANSWERS) == []


def test_unwritable_output_prefix_fails_in_validation_with_storage_unavailable(e2e: E2E) -> None:
    status = e2e.wait(UNWRITABLE, "Failed", "Succeeded")
    assert status["phase"] == "Failed", yaml.safe_dump(status)
    reason, message = _validation_failure(status)
    assert reason == "StorageUnavailable"
    assert f"output.uri: cannot write to s3://kubesft-no-such-bucket/{UNWRITABLE}" in message, message
    assert e2e.jobs(UNWRITABLE) == []


def test_missing_secret_is_a_condition_until_it_exists_then_ttl_deletes_the_job(e2e: E2E) -> None:
    seen = e2e.acted(NO_SECRET)
    waiting = seen["waiting"]
    # The validation pod is the first to need the Secret.
    assert waiting["phase"] == "Validating"
    validated = next(c for c in waiting["conditions"] if c["type"] == "Validated")
    assert (
        LATE_SECRET in validated["message"] and "spec.checkpoints.credentialsSecret" in validated["message"]
    )
    later = seen["later"]
    assert later["phase"] == "Validating" and later["restarts"] == 0
    assert [c["reason"] for c in later["conditions"] if c["type"] == "Validated"] == [
        "CreateContainerConfigError"
    ]
    assert seen["jobs"] == []

    # With the Secret in place the trainer starts, finishes, and the TTL removes the SFTJob.
    e2e.cluster.kube.wait_for_deletion(
        "kubesft.io/v1alpha1", "SFTJob", NO_SECRET, e2e.namespace, timeout=TRAIN_TIMEOUT
    )
    assert e2e.history.phases(NO_SECRET)[-2:] == ["Running", "Succeeded"], e2e.history.seen[NO_SECRET]
    assert e2e.summary(NO_SECRET)["globalStep"] == 6


def test_deleting_a_job_removes_its_children_and_keeps_checkpoints_and_model(e2e: E2E) -> None:
    e2e.wait(HAPPY, "Succeeded", "Failed")
    kept = [manifest.step for manifest in e2e.checkpoints(HAPPY).complete()]
    assert kept, "the finished job left no checkpoint"
    assert e2e.jobs(HAPPY) and e2e.pods(HAPPY)
    e2e.cluster.kubectl("-n", e2e.namespace, "delete", "sftjob", HAPPY, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: (not e2e.jobs(HAPPY) and not e2e.validation_jobs(HAPPY) and not e2e.pods(HAPPY)) or None,
        timeout=60,
        describe=lambda: f"left after deletion: Jobs {e2e.jobs(HAPPY)}, pods {len(e2e.pods(HAPPY))}",
    )
    e2e.cluster.kube.wait_for_deletion("v1", "ConfigMap", f"{HAPPY}-config", e2e.namespace)
    assert [manifest.step for manifest in e2e.checkpoints(HAPPY).complete()] == kept
    assert "model.safetensors" in e2e.output_keys(HAPPY)


def test_operator_metrics_count_the_jobs_of_the_module(e2e: E2E) -> None:
    """The counters of the module's operator: seven SFTJobs, four of them trained (one after a
    preemption, which is no restart, one after a suspension), three failed in validation."""
    for name in (HAPPY, PREEMPTED, SUSPENDED, BAD_DATA, NO_SECRET, CUT_ANSWERS, UNWRITABLE):
        e2e.wait_finished_or_gone(name)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(e2e.operator.metrics())
        for sample in family.samples
    }
    assert samples[("kubesft_sftjobs_created_total", ())] == 7
    assert samples[("kubesft_sftjobs_succeeded_total", ())] == 4
    assert samples[("kubesft_sftjobs_failed_total", (("reason", "InvalidData"),))] == 2
    assert samples[("kubesft_sftjobs_failed_total", (("reason", "StorageUnavailable"),))] == 1
    assert samples[("kubesft_sftjob_restarts_total", ())] == 0
    assert samples[("kubesft_sftjob_preemptions_total", ())] == 1
    assert samples[("kubesft_sftjob_duration_seconds_count", ())] == 7
    failed_now = ("kubesft_sftjobs", (("namespace", NAMESPACE), ("phase", "Failed")))
    assert samples[failed_now] == 3
    # Every event and timer tick reconciles: far more reconciles than jobs, each one timed.
    assert samples[("kubesft_reconcile_duration_seconds_count", ())] > 5 * 5
    assert samples[("kubesft_reconcile_duration_seconds_sum", ())] > 0
    assert ("kubesft_reconcile_errors_total", ()) in samples


def test_no_sftjob_ever_carries_a_finalizer(e2e: E2E) -> None:
    """Kopf adds a finalizer for a handler that needs one (a timer, a daemon, a deletion handler)
    at the first event of an object; the operator registers none, so deleting an SFTJob never
    waits for it. The watch of the recorder sees every write, each job's whole life long."""
    names = (HAPPY, PREEMPTED, SUSPENDED, BAD_DATA, NO_SECRET, CUT_ANSWERS, UNWRITABLE)
    for name in names:
        e2e.wait_finished_or_gone(name)
    assert set(names) <= set(e2e.history.seen), sorted(e2e.history.seen)
    assert e2e.history.finalizers == {}


# --- the operator restart, last: it kills the module's operator ---------------------------------


def test_operator_killed_mid_run_adopts_the_job_and_finishes_it(e2e: E2E) -> None:
    name = "restarted"
    e2e.apply(e2e.spec(name, steps=LONG_RUN, save_steps=100))
    before = e2e.wait_until_training(name, min_step=2)
    assert e2e.jobs(name) == [f"{name}-0"]
    e2e.operator.kill()
    earlier_log = len(e2e.operator.log())
    e2e.operator.start()
    # The log file holds the killed operator's lines too: wait for the new one's own webhook.
    wait_until(
        lambda: "published ValidatingWebhookConfiguration" in e2e.operator.log()[earlier_log:] or None,
        timeout=60,
        describe=lambda: (
            f"the restarted operator never published its webhook:\n{e2e.operator.log()[earlier_log:]}"
        ),
    )

    status = e2e.wait(name, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert e2e.jobs(name) == [f"{name}-0"], "the restarted operator made a second Job"
    assert f"created Job {e2e.namespace}/{name}" not in e2e.operator.log()[earlier_log:]
    assert status["attempt"] == 0 and status["restarts"] == 0
    assert status["progress"]["step"] == LONG_RUN > before["progress"]["step"]
    assert status["startTime"] == before["startTime"]
    created = [e for e in e2e.events(name) if e.reason == "JobCreated"]
    assert sum(e.count or 1 for e in created) == 1, [e.message for e in created]


@pytest.fixture(autouse=True)
def _operator_alive(e2e: E2E) -> Iterator[None]:
    """Each test leaves the operator running; a crash shows up at the test that caused it."""
    yield
    process = e2e.operator.process
    assert process is not None and process.poll() is None, (
        f"the operator exited:\n{e2e.operator.log()[-4000:]}"
    )


def _in_order(seen: list[str], expected: list[str]) -> bool:
    """Whether ``expected`` occurs in ``seen`` in this order, other entries allowed in between."""
    remaining = iter(seen)
    return all(item in remaining for item in expected)
