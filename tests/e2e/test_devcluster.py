"""The local cluster itself: real control plane, real Job controller, the process node and S3."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from testing.devcluster.cluster import Cluster, ClusterOptions
from testing.devcluster.containers import CommandOverride
from testing.devcluster.kube import Kube, wait_until
from testing.devcluster.processes import wait_pids_gone
from testing.devcluster.s3 import S3Server

REPO = Path(__file__).resolve().parents[2]


def _job(name: str, script: str, *, backoff_limit: int = 0, **spec: Any) -> dict[str, Any]:
    template = _pod(name, script, **spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": template["spec"]}},
    }


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "python:3.11-slim",
        "command": ["python", "-c", textwrap.dedent(script)],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [container],
            **spec,
        },
    }


def _job_pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return [kube.api.sanitize_for_serialization(p) for p in pods]


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    (status,) = pod["status"]["containerStatuses"]
    terminated: dict[str, Any] = status["state"]["terminated"]
    return terminated


def test_control_plane_start_time(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    # A figure for people, not a check: with cached binaries it should be well under 10 s.
    with capsys.disabled():
        print(
            f"\ncontrol plane up in {cluster.startup_seconds:.1f}s (etcd, kube-apiserver, kube-controller-manager)"
        )
    nodes = cluster.kube.core.list_node().items
    assert [n.metadata.name for n in nodes] == [cluster.node.name]
    assert {c.type: c.status for c in nodes[0].status.conditions}["Ready"] == "True"


def test_crd_installs_and_examples_pass_server_side_dry_run(cluster: Cluster, namespace: str) -> None:
    (crd,) = cluster.kube.apply(REPO / "crds" / "sftjob.yaml")
    name = crd["metadata"]["name"]
    cluster.kube.wait_for_condition(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", name, None, "Established"
    )
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert examples, "examples/ has no manifests"
    for example in examples:
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", str(example), check=False
        )
        assert result.returncode == 0, f"{example.name} refused by the API server:\n{result.stderr}"
        assert "(server dry run)" in result.stdout

    # The structural schema carries the models' descriptions, so `kubectl explain` shows them. The
    # API server publishes a new CRD's OpenAPI a moment after it is Established.
    def explain() -> str | None:
        result = cluster.kubectl("explain", "sftjob.spec.training.assistantOnlyLoss", check=False)
        return result.stdout if result.returncode == 0 else None

    explained = wait_until(
        explain, timeout=30, describe=lambda: "kubectl explain never found the SFTJob's schema"
    )
    assert "assistantOnlyLoss" in explained and "assistant" in explained.split("DESCRIPTION:", 1)[1]


def test_job_pod_runs_as_process_and_job_completes(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings"},
                "data": {"config.yaml": "greeting: hello\n"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds"},
                "stringData": {"token": "s3cret"},
            },
        ],
        namespace,
    )
    script = """
        import os, socket
        print(open("/etc/kubesft/config.yaml").read().strip())
        print("secret", open("/var/run/creds/token").read())
        open("/opt/kubesft/scratch/note", "w").write("kept")
        print("scratch", open("/opt/kubesft/scratch/note").read())
        print("pod", os.environ["POD_NAME"], os.environ["POD_NAMESPACE"], os.environ["POD_IP"], socket.gethostname())
        print("path", os.environ["PATH"].split(":")[0])
        open("/dev/termination-log", "w").write("all done")
    """
    job = _job(
        "hello",
        script,
        container={
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "volumeMounts": [
                {"name": "settings", "mountPath": "/etc/kubesft", "readOnly": True},
                {"name": "creds", "mountPath": "/var/run/creds", "readOnly": True},
                {"name": "scratch", "mountPath": "/opt/kubesft/scratch"},
            ],
        },
        volumes=[
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    kube.apply(job, namespace)
    kube.wait_for_condition("batch/v1", "Job", "hello", namespace, "Complete", timeout=60)

    (pod,) = _job_pods(kube, namespace, "hello")
    name = pod["metadata"]["name"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["spec"]["nodeName"] == cluster.node.name
    assert pod["status"]["phase"] == "Succeeded"
    terminated = _terminated(pod)
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        0,
        "Completed",
        "all done",
    )
    assert pod["status"]["startTime"]
    logs = cluster.node.logs(namespace, name).splitlines()
    assert logs[0] == "greeting: hello"
    assert logs[1:3] == ["secret s3cret", "scratch kept"]
    assert logs[3] == f"pod {name} {namespace} {pod['status']['podIP']} {name}"
    assert logs[4] == f"path {REPO / '.venv' / 'bin'}"
    # The mounts lived only in the pod's mount namespace.
    assert not Path("/etc/kubesft").exists() and not Path("/var/run/creds").exists()
    assert not Path("/opt/kubesft").exists()


def test_kubectl_logs_reads_the_node_through_the_apiserver_as_from_a_kubelet(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """pods/log: the apiserver checks the node's serving certificate, shows its own, and the node
    serves follow, tail, timestamps, limit and previous as a kubelet does."""
    script = """
        import os, time
        for word in ("one", "two", "three"):
            print(word, flush=True)
        while not os.path.exists("/signal/go"):
            time.sleep(0.1)
        print("last", end="", flush=True)
    """
    signal = tmp_path / "signal"
    signal.mkdir()
    pod = _pod(
        "talker",
        script,
        container={"volumeMounts": [{"name": "signal", "mountPath": "/signal"}]},
        volumes=[{"name": "signal", "hostPath": {"path": str(signal), "type": "Directory"}}],
    )
    cluster.kube.apply(pod, namespace)
    cluster.kube.wait_for_pod_phase(namespace, "talker", "Running")
    cluster.node.wait_for_log(namespace, "talker", "three")
    follow = subprocess.Popen(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, "logs", "-f", "talker"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    assert [follow.stdout.readline() for _ in range(3)] == ["one\n", "two\n", "three\n"]
    (signal / "go").touch()
    rest, _ = follow.communicate(timeout=60)
    assert (rest, follow.returncode) == ("last", 0)

    def logs(*flags: str) -> str:
        return cluster.kubectl("-n", namespace, "logs", "talker", *flags).stdout

    assert logs() == "one\ntwo\nthree\nlast"
    assert logs("--tail=2") == "three\nlast"
    assert logs("--limit-bytes=6") == "one\ntw"
    stamped = logs("--timestamps").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three", "last"]
    stamps = [line.split(" ", 1)[0] for line in stamped]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp) for stamp in stamps)
    assert stamps == sorted(stamps)
    assert logs("--since=1h") == "one\ntwo\nthree\nlast"
    assert logs("--since-time=2100-01-01T00:00:00Z") == ""
    previous = cluster.kubectl("-n", namespace, "logs", "talker", "--previous", check=False)
    assert previous.returncode == 1
    assert 'previous terminated container "main" in pod "talker" not found' in previous.stderr


def test_failing_command_fails_pod_and_job_retries_to_backoff_limit(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    script = """
        import sys
        print("kubesft: error: dataset row 7 has no messages", file=sys.stderr)
        sys.exit(3)
    """
    kube.apply(
        _job(
            "fails", script, backoff_limit=1, container={"terminationMessagePolicy": "FallbackToLogsOnError"}
        ),
        namespace,
    )
    failed = kube.wait_for_condition("batch/v1", "Job", "fails", namespace, "Failed", timeout=90)
    assert {c["type"]: c.get("reason") for c in failed["status"]["conditions"]}[
        "Failed"
    ] == "BackoffLimitExceeded"
    pods = _job_pods(kube, namespace, "fails")
    # backoffLimit 1: the first pod and one retry.
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = _terminated(pod)
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert terminated["message"] == "kubesft: error: dataset row 7 has no messages"


def test_missing_secret_keeps_pod_waiting_until_it_exists(
    cluster: Cluster, namespace: str, s3: S3Server
) -> None:
    kube = cluster.kube
    script = f"""
        import boto3, os
        client = boto3.client("s3", endpoint_url={s3.endpoint_url!r}, region_name="us-east-1")
        client.put_object(Bucket={s3.bucket!r}, Key="{namespace}/from-pod.txt", Body=os.environ["HOSTNAME"].encode())
    """
    env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    kube.apply(_pod("uploader", script, container={"env": env}), namespace)

    def waiting_reason(pod: dict[str, Any]) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return (
            bool(statuses)
            and (statuses[0]["state"].get("waiting") or {}).get("reason") == "CreateContainerConfigError"
        )

    pod = kube.wait_for_object(
        "v1", "Pod", "uploader", namespace, waiting_reason, what="CreateContainerConfigError"
    )
    assert pod["status"]["phase"] == "Pending"
    assert (
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        == 'secret "s3-credentials" not found'
    )

    s3.credentials_secret(kube.api, namespace)
    kube.wait_for_pod_phase(namespace, "uploader", "Succeeded", timeout=60)
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"{namespace}/from-pod.txt")["Body"].read()
    assert body == b"uploader"


def test_env_sources_and_stand_in_command(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "knobs"}, "data": {"lr": "0.001"}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "token"},
                "stringData": {"HF_TOKEN": "hf_x"},
            },
        ],
        namespace,
    )
    pod = _pod(
        "envs",
        "raise SystemExit('the stand-in command should have run instead')",
        labels={"stand-in": namespace},
        container={
            "image": "ghcr.io/kubesft/kubesft-trainer:0.1.0",
            "env": [
                {
                    "name": "RANK",
                    "valueFrom": {
                        "fieldRef": {
                            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                        }
                    },
                },
                {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "knobs", "key": "lr"}}},
                {
                    "name": "MISSING",
                    "valueFrom": {"configMapKeyRef": {"name": "knobs", "key": "x", "optional": True}},
                },
                {
                    "name": "MEMORY_MI",
                    "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                },
                {"name": "SUMMARY", "value": "rank $(RANK) lr $(LR) $$(LR)"},
            ],
            "envFrom": [{"secretRef": {"name": "token"}, "prefix": "SECRET_"}],
            "resources": {"limits": {"memory": "512Mi"}},
        },
    )
    pod["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": "1"}
    printer = "import os; print(*(f'{k}={os.environ.get(k)}' for k in ['SUMMARY', 'MISSING', 'MEMORY_MI', 'SECRET_HF_TOKEN']))"
    override = CommandOverride(
        command=("python", "-c", printer),
        image_pattern="*kubesft-trainer*",
        pod_labels={"stand-in": namespace},
    )
    cluster.node.options.command_overrides.append(override)
    try:
        kube.apply(pod, namespace)
        kube.wait_for_pod_phase(namespace, "envs", "Succeeded")
    finally:
        cluster.node.options.command_overrides.remove(override)
    assert cluster.node.logs(namespace, "envs").strip() == (
        "SUMMARY=rank 1 lr 0.001 $(LR) MISSING=None MEMORY_MI=512 SECRET_HF_TOKEN=hf_x"
    )


def test_two_pods_share_a_port_and_reach_each_other_by_headless_service_name(
    cluster: Cluster, namespace: str
) -> None:
    kube = cluster.kube
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "peers"},
            "spec": {"clusterIP": "None", "selector": {"app": "peer"}, "ports": [{"port": 8080}]},
        },
        namespace,
    )
    script = """
        import http.server, os, socket, threading, time, urllib.request
        me, other = os.environ["ME"], os.environ["OTHER"]

        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(socket.gethostname().encode())

        server = http.server.HTTPServer(("0.0.0.0", 8080), Hello)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for _ in range(300):
            try:
                answer = urllib.request.urlopen(f"http://{other}.peers:8080/", timeout=1).read().decode()
                print(f"{me} reached {other}.peers: {answer}", flush=True)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(600)
    """
    for me, other in (("a", "b"), ("b", "a")):
        pod = _pod(
            f"peer-{me}",
            script,
            labels={"app": "peer"},
            hostname=me,
            subdomain="peers",
            terminationGracePeriodSeconds=1,
            container={"env": [{"name": "ME", "value": me}, {"name": "OTHER", "value": other}]},
        )
        kube.apply(pod, namespace)
    addresses = {}
    for me in ("a", "b"):
        pod = kube.wait_for_pod_phase(namespace, f"peer-{me}", "Running")
        addresses[me] = pod["status"]["podIP"]
        assert pod["status"]["startTime"]
        (container,) = pod["status"]["containerStatuses"]
        assert "running" in container["state"] and container["state"]["running"]["startedAt"]
    assert addresses["a"] != addresses["b"]
    for me, other in (("a", "b"), ("b", "a")):
        cluster.node.wait_for_log(namespace, f"peer-{me}", f"{me} reached {other}.peers: {other}")
    # The host reaches each pod on its own address, both listening on 8080.
    for me, address in addresses.items():
        assert urllib.request.urlopen(f"http://{address}:8080/", timeout=5).read().decode() == me


def test_deleted_pod_gets_sigterm_then_its_processes_are_gone(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    # The child leaves the process group on purpose: it must still not outlive the pod.
    script = """
        import signal, subprocess, sys, time
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        def stop(signum, frame):
            print("got SIGTERM, saving", flush=True)
            time.sleep(0.5)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("child", child.pid, flush=True)
        time.sleep(1000)
    """
    kube.apply(_pod("graceful", script, terminationGracePeriodSeconds=30), namespace)
    kube.wait_for_pod_phase(namespace, "graceful", "Running")
    cluster.node.wait_for_log(namespace, "graceful", "child")
    pids = cluster.node.pod_pids(namespace, "graceful")
    assert len(pids) == 2, pids
    kube.core.delete_namespaced_pod("graceful", namespace)
    kube.wait_for_deletion("v1", "Pod", "graceful", namespace, timeout=40)
    assert cluster.node.logs(namespace, "graceful").splitlines()[-1] == "got SIGTERM, saving"
    assert not wait_pids_gone(pids, 5.0)


def test_pod_ignoring_sigterm_is_killed_after_grace_period(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    script = """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
        print("started", flush=True)
        time.sleep(1000)
    """
    kube.apply(_pod("stubborn", script, terminationGracePeriodSeconds=1), namespace)
    kube.wait_for_pod_phase(namespace, "stubborn", "Running")
    cluster.node.wait_for_log(namespace, "stubborn", "started")
    pids = cluster.node.pod_pids(namespace, "stubborn")
    kube.core.delete_namespaced_pod("stubborn", namespace)
    kube.wait_for_deletion("v1", "Pod", "stubborn", namespace, timeout=30)
    assert "ignoring SIGTERM" in cluster.node.logs(namespace, "stubborn")
    assert not wait_pids_gone(pids, 5.0)


def test_preempted_pod_fails_with_reason(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    kube.apply(_pod("victim", "import time; print('up', flush=True); time.sleep(1000)"), namespace)
    kube.wait_for_pod_phase(namespace, "victim", "Running")
    pids = cluster.node.pod_pids(namespace, "victim")
    cluster.node.preempt_pod(namespace, "victim", reason="Preempted", message="spot capacity reclaimed")
    pod = kube.wait_for_pod_phase(namespace, "victim", "Failed")
    assert (pod["status"]["reason"], pod["status"]["message"]) == ("Preempted", "spot capacity reclaimed")
    terminated = _terminated(pod)
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    assert not wait_pids_gone(pids, 5.0)


def test_memory_limit_gives_oomkilled(cluster: Cluster, namespace: str) -> None:
    if cluster.node.cgroups.path is None:
        pytest.skip("no writable memory cgroup on this machine: the node cannot enforce memory limits")
    script = "blocks = []\nwhile True: blocks.append(bytearray(16 * 1024 * 1024))"
    cluster.kube.apply(
        _pod("hungry", script, container={"resources": {"limits": {"memory": "64Mi"}}}), namespace
    )
    pod = cluster.kube.wait_for_pod_phase(namespace, "hungry", "Failed", timeout=60)
    terminated = _terminated(pod)
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


def test_user_without_rights_is_forbidden_to_create_a_job(cluster: Cluster, namespace: str) -> None:
    nobody = Kube(cluster.kubeconfig_for("nobody", ["devs"]))
    with pytest.raises(ApiException) as refused:
        nobody.batch.create_namespaced_job(namespace, _job("sneaky", "print(1)"))
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'User "nobody" cannot create resource "jobs"' in message


def test_service_account_kubeconfig_gets_what_rbac_grants(cluster: Cluster, namespace: str) -> None:
    cluster.kube.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "pod-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        ],
        namespace,
    )
    reader = Kube(cluster.kubeconfig_for_service_account(namespace, "reader"))
    assert reader.core.list_namespaced_pod(namespace).items == []
    with pytest.raises(ApiException) as refused:
        reader.core.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    user = f"system:serviceaccount:{namespace}:reader"
    verbs = {
        (e["verb"], e["objectRef"]["resource"], e["responseStatus"]["code"])
        for e in cluster.audit_events(user)
    }
    assert {("list", "pods", 200), ("list", "secrets", 403)} <= verbs


def test_second_cluster_runs_alongside_survives_node_loss_and_leaves_nothing_behind(cluster: Cluster) -> None:
    other = Cluster.start(ClusterOptions(audit_policy=None))
    try:
        assert other.server != cluster.server
        assert other.node.host_ip != cluster.node.host_ip
        other.kube.apply(_pod("sleeper", "import time; time.sleep(1000)"), "default")
        other.kube.wait_for_pod_phase("default", "sleeper", "Running")
        pids = other.node.pod_pids("default", "sleeper")
        other.node.fail_node()
        pod = other.kube.wait_for_pod_phase("default", "sleeper", "Failed")
        assert pod["status"]["reason"] == "NodeLost"
        (node,) = other.kube.core.list_node().items
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "Unknown"
        assert not wait_pids_gone(pids, 5.0)
        control_plane_pids = [p.pid for p in other.control_plane.processes]
        netns = [r.interface.netns for r in other.node.pods.values() if r.interface]
        bridge, directory = other.node.network.bridge if other.node.network else None, other.state.directory
        cgroup = other.node.cgroups.path
    finally:
        other.stop()
    assert not wait_pids_gone(pids + control_plane_pids, 5.0)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert bridge is None or bridge not in links
    assert not any(ns in namespaces for ns in netns)
    assert not directory.exists()
    assert cgroup is None or not cgroup.exists()


def test_cluster_up_prints_a_working_kubeconfig_and_down_leaves_nothing_running(tmp_path: Path) -> None:
    """`make cluster-up` / `make cluster-down`, as a person runs them, in a runs folder of its own."""
    env = {**os.environ, "KUBESFT_DEVCLUSTER_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}

    def devcluster(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "testing.devcluster", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    started = devcluster("up")
    try:
        assert started.returncode == 0, started.stderr
        (export,) = [line for line in started.stdout.splitlines() if line.startswith("export KUBECONFIG=")]
        kubeconfig = export.split("=", 1)[1]
        owner = json.loads((tmp_path / "cluster-up.json").read_text())["owner"][0]
        nodes = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig}", "get", "nodes", "--no-headers"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert nodes.stdout.split()[:2] == ["devcluster-node", "Ready"]
        # A second `up` finds the running cluster instead of starting another.
        again = devcluster("up")
        assert again.returncode == 0 and export in again.stdout.splitlines()
        assert "S3 endpoint" in started.stderr and "pod logs:" in started.stderr
    finally:
        stopped = devcluster("down")
    assert stopped.returncode == 0 and "devcluster: stopped" in stopped.stdout, stopped.stderr
    assert wait_pids_gone([owner], 10) == []
    assert not (tmp_path / "cluster-up.json").exists()
    gone = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "--request-timeout=5s", "get", "nodes"],
        capture_output=True,
        text=True,
    )
    assert gone.returncode != 0, "the API server still answers after `down`"
