"""Queueing with the real Kueue: SFTJobs wait for GPU quota, run when it frees, and a higher
priority job preempts a running one, which saves a checkpoint, waits, and resumes from it.

Kueue 0.17's controller manager runs as in a real install (its chart's RBAC, CRDs and webhooks;
testing/devcluster/kueue.py), and the operator under the chart's RBAC. The ClusterQueue's quota
is one GPU of the two the process node advertises, so only one SFTJob (one GPU each) runs at a time.
The trainer pods ask for ``nvidia.com/gpu: 1`` and train on the CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import wait_until
from testing.devcluster.s3 import S3Server
from tests.e2e.test_sftjob_lifecycle import E2E, TRAIN_TIMEOUT, running_e2e

NAMESPACE = "kubesft-e2e-kueue"
CLUSTER_QUEUE = "team-a"
LOCAL_QUEUE = "team-a-jobs"
FLAVOR = "gpu-flavor"
LOW, HIGH = "kubesft-e2e-low", "kubesft-e2e-high"
LONG_RUN = 240
"""Steps of the preempted job: enough that the preemption lands while it trains."""


def _queue_objects(namespace: str) -> list[dict[str, Any]]:
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}}
    cluster_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": CLUSTER_QUEUE},
        "spec": {
            "namespaceSelector": {},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": FLAVOR,
                            "resources": [
                                {"name": "cpu", "nominalQuota": "8"},
                                {"name": "memory", "nominalQuota": "64Gi"},
                                {"name": "nvidia.com/gpu", "nominalQuota": "1"},
                            ],
                        }
                    ],
                }
            ],
        },
    }
    local_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": LOCAL_QUEUE, "namespace": namespace},
        "spec": {"clusterQueue": CLUSTER_QUEUE},
    }
    priorities = [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "preemptionPolicy": "PreemptLowerPriority",
        }
        for name, value in ((LOW, 100), (HIGH, 1000))
    ]
    return [flavor, cluster_queue, local_queue, *priorities]


@pytest.fixture(scope="module")
def queued(cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    cluster.start_kueue()
    # The platform team lets teams pick these two classes (the policy refuses every other).
    allowed = json.dumps([LOW, HIGH])
    work = tmp_path_factory.mktemp("kueue")
    with running_e2e(cluster, s3, work, NAMESPACE, KUBESFT_POLICY_ALLOWED_PRIORITY_CLASSES=allowed) as run:
        cluster.kube.apply(_queue_objects(NAMESPACE))
        try:
            yield run
        finally:
            cluster.kubectl("delete", "clusterqueue", CLUSTER_QUEUE, "--wait=false", check=False)
            cluster.kubectl("delete", "priorityclass", LOW, HIGH, "--wait=false", check=False)


def _spec(run: E2E, name: str, *, steps: int, save_steps: int, priority: str = LOW) -> dict[str, Any]:
    body = run.spec(name, steps=steps, save_steps=save_steps, queueName=LOCAL_QUEUE)
    body["spec"]["resources"].update({"gpusPerNode": 1, "priorityClassName": priority})
    # The CPU validation stage (tests/e2e/test_sftjob_lifecycle.py) runs before Kueue sees a job;
    # off here, so that the higher-priority job arrives while the lower one still trains.
    body["spec"]["validation"] = {"enabled": False}
    return body


def _job(run: E2E, name: str) -> dict[str, Any]:
    job = run.cluster.kube.get("batch/v1", "Job", f"{name}-0", run.namespace)
    assert job is not None, f"no Job {name}-0"
    return job


def _running_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == "Running")


def test_the_second_job_waits_for_quota_then_runs_when_the_first_finishes(queued: E2E) -> None:
    # Long enough that a progress poll sees it training, however fast the machine trains.
    queued.apply(_spec(queued, "first", steps=40, save_steps=50))
    queued.wait_until_training("first")
    queued.apply(_spec(queued, "second", steps=6, save_steps=50))

    def waiting() -> dict[str, Any] | None:
        status = queued.status("second")
        queue = status.get("queue") or {}
        return status if queue.get("state") == "Queued" and "quota" in queue.get("message", "") else None

    status = wait_until(
        waiting,
        timeout=TRAIN_TIMEOUT,
        describe=lambda: f"second never queued:\n{yaml.safe_dump(queued.status('second'))}",
    )
    # Kueue's own words on why it waits, in the status and the Running condition kubectl shows.
    assert status["phase"] == "Pending", yaml.safe_dump(status)
    condition = _running_condition(status)
    assert condition["reason"] == "Queued"
    assert LOCAL_QUEUE in condition["message"] and "nvidia.com/gpu" in condition["message"], condition
    assert _job(queued, "second")["spec"]["suspend"] is True
    assert queued.pods("second") == []
    assert queued.status("first")["queue"]["state"] == "Admitted"

    first = queued.wait("first", "Succeeded", "Failed")
    assert first["phase"] == "Succeeded", yaml.safe_dump(first)
    second = queued.wait("second", "Succeeded", "Failed")
    assert second["phase"] == "Succeeded", yaml.safe_dump(second)
    assert second["restarts"] == 0
    queue = second["queue"]
    assert queue["state"] == "Admitted" and queue["clusterQueue"] == CLUSTER_QUEUE, queue
    assert queue["admittedAt"] and queue["waitSeconds"] > 0, queue
    assert queue["totalWaitSeconds"] == queue["waitSeconds"]
    reasons = {event.reason for event in queued.events("second")}
    assert {"Queued", "Admitted"} <= reasons, reasons

    scrape = queued.operator.metrics()
    (family,) = [f for f in text_string_to_metric_families(scrape) if f.name == "kubesft_queue_wait_seconds"]
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    assert count >= 2, family.samples


def test_a_higher_priority_job_preempts_a_running_one_which_resumes_from_its_checkpoint(queued: E2E) -> None:
    queued.apply(_spec(queued, "low", steps=LONG_RUN, save_steps=1000))
    queued.wait_until_training("low", min_step=2)
    # saveSteps is larger than the run: the only checkpoint is the one saved in the grace period.
    queued.apply(_spec(queued, "high", steps=6, save_steps=50, priority=HIGH))

    def preempted() -> dict[str, Any] | None:
        status = queued.status("low")
        return status if status.get("phase") in ("Suspended", "Failed", "Succeeded") else None

    status = wait_until(
        preempted,
        timeout=TRAIN_TIMEOUT,
        describe=lambda: f"low never suspended:\n{yaml.safe_dump(queued.status('low'))}",
    )
    assert status["phase"] == "Suspended", yaml.safe_dump(status)
    suspended = next(c for c in status["conditions"] if c["type"] == "Suspended")
    assert suspended["status"] == "True" and suspended["reason"] == "Preempted", suspended
    assert "Kueue evicted the job" in suspended["message"], suspended
    assert status["restarts"] == 0, "a preemption by Kueue is not a failure"
    assert status["queue"]["state"] == "Evicted"
    saved = [m.step for m in queued.checkpoints("low").complete()]
    assert saved and 0 < max(saved) < LONG_RUN, saved

    high = queued.wait("high", "Succeeded", "Failed")
    assert high["phase"] == "Succeeded", yaml.safe_dump(high)
    low = queued.wait("low", "Succeeded", "Failed", timeout=2 * TRAIN_TIMEOUT)
    assert low["phase"] == "Succeeded", yaml.safe_dump(low)
    assert low["restarts"] == 0 and low["attempt"] == 0, "Kueue readmits the same Job"
    assert queued.jobs("low") == ["low-0"]
    assert low["progress"]["step"] == LONG_RUN
    summary = queued.summary("low")
    assert summary["globalStep"] == LONG_RUN
    assert summary["resumedFromStep"] == max(saved)
    assert low["queue"]["totalWaitSeconds"] >= low["queue"]["waitSeconds"] > 0
    reasons = {event.reason for event in queued.events("low")}
    assert {"Preempted", "Resumed", "Admitted"} <= reasons, reasons
