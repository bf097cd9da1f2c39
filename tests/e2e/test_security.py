"""Multi-tenant safety end to end: an SFTJob can do no more than its creator, the platform's
policy holds with or without the webhook, the operator trusts no pod, and no Secret leaks.

One operator runs for the module under the chart's RBAC (testing/devcluster/operator_install.py),
installed with a policy: PriorityClasses ``team-*`` only, checkpoints and output under
``s3://kubesft/{namespace}/``, and the defaults for images (the trainer's repository) and
ambient credentials (refused). Tenants are real users with client certificates and only the
RBAC each test gives them. "Bypassing the webhook" deletes both webhook configurations for a
while, as an admin could, or as a cluster would behave with the operator down and
``failurePolicy: Ignore``; the operator must then refuse by itself.

Trainer pods that must misbehave run ``tests/support/progress_server.py`` in place of the
trainer (the process node's command override): an image a tenant controls could answer
``/progress`` with anything.

What this cluster cannot show: NetworkPolicies are created, accepted by the API server and
select the right pods, but no CNI here enforces them, so no packet is actually dropped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesft_operator.authorization import ALLOWED_TTL_SECONDS
from kubesft_operator.records import ANNOTATION_ADMITTED_BY
from testing.devcluster.chart import find, render
from testing.devcluster.cluster import Cluster
from testing.devcluster.containers import CommandOverride
from testing.devcluster.kube import wait_until
from testing.devcluster.operator_install import (
    WEBHOOK_KINDS,
    OperatorInstall,
    OperatorProcess,
    patch_sftjob_spec,
    running_operator,
    wait_for_phase,
)
from testing.devcluster.s3 import S3Server
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl
from tests.support.specs import changed

RELEASE, OPERATOR_NAMESPACE = "sec", "kubesft-sec"
VALUES = {
    "leaderElection.peeringName": "sec",
    "policy.allowedPriorityClasses": ["team-*"],
    "policy.storagePrefixes": ["s3://kubesft/{namespace}/"],
}
SFTJOB = ("kubesft.io/v1alpha1", "SFTJob")
TEAM_SECRET, OTHER_SECRET = "team-s3", "other-team-s3"
DENIED = 'admission webhook "validate.sftjobs.kubesft.io" denied the request'
SERVER = Path(__file__).resolve().parents[1] / "support" / "progress_server.py"
ADMISSION = "admissionregistration.k8s.io/v1"


# --- the module's operator, tenants and helpers ------------------------------------------------


@pytest.fixture(scope="module")
def install(cluster: Cluster) -> OperatorInstall:
    return OperatorInstall.apply(cluster, release=RELEASE, namespace=OPERATOR_NAMESPACE, values=VALUES)


@pytest.fixture(scope="module")
def operator(install: OperatorInstall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("security") / "operator.log"
    with running_operator(install, log, KUBESFT_PROGRESS_INTERVAL_SECONDS="1") as running:
        yield running


def job_spec(namespace: str, name: str, **changes: Any) -> dict[str, Any]:
    """A spec that meets the module's policy; ``changes`` set dotted paths (``a__b``), None removes."""
    spec: dict[str, Any] = {
        "model": {"uri": "s3://kubesft/shared/model", "chatTemplate": "chatml"},
        "dataset": {"uri": "s3://kubesft/shared/chat.jsonl"},
        "training": {"maxSteps": 10},
        "checkpoints": {
            "uri": f"s3://kubesft/{namespace}/{name}/checkpoints",
            "credentialsSecret": {"name": TEAM_SECRET},
        },
        "output": {"uri": f"s3://kubesft/{namespace}/{name}/output"},
        "resources": {"gpusPerNode": 0, "cpu": "100m", "memory": "256Mi", "sharedMemory": "64Mi"},
        "runPolicy": {"backoffLimit": 0, "terminationGracePeriodSeconds": 30},
    }
    return changed(spec, **changes)


def manifest(
    namespace: str, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
) -> str:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    # These tests are about who may do what, at admission and at each start; the CPU validation
    # stage before training is tested in test_sftjob_lifecycle.py.
    spec = {"validation": {"enabled": False}, **spec}
    if annotations:
        meta["annotations"] = annotations
    return yaml.safe_dump(
        {"apiVersion": "kubesft.io/v1alpha1", "kind": "SFTJob", "metadata": meta, "spec": spec}
    )


def create(
    cluster: Cluster,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    kubeconfig: Path | None = None,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "create", "-f", "-", input=manifest(namespace, name, spec, **kw), kubeconfig=kubeconfig, check=False
    )


