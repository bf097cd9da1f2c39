"""Runs the real operator beside the local cluster, under exactly the RBAC the Helm chart grants.

Either the chart is rendered with the real helm binary and its CRDs, ServiceAccount,
(Cluster)Roles, their bindings and the peering object are applied (``OperatorInstall.apply``),
or a release that ``helm install`` made is read back (``OperatorInstall.from_release``). The
chart's webhook configurations are (re)created just before each operator starts, which may only
patch them, and deleted when it stops. The
operator then runs as ``python -m kubesft_operator``, the operator image's command, with a
kubeconfig for that ServiceAccount and the environment the chart's Deployment sets. Only what
differs outside a pod is replaced: the webhook is addressed by URL on loopback instead of
through a Service, and ports are free ones. The e2e tests, the benchmarks and ``make demo`` use it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testing.devcluster.chart import find, render
from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import wait_until
from testing.devcluster.operator_image import operator_in_image
from testing.devcluster.processes import die_with_parent, free_port

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
SETUP_KINDS = (
    "CustomResourceDefinition",
    "Namespace",
    *RBAC_KINDS,
    "ClusterKopfPeering",
    "KopfPeering",
    "Secret",  # the operator's signing key
)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_priorities = itertools.count(1000)
IMAGE_COMMAND = (str(Path(__file__).with_name("operator_as_in_its_image.py")),)
"""``python -m kubesft_operator`` without what the operator image does not install."""


def next_peering_priority() -> int:
    """A peering priority above every operator started before in this process, live or killed."""
    return next(_priorities)


@dataclass
class OperatorInstall:
    """The chart's objects for one release, applied to the cluster, and what the operator needs."""

    cluster: Cluster
    namespace: str
    service_account: str
    kubeconfig: Path
    env: dict[str, str]
    webhook_configuration: str
    webhook_configurations: list[dict[str, Any]] = field(default_factory=list)
    """The chart's webhook configurations, as it renders them."""
    pod_spec: dict[str, Any] = field(default_factory=dict)
    """The Deployment's pod template spec: what the operator runs as when started from its image."""

    @classmethod
    def apply(
        cls,
        cluster: Cluster,
        *,
        release: str = "kubesft",
        namespace: str = "kubesft-system",
        values: Mapping[str, Any] | None = None,
    ) -> OperatorInstall:
        docs = render(values, release=release, namespace=namespace)
        setup: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        ]
        setup += [doc for doc in docs if doc["kind"] in SETUP_KINDS]
        cluster.kube.apply_crds_first(setup)
        (deployment,) = find(docs, "Deployment")
        install = cls._of_deployment(cluster, namespace, deployment)
        install.webhook_configurations = [doc for doc in docs if doc["kind"] in WEBHOOK_KINDS]
        return install

    @classmethod
    def from_release(
        cls, cluster: Cluster, *, release: str = "kubesft", namespace: str = "kubesft-system"
    ) -> OperatorInstall:
        """The operator as an installed release sets it up: its Deployment's env and ServiceAccount."""
        found = cluster.kube.resource("apps/v1", "Deployment").get(
            namespace=namespace, label_selector=f"app.kubernetes.io/instance={release}"
        )
        deployments: list[dict[str, Any]] = found.to_dict()["items"]
        if len(deployments) != 1:
            raise LookupError(f"release {release} has {len(deployments)} Deployments in {namespace}, not 1")
        install = cls._of_deployment(cluster, namespace, deployments[0])
        for kind in WEBHOOK_KINDS if install.webhook_configuration else ():
            found = cluster.kube.get("admissionregistration.k8s.io/v1", kind, install.webhook_configuration)
            if found is not None:
                meta = {
                    k: found["metadata"][k]
                    for k in ("name", "labels", "annotations")
                    if k in found["metadata"]
                }
                install.webhook_configurations.append({**found, "metadata": meta})
        return install

    @classmethod
    def _of_deployment(cls, cluster: Cluster, namespace: str, deployment: dict[str, Any]) -> OperatorInstall:
        pod = deployment["spec"]["template"]["spec"]
        account = pod["serviceAccountName"]
        env = _plain_env(pod["containers"][0]["env"], namespace, cluster)
        return cls(
            cluster=cluster,
            namespace=namespace,
            service_account=account,
            kubeconfig=cluster.kubeconfig_for_service_account(namespace, account),
            env=env,
            webhook_configuration=env.get("KUBESFT_WEBHOOK_CONFIGURATION", ""),
            pod_spec=pod,
        )

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def create_webhook_configurations(self) -> None:
        """The chart's webhook configurations, for the operator to point at itself."""
        for body in self.webhook_configurations:
            if self.cluster.kube.get(body["apiVersion"], body["kind"], body["metadata"]["name"]) is None:
                self.cluster.kube.apply(body)

    def delete_webhook_configurations(self) -> None:
        for kind in WEBHOOK_KINDS:
            self.cluster.kubectl(
                "delete", kind.lower(), self.webhook_configuration, "--ignore-not-found", check=False
            )


