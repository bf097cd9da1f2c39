"""Two operator replicas elect one active replica through the chart's Kopf peering object.

Both run under the chart's RBAC. The standby pauses while the active replica runs, and takes
over when it stops. The webhook is off here: each replica outside a cluster would announce its
own address, while in a cluster both sit behind one Service with one certificate.
"""

from __future__ import annotations

import contextlib

import pytest
import yaml

from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import wait_until
from testing.devcluster.operator_install import (
    OperatorInstall,
    next_peering_priority,
    patch_sftjob_spec,
    running_operator,
    wait_for_phase,
)
from tests.support.operator_objects import spec_dict


def test_standby_replica_takes_over_when_the_active_one_stops(
    cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    install = OperatorInstall.apply(cluster)
    logs = tmp_path_factory.mktemp("peering")
    # Above any operator an earlier test killed, whose record stays in the peering object for its
    # lifetime and would keep both replicas paused.
    standby_priority = next_peering_priority()
    active_priority = next_peering_priority()
    with contextlib.ExitStack() as stack:
        active, standby = (
            stack.enter_context(
                running_operator(
                    install,
                    logs / f"{role}.log",
                    KUBESFT_WEBHOOK_ENABLED="false",
                    KUBESFT_PEERING_PRIORITY=str(priority),
                )
            )
            for role, priority in (("active", active_priority), ("standby", standby_priority))
        )

        # Kopf starts paused and resumes only if no peer has a higher priority: the standby never does.
        def peers() -> dict[str, dict[str, object]]:
            peering = cluster.kube.get("kopf.dev/v1", "ClusterKopfPeering", "kubesft") or {}
            return dict(peering.get("status") or {})

        wait_until(
            lambda: (
                {active_priority, standby_priority} <= {peer.get("priority") for peer in peers().values()}
                or None
            ),
            timeout=60,
            describe=lambda: f"both replicas never appeared in the peering object: {peers()}",
        )
        job = {
            "apiVersion": "kubesft.io/v1alpha1",
            "kind": "SFTJob",
            "metadata": {"name": "elected", "namespace": namespace},
            "spec": spec_dict(),
        }
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
        wait_for_phase(cluster, namespace, "elected", "Pending")
        assert "created Job" in active.log()
        assert "created Job" not in standby.log()
        assert "Resuming operations" not in standby.log()

        active.stop()
        wait_until(
            lambda: "Resuming operations" in standby.log() or None,
            timeout=60,
            describe=lambda: f"the standby never resumed:\n{standby.log()}",
        )
        patch_sftjob_spec(cluster, namespace, "elected", {"runPolicy": {"suspend": True}})
        wait_for_phase(cluster, namespace, "elected", "Suspended")
        # The standby did the suspending: the Job stays, with its own .spec.suspend set.
        trainer_job = cluster.kube.get("batch/v1", "Job", "elected-0", namespace)
        assert trainer_job is not None and trainer_job["spec"]["suspend"] is True, trainer_job