def sftjob(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found = cluster.kube.get(*SFTJOB, name, namespace)
    assert found is not None, f"SFTJob {namespace}/{name} is gone"
    return found


def failure(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The Failed condition, once the SFTJob has failed."""
    done = wait_for_phase(cluster, namespace, name, "Failed", "Succeeded", timeout=timeout)
    assert done["status"]["phase"] == "Failed", done["status"]
    return next(c for c in done["status"]["conditions"] if c["type"] == "Failed")


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": encoded,
    }


@dataclass
class Tenant:
    """A namespace with two Secrets and two users who may create SFTJobs in it: alice may read
    ``team-s3`` and create pods; bob may read ``team-s3`` but create no pods. Neither may read
    ``other-team-s3``."""

    namespace: str
    alice: Path
    bob: Path


def _role(namespace: str, name: str, pods: bool) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["kubesft.io"],
            "resources": ["sftjobs"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [TEAM_SECRET], "verbs": ["get"]},
    ]
    if pods:
        rules.append({"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules,
    }


def _binding(namespace: str, role: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


@pytest.fixture
def tenant(cluster: Cluster, namespace: str, operator: OperatorProcess) -> Tenant:
    cluster.kube.apply(
        [
            secret(
                namespace, TEAM_SECRET, {"AWS_ACCESS_KEY_ID": "team", "AWS_SECRET_ACCESS_KEY": "team-key"}
            ),
            secret(
                namespace, OTHER_SECRET, {"AWS_ACCESS_KEY_ID": "other", "AWS_SECRET_ACCESS_KEY": "other-key"}
            ),
            _role(namespace, "sftjob-author", pods=True),
            _binding(namespace, "sftjob-author", "alice"),
            _role(namespace, "sftjob-editor", pods=False),
            _binding(namespace, "sftjob-editor", "bob"),
        ]
    )
    return Tenant(
        namespace,
        cluster.kubeconfig_for("alice", ["team-a"], namespace=namespace),
        cluster.kubeconfig_for("bob", ["team-a"], namespace=namespace),
    )


def _webhook_refuses(cluster: Cluster, namespace: str) -> bool:
    """Whether admission reaches the webhook now: a server-side dry run of a spec only it refuses."""
    spec = job_spec(namespace, "probe", model__chatTemplate="llama")  # not a template: the CRD admits it
    result = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=manifest(namespace, "probe", spec), check=False
    )
    return DENIED in result.stderr


@contextlib.contextmanager
def webhooks_bypassed(cluster: Cluster, install: OperatorInstall, namespace: str) -> Iterator[None]:
    """No webhook runs for SFTJobs until the block ends; then the operator's are back as they were."""
    saved = [cluster.kube.get(ADMISSION, kind, install.webhook_configuration) for kind in WEBHOOK_KINDS]
    install.delete_webhook_configurations()
    wait_until(
        lambda: None if _webhook_refuses(cluster, namespace) else True,
        timeout=30,
        describe=lambda: "the API server still calls the deleted webhooks",
    )
    try:
        yield
    finally:
        for body in saved:
            assert body is not None
            body["metadata"] = {
                "name": body["metadata"]["name"],
                "labels": body["metadata"].get("labels", {}),
            }
            cluster.kube.apply(body)
        wait_until(
            lambda: _webhook_refuses(cluster, namespace) or None,
            timeout=30,
            describe=lambda: "the restored webhooks are not called",
        )


@contextlib.contextmanager
def stand_in(cluster: Cluster, job: str, mode: str) -> Iterator[None]:
    """The trainer pods of SFTJob ``job`` run the progress server in ``mode`` instead."""
    override = CommandOverride(
        command=("python", str(SERVER), mode),
        image_pattern="*kubesft-trainer*",
        pod_labels={"kubesft.io/job": job},
    )
    cluster.node.options.command_overrides.append(override)
    try:
        yield
    finally:
        cluster.node.options.command_overrides.remove(override)


def trainer_pods(cluster: Cluster, namespace: str, job: str) -> list[Any]:
    return list(
        cluster.kube.core.list_namespaced_pod(namespace, label_selector=f"kubesft.io/job={job}").items
    )


def running_pod(cluster: Cluster, namespace: str, job: str) -> Any:
    def find_running() -> Any:
        for pod in trainer_pods(cluster, namespace, job):
            if pod.status.phase == "Running" and pod.metadata.owner_references:
                return pod
        return None

    return wait_until(find_running, timeout=60, describe=lambda: f"no running trainer pod of {job}")


# --- 1. no privilege escalation through the operator ----------------------------------------------


def test_a_user_may_not_name_a_secret_they_cannot_read(cluster: Cluster, tenant: Tenant) -> None:
    ns = tenant.namespace
    spec = job_spec(ns, "steal", resources__envFrom=[{"secretRef": {"name": OTHER_SECRET}}])
    result = create(cluster, ns, "steal", spec, tenant.alice)
    assert DENIED in result.stderr, result.stderr
    assert (
        f"spec.resources.envFrom[0].secretRef: user 'alice' may not get secrets '{OTHER_SECRET}' in namespace {ns}"
        in result.stderr
    )
    # The same through the S3 credentials, the hub token and a single variable.
    for name, changes in (
        ("steal-s3", {"checkpoints__credentialsSecret": {"name": OTHER_SECRET}}),
        ("steal-token", {"model__tokenSecret": {"name": OTHER_SECRET, "key": "AWS_SECRET_ACCESS_KEY"}}),
        (
            "steal-env",
            {
                "resources__env": [
                    {
                        "name": "STOLEN",
                        "valueFrom": {"secretKeyRef": {"name": OTHER_SECRET, "key": "AWS_ACCESS_KEY_ID"}},
                    }
                ]
            },
        ),
    ):
        result = create(cluster, ns, name, job_spec(ns, name, **changes), tenant.alice)
        assert f"may not get secrets '{OTHER_SECRET}'" in result.stderr, (name, result.stderr)
    assert cluster.kube.get(*SFTJOB, "steal", ns) is None


def test_a_user_who_may_not_create_pods_may_not_have_the_operator_create_them(
    cluster: Cluster, tenant: Tenant
) -> None:
    result = create(cluster, tenant.namespace, "no-pods", job_spec(tenant.namespace, "no-pods"), tenant.bob)
    assert DENIED in result.stderr
    assert f"user 'bob' may not create pods in namespace {tenant.namespace}" in result.stderr


def test_what_the_creator_may_do_is_admitted_and_recorded(cluster: Cluster, tenant: Tenant) -> None:
    ns = tenant.namespace
    result = create(cluster, ns, "allowed", job_spec(ns, "allowed"), tenant.alice)
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: cluster.kube.get("batch/v1", "Job", "allowed-0", ns),
        timeout=60,
        describe=lambda: f"no trainer Job: {sftjob(cluster, ns, 'allowed').get('status')}",
    )
    record = json.loads(sftjob(cluster, ns, "allowed")["metadata"]["annotations"][ANNOTATION_ADMITTED_BY])
    assert record["username"] == "alice" and "team-a" in record["groups"]
    # alice cannot rewrite the record: the mutating webhook keeps the one it made.
    forged = json.dumps({"username": "admin", "groups": ["system:masters"]})
    cluster.kubectl(
        "annotate",
        "--overwrite",
        "sft",
        "allowed",
        f"{ANNOTATION_ADMITTED_BY}={forged}",
        "-n",
        ns,
        kubeconfig=tenant.alice,
    )
    kept = json.loads(sftjob(cluster, ns, "allowed")["metadata"]["annotations"][ANNOTATION_ADMITTED_BY])
    assert kept["username"] == "alice"


def test_a_suspend_by_someone_else_keeps_the_creator(cluster: Cluster, tenant: Tenant) -> None:
    """The patch creates runPolicy, which the API server fills with its defaults: no new spec."""
    ns = tenant.namespace
    assert create(cluster, ns, "kept", job_spec(ns, "kept", runPolicy=None), tenant.alice).returncode == 0
    patch_sftjob_spec(cluster, ns, "kept", {"runPolicy": {"suspend": True}})
    suspended = sftjob(cluster, ns, "kept")
    assert suspended["spec"]["runPolicy"]["suspend"] is True
    assert json.loads(suspended["metadata"]["annotations"][ANNOTATION_ADMITTED_BY])["username"] == "alice"


def test_the_operator_checks_the_recorded_creator_again_before_a_start(
    cluster: Cluster, tenant: Tenant
) -> None:
    ns = tenant.namespace
    spec = job_spec(ns, "revoked", runPolicy__suspend=True)
    assert create(cluster, ns, "revoked", spec, tenant.alice).returncode == 0
    wait_for_phase(cluster, ns, "revoked", "Suspended")
    # alice loses the Secret; an admin resumes her job, which changes no permission-relevant field.
    role = _role(ns, "sftjob-author", pods=True)
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["secrets"]]
    cluster.kubectl("replace", "-f", "-", input=yaml.safe_dump(role))
    # The webhook's "yes" at the create is kept this long, by design; after it, the question is asked again.
    time.sleep(ALLOWED_TTL_SECONDS + 1)
    patch_sftjob_spec(cluster, ns, "revoked", {"runPolicy": {"suspend": False}})
    failed = failure(cluster, ns, "revoked")
    assert failed["reason"] == "Unauthorized"
    assert (
        f"spec.checkpoints.credentialsSecret: user 'alice' may not get secrets '{TEAM_SECRET}'"
        in failed["message"]
    )
    assert cluster.kube.get("batch/v1", "Job", "revoked-0", ns) is None


