"""A two-node SFTJob end to end: an Indexed Job behind a headless Service, CPU ranks over gloo.

The process node runs both pods; each resolves rank 0 as ``<job>-0.<name>-nodes`` through the
node's per-pod hosts file, the stand-in for cluster DNS of a headless Service.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import wait_until
from testing.devcluster.s3 import S3Server
from tests.e2e.test_sftjob_lifecycle import E2E, LONG_RUN, TRAIN_TIMEOUT, running_e2e

NAMESPACE = "kubesft-e2e-multi"
NAME = "two-nodes"
STEPS = 20
KILLED = "rank-1-killed"
RESUMED = re.compile(r"resuming from (\S+) \(step (\d+)\)")


@pytest.fixture(scope="module")
def finished(cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    with running_e2e(cluster, s3, tmp_path_factory.mktemp("multi-node"), NAMESPACE) as run:
        for name, steps, save_steps in ((NAME, STEPS, 10), (KILLED, LONG_RUN, 10)):
            body = run.spec(name, steps=steps, save_steps=save_steps)
            body["spec"]["resources"]["nodes"] = 2
            run.apply(body)
        run.wait(NAME, "Succeeded", "Failed")
        yield run


def _by_rank(run: E2E, name: str = NAME, attempt: int | None = None) -> dict[str, client.V1Pod]:
    return {
        pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]: pod
        for pod in run.pods(name, attempt=attempt)
    }


def test_two_ranks_train_in_step_and_only_rank_0_writes(finished: E2E) -> None:
    status = finished.status(NAME)
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert status["restarts"] == 0
    assert status["progress"]["step"] == STEPS

    job = finished.cluster.kube.get("batch/v1", "Job", f"{NAME}-0", NAMESPACE)
    assert job is not None
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    service = finished.cluster.kube.get("v1", "Service", f"{NAME}-nodes", NAMESPACE)
    assert service is not None and service["spec"]["clusterIP"] == "None"

    pods = _by_rank(finished)
    assert sorted(pods) == ["0", "1"]
    assert {pod.status.phase for pod in pods.values()} == {"Succeeded"}
    assert all(pod.spec.subdomain == f"{NAME}-nodes" for pod in pods.values())
    logs = {rank: finished.trainer_log(pod) for rank, pod in pods.items()}
    # Each node runs its own training process, in one process group of two ranks.
    assert "on node 1" in logs["1"] and "[rank 1]" in logs["1"], logs["1"][-3000:]
    assert "on node 0" in logs["0"] and "[rank 0]" in logs["0"], logs["0"][-3000:]
    uploads = re.compile(r"checkpoint \S+ complete")
    assert uploads.search(logs["0"]), logs["0"][-3000:]
    assert not uploads.search(logs["1"]), logs["1"][-3000:]

    # One checkpoint per save step, and the model and summary once: rank 0's.
    steps = sorted(manifest.step for manifest in finished.checkpoints(NAME).complete())
    assert steps == [10, 20], steps
    summary: dict[str, Any] = finished.summary(NAME)
    assert summary["globalStep"] == STEPS
    assert "model.safetensors" in finished.output_keys(NAME)


def test_deleting_the_job_removes_the_service(finished: E2E) -> None:
    finished.cluster.kubectl("-n", NAMESPACE, "delete", "sftjob", NAME, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: finished.cluster.kube.get("v1", "Service", f"{NAME}-nodes", NAMESPACE) is None or None,
        timeout=60,
        describe=lambda: f"Service {NAME}-nodes outlived its SFTJob",
    )


def test_killing_rank_1_starts_a_new_attempt_where_both_ranks_resume_from_one_checkpoint(
    finished: E2E,
) -> None:
    run = finished
    store = run.checkpoints(KILLED)
    saved = wait_until(
        lambda: next(iter(store.complete()), None) if run.status(KILLED).get("phase") == "Running" else None,
        timeout=TRAIN_TIMEOUT,
        describe=lambda: f"no complete checkpoint of {KILLED}:\n{yaml.safe_dump(run.status(KILLED))}",
    )
    rank_1 = _by_rank(run, KILLED, attempt=0)["1"]
    # SIGKILL of every process of rank 1's pod: a crash on one node, not a preemption.
    for pid in run.cluster.node.pod_pids(NAMESPACE, rank_1.metadata.name):
        os.kill(pid, signal.SIGKILL)
    status = run.wait(KILLED, "Succeeded", "Failed", timeout=2 * TRAIN_TIMEOUT)
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert (status["attempt"], status["restarts"], status["preemptions"]) == (1, 1, 0)
    retry = _by_rank(run, KILLED, attempt=1)
    assert sorted(retry) == ["0", "1"]
    resumed = {rank: RESUMED.findall(run.trainer_log(pod)) for rank, pod in retry.items()}
    # Each node downloads the checkpoint itself; both chose the same one, at or after the one seen.
    assert len(resumed["0"]) == 1 and resumed["0"] == resumed["1"], resumed
    step = int(resumed["0"][0][1])
    assert step >= saved.step > 0
    summary = run.summary(KILLED)
    assert (summary["resumedFromStep"], summary["globalStep"]) == (step, LONG_RUN)
