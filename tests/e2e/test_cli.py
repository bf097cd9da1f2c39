"""The ``kubesft`` command and Python client against the local cluster, the real operator and S3.

The command runs as a person runs it (``python -m kubesft``, and ``kubectl sft`` through
kubectl's plugin lookup), with the admin kubeconfig and, for ``download``, the standard AWS
variables of a local credential. ``logs`` reads through the API server's ``pods/log``, which the
process node serves as a kubelet does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubesft import Client, SFTJob
from kubesft.errors import CRDNotInstalledError, api_error
from kubesft_api.pod_contract import CONTAINER_NAME, LABEL_ATTEMPT, LABEL_JOB
from testing.devcluster.cluster import Cluster
from testing.devcluster.mlflow_server import MlflowServer
from testing.devcluster.operator_install import OperatorInstall, running_operator
from testing.devcluster.s3 import S3Server
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl

PREFIX = "cli-e2e"
SECRET = "s3-credentials"
TIMEOUT = 300
STEPS = 240
"""Steps of the job suspended mid-run: enough that the suspension lands while it trains."""


@dataclass
class Setup:
    cluster: Cluster
    s3: S3Server
    namespace: str
    work: Path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -m kubesft`` with the admin kubeconfig and a local S3 credential."""
        command = [sys.executable, "-m", "kubesft", "--kubeconfig", str(self.cluster.kubeconfig), *args]
        env = {**os.environ, **self.s3.env(), "COLUMNS": "120"}
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubesft {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def run_flags(self, name: str, steps: int, save_steps: int) -> list[str]:
        """``run`` of a tiny CPU job, written with the flags a person would type."""
        return [
            *("-n", self.namespace, "run", "--name", name),
            *self.spec_flags(name, steps, save_steps),
        ]

    def spec_flags(self, name: str, steps: int, save_steps: int) -> list[str]:
        return [
            *("--model", self.s3.uri(f"{PREFIX}/inputs/model"), "--chat-template", "chatml"),
            *("--dataset", self.s3.uri(f"{PREFIX}/inputs/chat.jsonl")),
            *("--output", self.s3.uri(f"{PREFIX}/{name}/output")),
            *("--checkpoints", self.s3.uri(f"{PREFIX}/{name}/checkpoints"), "--save-steps", str(save_steps)),
            *("--s3-endpoint", self.s3.endpoint_url, "--s3-secret", SECRET),
            *(
                "--max-steps",
                str(steps),
                "--learning-rate",
                "1e-3",
                "--batch-size",
                "4",
                "--max-length",
                "64",
            ),
            *("--logging-steps", "1", "--no_gradient_checkpointing", "--precision", "fp32"),
            *("--gpus", "0", "--cpu", "1", "--memory", "4Gi", "--set", "resources.sharedMemory=64Mi"),
            # No runPolicy flag: suspend must work on a job created without the section.
            *("--env", "OMP_NUM_THREADS=1"),
        ]

    def client(self) -> Client:
        return Client(kubeconfig=self.cluster.kubeconfig, namespace=self.namespace)


@pytest.fixture(scope="module")
def setup(cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("cli-e2e")
    build_tiny_model(work / "inputs" / "model")
    write_jsonl(work / "inputs" / "chat.jsonl", chat_rows(64))
    s3.upload_directory(work / "inputs", f"{PREFIX}/inputs")
    namespace = "kubesft-cli-e2e"
    cluster.kubectl("create", "namespace", namespace)
    s3.credentials_secret(cluster.kube.api, namespace, SECRET)
    install = OperatorInstall.apply(cluster)
    try:
        with running_operator(install, work / "operator.log", KUBESFT_PROGRESS_INTERVAL_SECONDS="1"):
            yield Setup(cluster, s3, namespace, work)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_run_wait_then_status_and_download(setup: Setup) -> None:
    steps = 150
    run = setup.cli(*setup.run_flags("tiny", steps=steps, save_steps=10), "--wait")
    assert "sftjob tiny created in namespace kubesft-cli-e2e" in run.stdout
    assert f"SFTJob tiny succeeded; model in {setup.s3.uri(f'{PREFIX}/tiny/output')}" in run.stdout
    assert "tiny: Running" in run.stderr and "tiny: Succeeded" in run.stderr, run.stderr

    status = setup.cli("-n", setup.namespace, "status", "tiny").stdout
    lines = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in status.splitlines() if ":" in line
    }
    assert lines["Phase"] == "Succeeded (attempt 0, restarts 0)", status
    assert lines.get("Progress", "").startswith(f"{steps}/{steps} (100%)"), status
    assert lines["Output"] == setup.s3.uri(f"{PREFIX}/tiny/output"), status
    assert lines["Checkpoint"].startswith(setup.s3.uri(f"{PREFIX}/tiny/checkpoints/")), status
    assert float(lines["Loss"].split()[0]) > 0, status
    for reason in ("JobCreated", "Completed"):
        assert reason in status, status

    (pod,) = setup.cluster.kube.core.list_namespaced_pod(
        setup.namespace, label_selector=f"{LABEL_JOB}=tiny,{LABEL_ATTEMPT}"
    ).items
    trainer_log = setup.cluster.node.logs(setup.namespace, pod.metadata.name, CONTAINER_NAME)
    assert trainer_log.strip(), "the trainer wrote nothing"
    logs = setup.cli("-n", setup.namespace, "logs", "tiny")
    assert logs.stdout.splitlines() == trainer_log.splitlines(), logs.stderr
    followed = setup.cli("-n", setup.namespace, "logs", "tiny", "-f", "--attempt", "0")
    assert followed.stdout == logs.stdout
    no_rank = setup.cli("-n", setup.namespace, "logs", "tiny", "--rank", "1", check=False)
    assert (no_rank.returncode, no_rank.stderr) == (
        1,
        "kubesft: error: no pod for rank 1 of attempt 0 of SFTJob tiny in namespace kubesft-cli-e2e "
        "(not started yet, or removed with its Job)\n",
    )

    listing = setup.cli("-n", setup.namespace, "list").stdout.splitlines()
    assert listing[0].split() == ["NAME", "PHASE", "PROGRESS", "LOSS", "ETA", "RESTARTS", "AGE"]
    assert listing[1].split()[:4] == ["tiny", "Succeeded", f"{steps}/{steps}", "(100%)"], listing

    target = setup.work / "download"
    download = setup.cli("-n", setup.namespace, "download", "tiny", str(target))
    keys = setup.s3.client().list_objects_v2(Bucket=setup.s3.bucket, Prefix=f"{PREFIX}/tiny/output/")[
        "Contents"
    ]
    expected = sorted(item["Key"].removeprefix(f"{PREFIX}/tiny/output/") for item in keys)
    got = sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file())
    assert got == expected and "model.safetensors" in got, (got, download.stdout)
    for item in keys:
        relative = item["Key"].removeprefix(f"{PREFIX}/tiny/output/")
        assert (target / relative).stat().st_size == item["Size"], relative
    assert f"downloaded {len(expected)} files to {target}" in download.stdout


