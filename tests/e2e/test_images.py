"""Containers inside the real images: both built from their Dockerfiles, run by the process node
in the image's root filesystem as the pod's user, and the demo SFTJob trained by a trainer pod
inside the trainer image under the operator started from the operator image."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from testing.devcluster.cluster import Cluster
from testing.devcluster.s3 import S3Server
from tests.support.demo_run import demo_settings, run_demo_then_uninstall
from tests.support.images import BuiltImages

PROBE = """
import errno, json, os
report = {
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()), "cwd": os.getcwd(),
    "env": {k: os.environ.get(k) for k in ("PYTHONUNBUFFERED", "GREETING", "PATH")},
    "host_repo_visible": os.path.exists(REPO),
}
import kubesft_operator
report["package"] = kubesft_operator.__file__
for path in ("/probe-root-write", "/scratch/probe", "/tmp/probe"):
    try:
        open(path, "w").write("x")
        report[path] = "written"
    except OSError as err:
        report[path] = errno.errorcode[err.errno]
print(json.dumps(report))
"""


def _pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": containers,
            **spec,
        },
    }


def _plan(cluster: Cluster, namespace: str, pod: str, container: str) -> dict[str, Any]:
    plan = cluster.node.pod_directory(namespace, pod) / "containers" / container / "plan-0.json"
    return dict(json.loads(plan.read_text()))


def test_container_runs_in_its_image_as_the_pods_user_with_a_read_only_root(
    cluster: Cluster, namespace: str, images: BuiltImages
) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    container = {
        "name": "probe",
        "image": images.operator.name,
        "command": ["python", "-c", f"REPO = {repo!r}\n" + textwrap.dedent(PROBE)],
        "env": [{"name": "GREETING", "value": "hello"}],
        "securityContext": {"readOnlyRootFilesystem": True, "runAsUser": 4321, "runAsGroup": 4322},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    pod = _pod(
        "probe", [container], securityContext={"fsGroup": 5000}, volumes=[{"name": "scratch", "emptyDir": {}}]
    )
    cluster.kube.apply(pod, namespace)
    cluster.kube.wait_for_pod_phase(namespace, "probe", "Succeeded")
    report = json.loads(cluster.node.logs(namespace, "probe").strip().splitlines()[-1])

    assert (report["uid"], report["gid"]) == (4321, 4322)
    assert 5000 in report["groups"]
    assert report["cwd"] == "/"  # the operator image's WORKDIR
    assert report["env"]["PYTHONUNBUFFERED"] == "1"  # the image's ENV, below the pod's own
    assert report["env"]["GREETING"] == "hello"
    assert report["host_repo_visible"] is False
    assert not report["package"].startswith(repo), report["package"]
    assert report["/probe-root-write"] == "EROFS"
    assert report["/scratch/probe"] == "written"
    assert report["/tmp/probe"] == "EROFS"  # no volume at /tmp: part of the read-only root


def test_image_entrypoint_cmd_workdir_and_env_apply_without_a_command(
    cluster: Cluster, namespace: str, images: BuiltImages
) -> None:
    containers = [
        # No command: the image's ENTRYPOINT (python -m kubesft_trainer) with the pod's args.
        {"name": "entrypoint", "image": images.trainer.name, "args": ["--help"]},
        {
            "name": "workdir",
            "image": images.trainer.name,
            "command": ["python", "-c", "import os; print(os.getcwd(), os.environ['HF_HOME'], os.getuid())"],
        },
    ]
    cluster.kube.apply(_pod("entry", containers), namespace)
    cluster.kube.wait_for_pod_phase(namespace, "entry", "Succeeded", timeout=180)

    assert "usage:" in cluster.node.logs(namespace, "entry", "entrypoint")
    # WORKDIR, ENV and USER of the trainer Dockerfile.
    assert cluster.node.logs(namespace, "entry", "workdir").split() == [
        "/var/lib/kubesft",
        "/var/lib/kubesft/hf",
        "1000",
    ]
    plan = _plan(cluster, namespace, "entry", "entrypoint")
    assert plan["argv"] == [*images.trainer.entrypoint, "--help"]
    assert plan["image"]["lower"] == str(images.trainer.rootfs)


@pytest.mark.slow
def test_demo_job_succeeds_in_the_trainer_image_under_the_operator_from_its_image(
    cluster: Cluster, s3: S3Server, namespace: str, images: BuiltImages, tmp_path: Path
) -> None:
    settings = demo_settings(
        "images-e2e",
        namespace,
        tmp_path / "results",
        max_steps=8,
        timeout_seconds=600,
        operator_image=images.operator.name,
        trainer_image=images.trainer.name,
    )
    operator_root: dict[str, str] = {}
    trainer_pods: list[Any] = []
    trainer_logs: list[str] = []

    def inspect_operator() -> None:
        """While the operator still runs: its process's root directory and user."""
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                root = str(Path(f"/proc/{pid}/root").readlink())
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if b"kubesft_operator" in cmdline and root != "/":
                uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
                operator_root.update(root=root, uid=uid)
        # The trainer pods are still there: the SFTJob (their owner) goes when the operator stops.
        # Trainer pods carry an attempt label; the validation pod (also in the image) does not.
        trainer_pods.extend(
            cluster.kube.core.list_namespaced_pod(namespace, label_selector="kubesft.io/attempt").items
        )
        trainer_logs.extend(cluster.node.logs(namespace, pod.metadata.name) for pod in trainer_pods)

    result, lines = run_demo_then_uninstall(cluster, s3, settings, keep=inspect_operator)
    text = "\n".join(lines)
    assert result.phase == "Succeeded", text
    assert result.final_loss is not None and result.first_loss is not None

    # The operator ran chrooted into the operator image's root, as the chart's non-root user.
    assert operator_root.get("uid") == "65532", operator_root
    assert operator_root["root"].endswith("/rootfs"), operator_root

    (trainer_pod,) = trainer_pods
    assert trainer_pod.spec.containers[0].image == images.trainer.name
    plan = _plan(cluster, namespace, trainer_pod.metadata.name, trainer_pod.spec.containers[0].name)
    assert plan["image"]["lower"] == str(images.trainer.rootfs)
    assert plan["image"]["readOnly"] is True
    assert (plan["user"]["uid"], plan["user"]["gid"]) == (1000, 1000)
    # Everything the trainer writes goes to its work volume or /tmp: nothing met the read-only root.
    (log,) = trainer_logs
    print(log[-6000:])
    for sign in ("Read-only file system", "Permission denied", "not writable", "EROFS"):
        assert sign not in log, log
