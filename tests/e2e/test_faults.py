"""Control-plane faults mid-run: the API server and etcd stop and come back, and an operator
starts while the API server is down. The processes are stopped as an outage stops them
(SIGTERM, then SIGKILL after 5 s) and started again with the same command line and data.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from testing.devcluster.cluster import Cluster
from testing.devcluster.operator_install import OperatorProcess
from testing.devcluster.s3 import S3Server
from tests.e2e.test_sftjob_lifecycle import TRAIN_TIMEOUT, running_e2e

OUTAGE_SECONDS = 8.0
STEPS = 120


def _outage(cluster: Cluster, component: str) -> None:
    cluster.control_plane.stop_component(component)
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        cluster.control_plane.start_component(component)


def test_a_job_rides_out_an_apiserver_restart_and_an_etcd_restart(
    cluster: Cluster, s3: S3Server, tmp_path: Path
) -> None:
    with running_e2e(cluster, s3, tmp_path, "kubesft-e2e-faults") as run:
        body = run.spec("outage", steps=STEPS, save_steps=1000)
        body["spec"]["validation"] = {"enabled": False}  # the outages are the subject, not validation
        run.apply(body)
        before = run.wait_until_training("outage", min_step=2)["progress"]["step"]
        _outage(cluster, "kube-apiserver")
        _outage(cluster, "etcd")
        status = run.wait("outage", "Succeeded", "Failed", timeout=2 * TRAIN_TIMEOUT)

        assert status["phase"] == "Succeeded", yaml.safe_dump(status)
        assert before < STEPS
        # The trainer went on through both outages: one Job, no restart, every step recorded.
        assert status["restarts"] == 0 and status["attempt"] == 0
        assert run.jobs("outage") == ["outage-0"]
        assert status["progress"]["step"] == STEPS
        assert status["outputUri"] == run.output_uri("outage")
        assert run.summary("outage")["globalStep"] == STEPS
        assert "Running" in run.history.phases("outage")


def test_an_operator_started_while_the_apiserver_is_down_waits_then_works(
    cluster: Cluster, s3: S3Server, tmp_path: Path
) -> None:
    with running_e2e(cluster, s3, tmp_path, "kubesft-e2e-late") as run:
        # The running operator dies; its webhook goes with it, and the new one serves none.
        run.operator.kill()
        run.operator.install.delete_webhook_configurations()
        late = OperatorProcess(
            run.operator.install,
            tmp_path / "late-operator.log",
            {"KUBESFT_PROGRESS_INTERVAL_SECONDS": "1", "KUBESFT_WEBHOOK_ENABLED": "false"},
        )
        cluster.control_plane.stop_component("kube-apiserver")
        started: list[BaseException | None] = []

        def start() -> None:
            try:
                late.start(timeout=180)
                started.append(None)
            except BaseException as error:  # reported by the test thread below
                started.append(error)

        starter = threading.Thread(target=start)
        try:
            starter.start()
            time.sleep(OUTAGE_SECONDS)
            assert late.process is not None and late.process.poll() is None, (
                f"the operator gave up while the API server was down:\n{late.log()}"
            )
            cluster.control_plane.start_component("kube-apiserver")
            starter.join(timeout=200)
            assert started == [None], f"{started}\n{late.log()[-4000:]}"

            run.apply(run.spec("after-outage", steps=6, save_steps=50))
            status = run.wait("after-outage", "Succeeded", "Failed")
            assert status["phase"] == "Succeeded", f"{yaml.safe_dump(status)}\n{late.log()[-4000:]}"
            assert run.jobs("after-outage") == ["after-outage-0"]
        finally:
            if not cluster.control_plane.component_running("kube-apiserver"):
                cluster.control_plane.start_component("kube-apiserver")
            starter.join(timeout=200)
            cluster.kubectl("-n", run.namespace, "delete", "sftjobs", "--all", "--wait=true", check=False)
            late.stop()