def test_suspend_and_resume_with_the_python_client_watching(setup: Setup) -> None:
    kube = setup.client()
    dry = setup.cli(*setup.run_flags("pausing", steps=STEPS, save_steps=1000), "--dry-run").stdout
    created = kube.create(SFTJob.from_dict(yaml.safe_load(dry)))
    assert created.namespace == setup.namespace

    seen: list[tuple[str | None, int | None]] = []

    def training(job: SFTJob) -> None:
        progress = job.status.progress if job.status else None
        seen.append((job.phase, progress.step if progress else None))

    for event in kube.watch("pausing", timeout=TIMEOUT):
        training(event.job)
        if event.job.phase == "Running" and (seen[-1][1] or 0) >= 2:
            break
    else:
        raise AssertionError(f"pausing never trained: {seen}")

    suspend = setup.cli("-n", setup.namespace, "suspend", "pausing")
    assert "sftjob pausing suspending" in suspend.stdout
    for event in kube.watch("pausing", timeout=TIMEOUT):
        if event.job.phase in ("Suspended", "Failed", "Succeeded"):
            assert event.job.phase == "Suspended", event.job.status
            break
    assert kube.get("pausing").spec.run_policy.suspend is True

    setup.cli("-n", setup.namespace, "resume", "pausing")
    # The suspended pods are gone: followed from its start, the resumed pod's log until its trainer exits.
    resumed_log = list(kube.logs("pausing", follow=True))
    assert any("resuming from " in line for line in resumed_log), resumed_log[-40:]
    waited = setup.cli("-n", setup.namespace, "wait", "pausing", "--timeout", str(TIMEOUT))
    assert "SFTJob pausing succeeded" in waited.stdout, waited.stderr
    done = kube.wait("pausing", timeout=10, callback=training)
    assert done.phase == "Succeeded" and done.status is not None and done.status.progress is not None
    assert done.status.progress.step == STEPS and done.status.restarts == 0
    assert done.status.progress.resumed_from_step, "the resumed attempt started over"
    reasons = {event.reason for event in kube.events("pausing")}
    assert {"Suspending", "Suspended", "Resumed"} <= reasons, reasons

    setup.cli("-n", setup.namespace, "delete", "pausing")
    gone = setup.cli("-n", setup.namespace, "status", "pausing", check=False)
    assert gone.returncode == 1
    assert gone.stderr.strip() == f"kubesft: error: SFTJob pausing not found in namespace {setup.namespace}"