def test_an_sftjob_that_bypassed_the_webhook_does_not_start(
    cluster: Cluster, tenant: Tenant, install: OperatorInstall
) -> None:
    ns = tenant.namespace
    forged = {ANNOTATION_ADMITTED_BY: json.dumps({"username": "admin", "groups": ["system:masters"]})}
    spec = job_spec(ns, "bypass", resources__envFrom=[{"secretRef": {"name": OTHER_SECRET}}])
    with webhooks_bypassed(cluster, install, ns):
        result = create(cluster, ns, "bypass", spec, tenant.alice, annotations=forged)
        assert result.returncode == 0, result.stderr
        failed = failure(cluster, ns, "bypass")
    assert failed["reason"] == "NotAdmitted", failed
    assert "no admission record from the kubesft webhook that matches its spec" in failed["message"]
    assert cluster.kube.get("batch/v1", "Job", "bypass-0", ns) is None


# --- 2. platform policy, at admission and in the operator ---------------------------------------

POLICY_REFUSALS = [
    (
        "image",
        {"resources__image": "docker.io/someone/miner:1"},
        "spec.resources.image: 'docker.io/someone/miner:1' matches no pattern of policy.allowedImages "
        "(ghcr.io/kubesft/kubesft-trainer:*, ghcr.io/kubesft/kubesft-trainer@sha256:*)",
    ),
    (
        "priority",
        {"resources__priorityClassName": "system-cluster-critical"},
        "spec.resources.priorityClassName: 'system-cluster-critical' is not in policy.allowedPriorityClasses (team-*)",
    ),
    (
        "other-prefix",
        {"output__uri": "s3://kubesft/team-b/models/stolen"},
        "spec.output.uri: 's3://kubesft/team-b/models/stolen' is outside policy.storagePrefixes",
    ),
    (
        "ambient",
        {"checkpoints__credentialsSecret": None},
        "spec.checkpoints.credentialsSecret: required, because policy.allowAmbientCredentials is false "
        "and spec.model.uri uses S3 (s3://kubesft/shared/model)",
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "expected"), POLICY_REFUSALS, ids=[c[0] for c in POLICY_REFUSALS]
)
def test_policy_violations_are_refused_at_admission_naming_field_and_policy(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    case: str,
    changes: dict[str, Any],
    expected: str,
) -> None:
    changes = {
        key: value.replace("{ns}", namespace) if isinstance(value, str) else value
        for key, value in changes.items()
    }
    result = create(cluster, namespace, case, job_spec(namespace, case, **changes))
    assert DENIED in result.stderr, result.stderr
    assert expected.replace("{ns}", namespace) in result.stderr, result.stderr