def _plain_env(env: list[dict[str, Any]], namespace: str, cluster: Cluster) -> dict[str, str]:
    """The Deployment's variables, references resolved as the kubelet would: the downward-API
    namespace and keys of Secrets in the operator's namespace."""
    out: dict[str, str] = {}
    for item in env:
        source = item.get("valueFrom") or {}
        # The API server drops empty values, so an installed item may have neither field.
        if "valueFrom" not in item:
            out[item["name"]] = str(item.get("value", ""))
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            out[item["name"]] = namespace
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = cluster.kube.get("v1", "Secret", ref["name"], namespace)
            if secret is None:
                raise ValueError(f"the operator's Secret {namespace}/{ref['name']} does not exist")
            out[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        else:
            raise ValueError(f"the harness cannot resolve {item}")
    return out


@dataclass
class OperatorProcess:
    """``python -m kubesft_operator`` as a child process, with its log in a file.

    ``tie_to_parent``: the caller alone stops the operator. It runs in a session of its own, so a
    Ctrl-C in the terminal does not stop it before the caller has cleaned up, and the kernel kills
    it when the thread that started it exits, so a hard-killed caller leaves no operator behind;
    only for callers that start it from the thread that lives longest (the main thread).
    """

    install: OperatorInstall
    log_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    tie_to_parent: bool = False
    # What follows the interpreter: the operator image's command, or e.g. a profiling wrapper.
    python_args: tuple[str, ...] = IMAGE_COMMAND
    # Start the Deployment's container inside this local image instead (testing/devcluster/operator_image.py).
    image: str | None = None
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    health_port: int = 0
    webhook_port: int = 0

    def start(self, timeout: float = 60.0) -> None:
        self.metrics_port, self.health_port, self.webhook_port = free_port(), free_port(), free_port()
        settings = {
            **self.install.env,
            "KUBECONFIG": str(self.install.kubeconfig),
            "KUBESFT_LISTEN_ADDRESS": "127.0.0.1",
            "KUBESFT_METRICS_PORT": str(self.metrics_port),
            "KUBESFT_HEALTH_PORT": str(self.health_port),
            "KUBESFT_WEBHOOK_LISTEN_ADDRESS": "127.0.0.1",
            "KUBESFT_WEBHOOK_PORT": str(self.webhook_port),
            # Outside a pod the API server calls the operator on loopback, not through a Service.
            "KUBESFT_WEBHOOK_SERVICE_NAME": "",
            "KUBESFT_WEBHOOK_HOST": "127.0.0.1",
            # A restarted operator must not wait for its dead predecessor's peering record to expire.
            "KUBESFT_PEERING_PRIORITY": str(next_peering_priority()),
            "PYTHONUNBUFFERED": "1",
            **self.overrides,
        }
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBESFT_")}, **settings}
        argv = [sys.executable, *self.python_args]
        if self.image is not None:
            directory = self.log_path.with_suffix(".container")
            argv = operator_in_image(
                self.image, self.install.pod_spec, settings, self.install.kubeconfig, directory
            )
        if self.publishes_webhook:
            self.install.create_webhook_configurations()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent if self.tie_to_parent else None,
                start_new_session=self.tie_to_parent,
            )
        wait_until(
            self._ready, timeout=timeout, describe=lambda: f"the operator never became ready:\n{self.log()}"
        )

    def _ready(self) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as response:
                healthy = response.status == 200
        except OSError:
            return None
        if not healthy:
            return None
        if self.publishes_webhook and "published ValidatingWebhookConfiguration" not in self.log():
            return None
        return True

    @property
    def publishes_webhook(self) -> bool:
        env = {**self.install.env, **self.overrides}
        return env.get("KUBESFT_WEBHOOK_ENABLED", "true") == "true" and bool(
            env.get("KUBESFT_WEBHOOK_CONFIGURATION")
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def kill(self) -> None:
        """SIGKILL, as when the operator's pod or node dies: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def running_operator(
    install: OperatorInstall,
    log_path: Path,
    *,
    tie_to_parent: bool = False,
    python_args: tuple[str, ...] = IMAGE_COMMAND,
    env: Mapping[str, str] | None = None,
    image: str | None = None,
    **overrides: str,
) -> Iterator[OperatorProcess]:
    """Start the operator; on exit delete the SFTJobs it still handles, stop it, remove its webhooks.

    The webhook configurations go too: with failurePolicy Fail, one left pointing at a stopped
    operator would refuse every later SFTJob in the session.
    """
    operator = OperatorProcess(
        install,
        log_path,
        {**(env or {}), **overrides},
        tie_to_parent=tie_to_parent,
        python_args=python_args,
        image=image,
    )
    operator.start()
    try:
        yield operator
    finally:
        try:
            if operator.process is not None and operator.process.poll() is None:
                _delete_all_sftjobs(install.cluster)
        finally:
            operator.stop()
            if operator.publishes_webhook:
                install.delete_webhook_configurations()


def _delete_all_sftjobs(cluster: Cluster, timeout: float = 60.0) -> None:
    """Delete every SFTJob, and wait until they are gone."""
    cluster.kubectl("delete", "sftjobs", "--all-namespaces", "--all", "--wait=false", check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = cluster.kubectl("get", "sftjobs", "-A", "-o", "name", check=False).stdout.strip()
        if not left:
            return
        time.sleep(0.5)


def wait_for_phase(
    cluster: Cluster, namespace: str, name: str, *phases: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until the SFTJob's status.phase is one of ``phases``; returns the SFTJob."""
    return cluster.kube.wait_for_phase(
        "kubesft.io/v1alpha1", "SFTJob", name, namespace, phases, timeout=timeout
    )


def patch_sftjob_spec(
    cluster: Cluster, namespace: str, name: str, spec: dict[str, Any], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``kubectl patch --type=merge`` of the SFTJob's spec, as a user edits a job."""
    patch = json.dumps({"spec": spec})
    return cluster.kubectl("-n", namespace, "patch", "sftjob", name, "--type=merge", "-p", patch, check=check)