@pytest.fixture(scope="module")
def mlflow(setup: Setup) -> Iterator[MlflowServer]:
    """A real MLflow tracking server (sqlite backend) on the bridge address pods reach."""
    server = MlflowServer(setup.cluster.state, setup.cluster.node.host_ip)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_run_tracked_in_mlflow_has_its_params_and_loss_history(setup: Setup, mlflow: MlflowServer) -> None:
    steps = 12
    tracking = ("--mlflow-tracking-uri", mlflow.tracking_uri, "--mlflow-experiment", "cli-e2e")
    setup.cli(*setup.run_flags("tracked", steps, save_steps=100), *tracking, "--run-name", "tiny", "--wait")
    progress = setup.client().get("tracked").status.progress  # type: ignore[union-attr]
    assert progress is not None and progress.mlflow_run_id, progress
    client = mlflow.client()
    experiment = client.get_experiment_by_name("cli-e2e")
    run_id = progress.mlflow_run_id
    url = f"{mlflow.tracking_uri}/#/experiments/{experiment.experiment_id}/runs/{run_id}"
    assert progress.mlflow_run_url == url

    run = client.get_run(run_id)
    assert (run.info.status, run.info.run_name) == ("FINISHED", "tiny")
    assert run.data.tags["kubesft.job"] == "tracked"
    assert run.data.params["spec.training.maxSteps"] == str(steps)
    assert float(run.data.params["sft.learning_rate"]) == 1e-3
    history = client.get_metric_history(run_id, "loss")
    assert [point.step for point in history] == list(range(1, steps + 1))
    assert all(point.value > 0 for point in history)
    assert [point.step for point in client.get_metric_history(run_id, "learning_rate")] == [
        point.step for point in history
    ]

    status = setup.cli("-n", setup.namespace, "status", "tracked").stdout
    assert f"MLflow run:     {url}" in status, status
    card = setup.s3.client().get_object(Bucket=setup.s3.bucket, Key=f"{PREFIX}/tracked/output/README.md")
    assert f"- MLflow run: [{run_id}]({url})" in card["Body"].read().decode()


def test_errors_name_their_cause_against_the_api_server(setup: Setup) -> None:
    nobody = setup.cluster.kubeconfig_for("nobody", namespace=setup.namespace)
    denied = subprocess.run(
        [sys.executable, "-m", "kubesft", "--kubeconfig", str(nobody), "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode == 1
    line = denied.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(
        f"kubesft: error: forbidden: you may not list sftjobs.kubesft.io in namespace {setup.namespace} ("
    ), line
    assert 'User "nobody" cannot list resource "sftjobs"' in line

    # What a cluster without the CRD answers, read from a group this API server does not serve.
    custom = client.CustomObjectsApi(setup.cluster.kube.api)
    with pytest.raises(client.ApiException) as missing:
        custom.get_namespaced_custom_object("nothing.kubesft.io", "v1", setup.namespace, "sftjobs", "x")
    assert isinstance(api_error(missing.value, verb="get", name="x"), CRDNotInstalledError)

    refused = setup.cli(
        "-n", setup.namespace, "run", "--name", "Bad_Name", *setup.spec_flags("x", 1, 1), check=False
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("kubesft: error: the API server refused SFTJob Bad_Name: "), (
        refused.stderr
    )
    assert "metadata.name" in refused.stderr and refused.stderr.count("\n") == 1


def test_kubectl_finds_the_plugin(setup: Setup) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [
            "kubectl",
            "sft",
            "--kubeconfig",
            str(setup.cluster.kubeconfig),
            "-n",
            setup.namespace,
            "list",
            "-A",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n", 1)[0].split()[:3] == ["NAMESPACE", "NAME", "PHASE"], result.stdout