def test_what_the_policy_allows_is_admitted(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec = job_spec(
        namespace,
        "allowed",
        resources__priorityClassName="team-high",
        resources__image="ghcr.io/kubesft/kubesft-trainer:0.1.0",
    )
    result = create(cluster, namespace, "allowed", spec)
    assert result.returncode == 0, result.stderr


def test_the_operator_enforces_the_policy_without_the_webhook(
    cluster: Cluster, tenant: Tenant, install: OperatorInstall
) -> None:
    ns = tenant.namespace
    with webhooks_bypassed(cluster, install, ns):
        spec = job_spec(ns, "miner", resources__image="docker.io/someone/miner:1")
        assert create(cluster, ns, "miner", spec).returncode == 0
        failed = failure(cluster, ns, "miner")
    assert failed["reason"] == "PolicyViolation"
    assert (
        "spec.resources.image: 'docker.io/someone/miner:1' matches no pattern of policy.allowedImages"
        in (failed["message"])
    )
    assert cluster.kube.get("batch/v1", "Job", "miner-0", ns) is None


# --- 3. the operator trusts no pod ----------------------------------------------------------------


def _progress_requests(cluster: Cluster, namespace: str, pod: str) -> list[str]:
    return [line for line in cluster.node.logs(namespace, pod).splitlines() if line.startswith("GET ")]


@pytest.mark.parametrize("mode", ["redirect", "huge", "slow"])
def test_progress_is_not_taken_from_a_pod_that_answers_with_anything_but_a_report(
    cluster: Cluster, tenant: Tenant, mode: str
) -> None:
    ns, name = tenant.namespace, f"hostile-{mode}"
    with stand_in(cluster, name, mode):
        assert create(cluster, ns, name, job_spec(ns, name)).returncode == 0
        pod = running_pod(cluster, ns, name)
        wait_until(
            lambda: len(_progress_requests(cluster, ns, pod.metadata.name)) >= 3 or None,
            timeout=60,
            describe=lambda: (
                f"the operator did not read /progress: {cluster.node.logs(ns, pod.metadata.name)}"
            ),
        )
        if mode == "slow":
            time.sleep(3)  # the last read has run past its timeout
        status = sftjob(cluster, ns, name).get("status") or {}
    assert "progress" not in status, status
    if mode == "redirect":
        assert "GET /real" not in _progress_requests(cluster, ns, pod.metadata.name), (
            "it followed the redirect"
        )


def test_progress_is_taken_from_an_honest_pod(cluster: Cluster, tenant: Tenant) -> None:
    """The control for the test above: the same set-up, answering with a report, shows in status."""
    ns = tenant.namespace
    with stand_in(cluster, "honest", "honest"):
        assert create(cluster, ns, "honest", job_spec(ns, "honest")).returncode == 0
        wait_until(
            lambda: (sftjob(cluster, ns, "honest").get("status") or {}).get("progress"),
            timeout=60,
            describe=lambda: f"no progress in status: {sftjob(cluster, ns, 'honest').get('status')}",
        )
    assert sftjob(cluster, ns, "honest")["status"]["progress"]["step"] == 7


def _forged_pod(namespace: str, victim: str, name: str, mode: str) -> dict[str, Any]:
    """A pod with every label of the victim's attempt-0 trainer, made by someone who may create pods."""
    labels = {
        "app.kubernetes.io/name": "kubesft",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/instance": victim,
        "app.kubernetes.io/managed-by": "kubesft-operator",
        "kubesft.io/job": victim,
        "kubesft.io/attempt": "0",
        "job-name": f"{victim}-0",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "trainer", "image": "forger:1", "command": ["python", str(SERVER), mode, "999"]}
            ],
        },
    }


def test_a_pod_with_another_jobs_labels_is_not_read_or_counted(cluster: Cluster, tenant: Tenant) -> None:
    ns = tenant.namespace
    with stand_in(cluster, "victim", "silent"):
        assert create(cluster, ns, "victim", job_spec(ns, "victim")).returncode == 0
        real = running_pod(cluster, ns, "victim")
        wait_for_phase(cluster, ns, "victim", "Running")
        cluster.kube.apply([_forged_pod(ns, "victim", "forged-progress", "honest")])
        cluster.kube.apply([_forged_pod(ns, "victim", "forged-success", "exit")])
        cluster.kube.wait_for_pod_phase(ns, "forged-success", "Succeeded")
        wait_until(
            lambda: len(_progress_requests(cluster, ns, real.metadata.name)) >= 3 or None,
            timeout=60,
            describe=lambda: "the operator did not read the real pod's /progress",
        )
        status = sftjob(cluster, ns, "victim")["status"]
    # A pod that finished with the victim's labels did not finish the victim, and the forged
    # report (step 999) never reached its status.
    assert status["phase"] == "Running", status
    assert "progress" not in status, status
    assert not _progress_requests(cluster, ns, "forged-progress"), "the operator read the forged pod"


# --- 4. narrow webhook rights ------------------------------------------------------------------


def _can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
    return result.stdout.strip() == "yes"


def test_the_operator_may_only_patch_its_own_webhook_configurations(
    cluster: Cluster, install: OperatorInstall, operator: OperatorProcess
) -> None:
    name = install.webhook_configuration
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        assert not _can_i(cluster, install.kubeconfig, "create", kind)
        assert not _can_i(cluster, install.kubeconfig, "patch", f"{kind}/someone-elses")
        assert not _can_i(cluster, install.kubeconfig, "delete", f"{kind}/{name}")
        assert _can_i(cluster, install.kubeconfig, "patch", f"{kind}/{name}")
    # And with that alone it pointed both at itself.
    for kind in WEBHOOK_KINDS:
        (hook,) = (cluster.kube.get(ADMISSION, kind, name) or {})["webhooks"]
        assert hook["clientConfig"]["caBundle"] and hook["clientConfig"]["url"].startswith(
            "https://127.0.0.1:"
        )
    calls = {
        (e["verb"], e["objectRef"].get("name"))
        for e in cluster.audit_events(install.username)
        if (e.get("objectRef") or {}).get("resource", "").endswith("webhookconfigurations")
    }
    assert calls == {("patch", name)}, calls


def test_a_namespaced_install_that_is_down_blocks_sftjob_writes_only_in_its_namespaces(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    watched, elsewhere = f"sec-watched-{secrets.token_hex(3)}", f"sec-other-{secrets.token_hex(3)}"
    for name in (watched, elsewhere):
        cluster.kubectl("create", "namespace", name)
        # The webhooks' namespaceSelector matches this label, which Kubernetes sets itself from 1.21.
        cluster.kubectl("label", "--overwrite", "namespace", name, f"kubernetes.io/metadata.name={name}")
        cluster.kube.apply(
            [secret(name, TEAM_SECRET, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})]
        )
    down = OperatorInstall.apply(
        cluster,
        release="sec-ns",
        namespace="kubesft-sec-ns",
        values={"watchNamespaces": [watched], "leaderElection.peeringName": "sec-ns"},
    )
    try:
        # Its configurations exist, as the chart made them, but no operator answers them.
        down.create_webhook_configurations()
        for kind in WEBHOOK_KINDS:
            (hook,) = (cluster.kube.get(ADMISSION, kind, down.webhook_configuration) or {})["webhooks"]
            assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [watched]
        blocked = create(cluster, watched, "blocked", job_spec(watched, "blocked"))
        assert blocked.returncode != 0 and "failed calling webhook" in blocked.stderr, blocked.stderr
        passed = create(cluster, elsewhere, "passes", job_spec(elsewhere, "passes"))
        assert passed.returncode == 0, passed.stderr
    finally:
        down.delete_webhook_configurations()
        for name in (watched, elsewhere):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- 5. the applied-spec record cannot be forged ---------------------------------------------------

APPLIED = "kubesft.io/applied-spec"


def _started(cluster: Cluster, tenant: Tenant, name: str) -> dict[str, Any]:
    ns = tenant.namespace
    assert create(cluster, ns, name, job_spec(ns, name), tenant.alice).returncode == 0
    running_pod(cluster, ns, name)
    return wait_for_phase(cluster, ns, name, "Running")


def test_an_edited_applied_spec_is_put_back_by_the_webhook(cluster: Cluster, tenant: Tenant) -> None:
    ns = tenant.namespace
    with stand_in(cluster, "held", "silent"):
        before = _started(cluster, tenant, "held")["metadata"]["annotations"][APPLIED]
        edited = json.loads(before)
        edited["training"]["maxSteps"] = 100000
        cluster.kubectl(
            "annotate",
            "--overwrite",
            "sft",
            "held",
            f"{APPLIED}={json.dumps(edited)}",
            "-n",
            ns,
            kubeconfig=tenant.alice,
        )
        cluster.kubectl("annotate", "sft", "held", f"{APPLIED}-", "-n", ns, kubeconfig=tenant.alice)
        after = sftjob(cluster, ns, "held")
    assert after["metadata"]["annotations"][APPLIED] == before
    assert after["status"]["phase"] == "Running"


def _sftjob_reader(namespace: str) -> dict[str, Any]:
    """A Role that may only get SFTJobs in ``namespace``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "sftjob-reader", "namespace": namespace},
        "rules": [{"apiGroups": ["kubesft.io"], "resources": ["sftjobs"], "verbs": ["get"]}],
    }


def test_only_the_operators_own_writes_skip_the_webhooks(
    cluster: Cluster, tenant: Tenant, install: OperatorInstall, operator: OperatorProcess
) -> None:
    """The operator's signed records need no webhook: a matchCondition skips both for its
    requests alone. Shown with server-side dry runs of the same unsigned record: the tenant's is
    put back by the mutating webhook, the operator's service account's is not looked at."""
    ns = tenant.namespace
    for kind in WEBHOOK_KINDS:
        (hook,) = (cluster.kube.get(ADMISSION, kind, install.webhook_configuration) or {})["webhooks"]
        assert [c["name"] for c in hook.get("matchConditions", [])] == ["not-the-operator"]
    with stand_in(cluster, "records", "silent"):
        before = _started(cluster, tenant, "records")["metadata"]["annotations"][APPLIED]
        unsigned = json.dumps({"metadata": {"annotations": {APPLIED: '{"unsigned": true}'}}})
        dry_run = [
            "patch",
            "sft",
            "records",
            "-n",
            ns,
            "--type=merge",
            "--dry-run=server",
            "-o",
            "json",
            "-p",
        ]
        by_tenant = json.loads(cluster.kubectl(*dry_run, unsigned, kubeconfig=tenant.alice).stdout)
        # kubectl reads the object before it patches; the operator itself only watches SFTJobs.
        cluster.kube.apply([_sftjob_reader(ns), _binding(ns, "sftjob-reader", install.username)])
        by_operator = json.loads(cluster.kubectl(*dry_run, unsigned, kubeconfig=install.kubeconfig).stdout)
    assert by_tenant["metadata"]["annotations"][APPLIED] == before
    assert by_operator["metadata"]["annotations"][APPLIED] == '{"unsigned": true}'


def test_an_applied_spec_edited_past_the_webhook_fails_the_job_instead_of_running_it(
    cluster: Cluster, tenant: Tenant, install: OperatorInstall
) -> None:
    ns = tenant.namespace
    with stand_in(cluster, "tampered", "silent"):
        applied = json.loads(_started(cluster, tenant, "tampered")["metadata"]["annotations"][APPLIED])
        with webhooks_bypassed(cluster, install, ns):
            # Rewrite the record and the spec together, as one would to slip a change past immutability:
            # the CRD's own transition rules refuse the spec change.
            applied["training"]["maxSteps"] = 100000
            record = {"metadata": {"annotations": {APPLIED: json.dumps(applied, sort_keys=True)}}}
            patch = ["patch", "sft", "tampered", "-n", ns, "--type=merge", "-p"]
            refused = cluster.kubectl(
                *patch, json.dumps({**record, "spec": applied}), kubeconfig=tenant.alice, check=False
            )
            assert refused.returncode != 0 and "spec.training: Invalid value" in refused.stderr, (
                refused.stderr
            )
            # The record alone can still be rewritten without the webhook: the operator notices.
            cluster.kubectl(*patch, json.dumps(record), kubeconfig=tenant.alice)
            failed = failure(cluster, ns, "tampered")
    assert failed["reason"] == "SpecRecordAltered"
    assert "kubesft.io/applied-spec was changed or removed outside the operator" in failed["message"]
    cluster.kube.wait_for_deletion("batch/v1", "Job", "tampered-0", ns, timeout=60)


# --- 6. a NetworkPolicy per job, and one for the operator -----------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def test_each_job_gets_a_network_policy_that_admits_only_operator_and_prometheus(
    cluster: Cluster, tenant: Tenant, install: OperatorInstall
) -> None:
    """Created, accepted by the API server and selecting the job's pods; no CNI here enforces it."""
    ns = tenant.namespace
    with stand_in(cluster, "fenced", "silent"):
        assert create(cluster, ns, "fenced", job_spec(ns, "fenced")).returncode == 0
        pod = running_pod(cluster, ns, "fenced")
    policy = cluster.kube.get("networking.k8s.io/v1", "NetworkPolicy", "fenced-trainers", ns)
    assert policy is not None
    owner = sftjob(cluster, ns, "fenced")["metadata"]["uid"]
    assert [ref["uid"] for ref in policy["metadata"]["ownerReferences"]] == [owner]
    spec = policy["spec"]
    assert _selects(spec["podSelector"], pod.metadata.labels)
    assert spec["policyTypes"] == ["Ingress"], "egress stays open by default"
    operator_peer, prometheus_rule = spec["ingress"][0], spec["ingress"][1]
    assert operator_peer["ports"] == [{"protocol": "TCP", "port": 9090}]
    (peer,) = operator_peer["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}
    # The operator's pods as the chart's Deployment labels them.
    (deployment,) = find(render(VALUES, release=RELEASE, namespace=OPERATOR_NAMESPACE), "Deployment")
    assert _selects(peer["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert prometheus_rule["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    assert len(spec["ingress"]) == 2, "a one-node job has no peers of its own"
    # A two-node job's ranks reach each other on every port; the policy exists before its pods.
    pair = job_spec(ns, "fenced-pair", resources__nodes=2)
    with stand_in(cluster, "fenced-pair", "silent"):
        assert create(cluster, ns, "fenced-pair", pair).returncode == 0
        pair_policy = wait_until(
            lambda: cluster.kube.get("networking.k8s.io/v1", "NetworkPolicy", "fenced-pair-trainers", ns),
            timeout=60,
            describe=lambda: f"no NetworkPolicy: {sftjob(cluster, ns, 'fenced-pair').get('status')}",
        )
        cluster.kubectl("delete", "sft", "fenced-pair", "-n", ns, "--wait=false")
    assert pair_policy["spec"]["ingress"][-1] == {
        "from": [{"podSelector": {"matchLabels": {"kubesft.io/job": "fenced-pair"}}}]
    }
    # Deleting the job deletes its policy (garbage collection by owner reference).
    cluster.kubectl("delete", "sft", "fenced", "-n", ns)
    cluster.kube.wait_for_deletion("networking.k8s.io/v1", "NetworkPolicy", "fenced-trainers", ns, timeout=60)


def test_the_chart_fences_the_operator_too(cluster: Cluster) -> None:
    docs = render(VALUES, release=RELEASE, namespace=OPERATOR_NAMESPACE)
    (policy,) = find(docs, "NetworkPolicy")
    (deployment,) = find(docs, "Deployment")
    assert _selects(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    # The API server accepts it as the chart renders it.
    cluster.kube.apply(policy)
    stored = cluster.kube.get(
        "networking.k8s.io/v1", "NetworkPolicy", policy["metadata"]["name"], OPERATOR_NAMESPACE
    )
    assert stored is not None and stored["spec"]["policyTypes"] == ["Ingress"]
    ports = {port["port"] for rule in stored["spec"]["ingress"] for port in rule["ports"]}
    assert ports == {8080, 8081, 9443}


# --- 7. no Secret value leaks ----------------------------------------------------------------------


def _stage_inputs(s3: S3Server, directory: Path) -> tuple[str, str]:
    s3.upload_directory(build_tiny_model(directory / "model"), "security/model")
    data = write_jsonl(directory / "data" / "chat.jsonl", chat_rows(60))
    s3.upload_directory(data.parent, "security/data")
    return s3.uri("security/model"), s3.uri("security/data/chat.jsonl")


def _leak_secrets(namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Secrets with values found nowhere else, and those values."""
    values = {
        "access": "AKIA" + secrets.token_hex(8).upper(),
        "secret": secrets.token_urlsafe(30),
        "hf": "hf_" + secrets.token_urlsafe(24),
        "tracker": "trk_" + secrets.token_urlsafe(24),
        "extra": "pw_" + secrets.token_urlsafe(24),
    }
    objects = [
        secret(
            namespace,
            "leak-s3",
            {"AWS_ACCESS_KEY_ID": values["access"], "AWS_SECRET_ACCESS_KEY": values["secret"]},
        ),
        secret(namespace, "leak-hf", {"HF_TOKEN": values["hf"]}),
        secret(namespace, "leak-tracker", {"token": values["tracker"]}),
        secret(namespace, "leak-extra", {"PASSWORD": values["extra"]}),
    ]
    return objects, list(values.values())


def _everything_written(cluster: Cluster, operator: OperatorProcess, namespace: str) -> dict[str, str]:
    """Where a Secret value could have ended up, by where it is: objects as JSON, logs as text."""
    found: dict[str, str] = {}
    for kind in ("configmaps", "events", "sftjobs", "jobs", "pods", "networkpolicies"):
        found[kind] = cluster.kubectl("get", kind, "--all-namespaces", "-o", "json").stdout
    found["operator log"] = operator.log()
    for pod in trainer_pods(cluster, namespace, "leak"):
        found[f"log of {pod.metadata.name}"] = cluster.node.logs(namespace, pod.metadata.name)
        directory = cluster.node.pod_directory(namespace, pod.metadata.name)
        for path in directory.rglob("termination-log"):
            found[f"termination message of {pod.metadata.name}"] = path.read_text(errors="replace")
    return found


def test_no_secret_value_appears_anywhere_after_a_real_run(
    cluster: Cluster,
    s3: S3Server,
    tenant: Tenant,
    install: OperatorInstall,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    ns = tenant.namespace
    model, data = _stage_inputs(s3, tmp_path)
    objects, values = _leak_secrets(ns)
    cluster.kube.apply(objects)
    spec = job_spec(
        ns,
        "leak",
        model__uri=model,
        model__tokenSecret={"name": "leak-hf", "key": "HF_TOKEN"},
        dataset__uri=data,
        training={
            "maxSteps": 6,
            "perDeviceBatchSize": 4,
            "maxLength": 64,
            "gradientCheckpointing": False,
            "precision": "fp32",
        },
        checkpoints__credentialsSecret={"name": "leak-s3"},
        checkpoints__endpointUrl=s3.endpoint_url,
        checkpoints__saveSteps=3,
        resources__cpu="1",
        resources__memory="4Gi",
        resources__env=[
            {"name": "OMP_NUM_THREADS", "value": "1"},
            {
                "name": "TRACKER_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "leak-tracker", "key": "token"}},
            },
        ],
        resources__envFrom=[{"secretRef": {"name": "leak-extra"}, "prefix": "APP_"}],
    )
    assert create(cluster, ns, "leak", spec).returncode == 0
    done = wait_for_phase(cluster, ns, "leak", "Succeeded", "Failed", timeout=600)
    assert done["status"]["phase"] == "Succeeded", yaml.safe_dump(done["status"])
    # The values did reach the trainer: the environment the process node started it with.
    (pod,) = trainer_pods(cluster, ns, "leak")
    plans = (cluster.node.pod_directory(ns, pod.metadata.name) / "containers").rglob("plan-*.json")
    started_with = json.loads(next(plans).read_text())["env"]
    assert {
        started_with[k] for k in ("AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "TRACKER_TOKEN", "APP_PASSWORD")
    } <= set(values)
    signing = cluster.kube.get("v1", "Secret", f"{RELEASE}-kubesft-signing-key", OPERATOR_NAMESPACE) or {}
    values.append(base64.b64decode(signing["data"]["key"]).decode())
    written = _everything_written(cluster, operator, ns)
    assert any("log of leak-0" in where for where in written), sorted(written)
    # The search finds a value where one is: in the Secrets themselves, base64-encoded.
    secrets_json = cluster.kubectl("get", "secrets", "-n", ns, "-o", "json").stdout
    assert all(base64.b64encode(value.encode()).decode() in secrets_json for value in values[:5])
    leaks = [
        f"{where} holds {value[:6]}…"
        for where, text in written.items()
        for value in values
        for form in (value, base64.b64encode(value.encode()).decode())
        if form in text
    ]
    assert not leaks, leaks
