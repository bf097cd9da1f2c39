"""The Helm chart, checked without a cluster: real helm, real promtool, the code's metric names."""

from __future__ import annotations

import ast
import base64
import json
import pathlib
import re
import shutil
import subprocess
import textwrap
from typing import Any

import pytest
import yaml

from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator import names
from kubesft_operator.webhook import HANDLER_ID, MUTATING_HANDLER_ID, exempt_condition
from testing.devcluster.chart import (
    CHART_DIR,
    REPO_ROOT,
    builtin_variables,
    dashboards,
    find,
    metric_names,
    panel_queries,
    panels,
    render,
    rule_groups,
    substitute,
    template_variables,
    write_rule_file,
)
from testing.devcluster.helm import HelmError, run_helm

NAMESPACED = CHART_DIR / "ci/namespaced-values.yaml"
MONITORING = CHART_DIR / "ci/monitoring-values.yaml"
ALERTS = [
    "SFTJobFailed",
    "SFTJobStalled",
    "SFTJobLossNaN",
    "SFTJobForgetting",
    "SFTJobCheckpointUploadFailing",
    "KubesftOperatorDown",
    "KubesftReconcileErrors",
]
PROMTOOL = shutil.which("promtool") or "promtool"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: run `make control-plane`"
)


def _rules_by_verb(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(
    "values_file", [None, NAMESPACED, MONITORING], ids=["default", "namespaced", "monitoring"]
)
def test_helm_lint_is_clean(values_file: pathlib.Path | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    if values_file:
        args += ["--values", str(values_file)]
    result = run_helm(*args)
    assert "0 chart(s) failed" in result.stdout


def test_default_install_is_cluster_wide_and_hardened() -> None:
    docs = render()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "MutatingWebhookConfiguration",
        "NetworkPolicy",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    assert {d["metadata"]["name"] for d in find(docs, "CustomResourceDefinition")} == {
        "sftjobs.kubesft.io",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }
    for doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        labels = doc["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by", "component", "part-of"):
            assert labels.get(f"app.kubernetes.io/{key}"), f"{doc['kind']} lacks app.kubernetes.io/{key}"

    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _operator_container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["image"] == "ghcr.io/kubesft/kubesft-operator:0.1.0"
    assert container["command"] == ["python", "-m", "kubesft_operator"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081, "webhook": 9443}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == "kubesft"

    env = _env(container)
    assert env["KUBESFT_WATCH_NAMESPACES"] == ""
    assert env["KUBESFT_STANDALONE"] == "false"
    assert env["KUBESFT_PEERING_NAME"] == "kubesft"
    assert env["KUBESFT_TRAINER_IMAGE"] == "ghcr.io/kubesft/kubesft-trainer:0.1.0"
    assert env["KUBESFT_WEBHOOK_CONFIGURATION"] == "kubesft.kubesft-system.kubesft.io"
    assert env["KUBESFT_WEBHOOK_SERVICE_NAME"] == "kubesft-webhook"
    assert env["KUBESFT_WEBHOOK_SERVICE_PORT"] == "9443"
    assert env["KUBESFT_LOG_LEVEL"] == "INFO"

    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubesft", "namespace": "kubesft-system"}
    ]
    (role,) = find(docs, "ClusterRole")
    granted = _rules_by_verb(role["rules"])
    assert ("kubesft.io", "sftjobs", "watch") in granted
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in granted
    assert not any(verb == "*" or resource == "*" for _, resource, verb in granted)
    assert not any(resource == "secrets" for _, resource, _ in granted), "the operator must not read Secrets"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": ["team-a", "team-b"]},
        {"leaderElection.enabled": False, "webhook.enabled": False},
        {"replicas": 2, "webhook.certManager.enabled": True},
    ],
    ids=["default", "namespaced", "standalone-no-webhook", "cert-manager"],
)
def test_operator_settings_accept_the_chart_env(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable the chart sets is one the operator reads, with a value it accepts."""
    from kubesft_operator.settings import OperatorSettings

    env = _env(_operator_container(render(values)))
    fields = {f"KUBESFT_{name.upper()}" for name in OperatorSettings.model_fields}
    assert set(env) <= fields, f"variables the operator does not read: {set(env) - fields}"
    for name in fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        # References are resolved by the kubelet; stand in for it.
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
        elif "secretKeyRef" in value:
            monkeypatch.setenv(name, "k" * 48)
        else:
            monkeypatch.setenv(name, "kubesft-system")
    settings = OperatorSettings()
    assert settings.watch_namespaces == values.get("watchNamespaces", [])
    assert settings.standalone is (values.get("leaderElection.enabled") is False)
    assert settings.webhook_enabled is (values.get("webhook.enabled") is not False)
    assert settings.metrics_port == 8080 and settings.health_port == 8081
    assert settings.signer is not None
    assert settings.policy.allowed_images == (
        "ghcr.io/kubesft/kubesft-trainer:*",
        "ghcr.io/kubesft/kubesft-trainer@sha256:*",
    )


def test_namespaced_install_uses_roles_per_namespace() -> None:
    docs = render(values_files=(NAMESPACED,))
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "kubesft-system"
    namespaced = _rules_by_verb(roles[0]["rules"])
    assert ("kubesft.io", "sftjobs", "patch") in namespaced
    assert ("kopf.dev", "kopfpeerings", "patch") in namespaced
    assert ("authorization.k8s.io", "localsubjectaccessreviews", "create") in namespaced
    # Cluster-wide, only what has no namespace: the CRD scan, the webhook configurations and the
    # operator's question of who it is.
    (cluster_role,) = find(docs, "ClusterRole")
    cluster_resources = {resource for _, resource, _ in _rules_by_verb(cluster_role["rules"])}
    assert cluster_resources == {
        "customresourcedefinitions",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "selfsubjectreviews",
    }
    # No more than the cluster-wide install grants, which the audit-log test in
    # tests/e2e/test_chart_install.py proves is all used (or says why not), with namespaced peering objects
    # in place of the cluster-wide one.
    (default_role,) = find(render(), "ClusterRole")
    cluster_wide = {
        (group, resource.replace("clusterkopfpeerings", "kopfpeerings"), verb)
        for group, resource, verb in _rules_by_verb(default_role["rules"])
    }
    for role in [*roles, cluster_role]:
        extra = _rules_by_verb(role["rules"]) - cluster_wide
        assert not extra, f"{role['kind']} {role['metadata'].get('namespace', '')} grants more: {extra}"
    peerings = find(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert not find(docs, "ClusterKopfPeering")
    assert _env(_operator_container(docs))["KUBESFT_WATCH_NAMESPACES"] == "team-a,team-b"


def test_the_chart_creates_both_webhook_configurations_and_the_operator_may_only_patch_them() -> None:
    docs = render()
    configurations = find(docs, "MutatingWebhookConfiguration") + find(docs, "ValidatingWebhookConfiguration")
    paths = {c["kind"]: c["webhooks"][0]["clientConfig"]["service"]["path"] for c in configurations}
    # Kopf serves each handler at /<id>.
    assert paths == {
        "MutatingWebhookConfiguration": f"/{MUTATING_HANDLER_ID}",
        "ValidatingWebhookConfiguration": f"/{HANDLER_ID}",
    }
    name = "kubesft.kubesft-system.kubesft.io"
    assert {c["metadata"]["name"] for c in configurations} == {name}
    assert all("namespaceSelector" not in c["webhooks"][0] for c in configurations)
    (role,) = find(docs, "ClusterRole")
    rules = [r for r in role["rules"] if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert rules == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            "resourceNames": [name],
            "verbs": ["patch"],
        }
    ]
    # A namespaced install's webhooks see only its namespaces.
    for configuration in find(render({"watchNamespaces": ["team-a"]}), "MutatingWebhookConfiguration") + find(
        render({"watchNamespaces": ["team-a"]}), "ValidatingWebhookConfiguration"
    ):
        assert configuration["webhooks"][0]["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}
            ]
        }


def test_the_webhooks_skip_the_operators_own_requests_where_the_server_can() -> None:
    """From Kubernetes 1.28 a matchCondition spares the operator's signed records both webhooks;
    the condition is the one the operator publishes itself once it knows its username."""
    operator = "system:serviceaccount:ml-platform:kubesft"
    for version, expected in (("1.30.0", [exempt_condition(operator)]), ("1.27.9", None)):
        docs = render(namespace="ml-platform", kube_version=version)
        configurations = find(docs, "MutatingWebhookConfiguration") + find(
            docs, "ValidatingWebhookConfiguration"
        )
        assert len(configurations) == 2
        for configuration in configurations:
            assert configuration["webhooks"][0].get("matchConditions") == expected, version


def test_the_signing_key_is_a_kept_secret_only_the_operator_pod_reads() -> None:
    docs = render()
    (key,) = find(docs, "Secret")
    assert key["metadata"]["name"] == "kubesft-signing-key"
    assert key["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert len(base64.b64decode(key["data"]["key"])) == 48
    env = _env(_operator_container(docs))
    assert env["KUBESFT_SIGNING_KEY"] == {"secretKeyRef": {"name": "kubesft-signing-key", "key": "key"}}
    assert base64.b64decode(find(render(), "Secret")[0]["data"]["key"]) != base64.b64decode(
        key["data"]["key"]
    )


def test_policy_values_reach_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesft_operator.settings import OperatorSettings

    values = {
        "policy.allowedImages": ["registry.corp/ml/*"],
        "policy.allowedPriorityClasses": ["team-*", "batch-low"],
        "policy.storagePrefixes": ["s3://models/{namespace}/"],
        "policy.allowAmbientCredentials": True,
        "policy.networkPolicy.restrictEgress": True,
        "policy.networkPolicy.egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
    }
    env = _env(_operator_container(render(values)))
    for name, value in env.items():
        if isinstance(value, str) and name.startswith(("KUBESFT_POLICY", "KUBESFT_NETWORK")):
            monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    policy = settings.policy
    assert policy.allowed_images == ("registry.corp/ml/*",)
    assert policy.allowed_priority_classes == ("team-*", "batch-low")
    assert policy.prefixes_for("team-a") == ["s3://models/team-a/"]
    assert policy.allow_ambient_credentials
    assert settings.network_policy_restrict_egress
    assert settings.network_policy_egress == [{"ports": [{"protocol": "UDP", "port": 53}]}]
    # The operator's NetworkPolicy peer is the chart's selector of its own pods.
    (deployment,) = find(render(values), "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert settings.network_policy_operator_labels.items() <= pod_labels.items()
    assert settings.network_policy_prometheus == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]


def test_network_policies_fence_the_operator_and_switch_off_together() -> None:
    docs = render()
    (policy,) = find(docs, "NetworkPolicy")
    (deployment,) = find(docs, "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    opened, scraped = policy["spec"]["ingress"]
    assert "from" not in opened, "the API server and the kubelet are not pods a selector names"
    assert {p["port"] for p in opened["ports"]} == {8081, 9443}
    assert scraped["ports"] == [{"protocol": "TCP", "port": 8080}]
    (role,) = find(docs, "ClusterRole")
    assert ("networking.k8s.io", "networkpolicies", "create") in _rules_by_verb(role["rules"])
    off = render({"policy.networkPolicy.enabled": False})
    assert not find(off, "NetworkPolicy")
    (role,) = find(off, "ClusterRole")
    assert "networkpolicies" not in str(role["rules"])
    assert _env(_operator_container(off))["KUBESFT_NETWORK_POLICY_ENABLED"] == "false"
    no_prometheus = render({"policy.networkPolicy.prometheus": []})
    assert len(find(no_prometheus, "NetworkPolicy")[0]["spec"]["ingress"]) == 1


def test_monitoring_objects_select_what_they_should() -> None:
    docs = render(values_files=(MONITORING,))
    (service,) = [s for s in find(docs, "Service") if s["metadata"]["name"] == "kubesft-metrics"]
    (monitor,) = find(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The Service must reach the operator pods.
    (deployment,) = find(docs, "Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    # The PodMonitor selects the pods the operator labels, and names the SFTJob from its label.
    (pod_monitor,) = find(docs, "PodMonitor")
    trainer_labels = names.child_labels("smollm2-chat")
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= trainer_labels.items()
    assert names.LABEL_INSTANCE not in selector and names.LABEL_JOB not in selector
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics"
    job_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", names.LABEL_JOB)
    assert {"sourceLabels": [job_label], "targetLabel": "sftjob"} in endpoint["relabelings"]

    maps = {m["metadata"]["name"]: m for m in find(docs, "ConfigMap")}
    assert set(maps) == {"kubesft-dashboard-operator", "kubesft-dashboard-training"}
    for name, source in dashboards().items():
        config_map = maps[f"kubesft-dashboard-{name}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "kubesft"}
        assert yaml.safe_load(config_map["data"][f"kubesft-{name}.json"]) == source

    assert [r["alert"] for g in rule_groups(docs) for r in g["rules"]] == ALERTS

    # cert-manager mode: the chart owns the configuration and cert-manager injects the CA.
    (webhook,) = find(docs, "ValidatingWebhookConfiguration")
    (hook,) = webhook["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == f"/{HANDLER_ID}", "Kopf serves the handler at /<id>"
    assert hook["clientConfig"]["service"]["name"] == "kubesft-webhook"
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert (
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "kubesft-system/kubesft-webhook"
    )
    (certificate,) = find(docs, "Certificate")
    assert "kubesft-webhook.kubesft-system.svc" in certificate["spec"]["dnsNames"]
    env = _env(_operator_container(docs))
    assert env["KUBESFT_WEBHOOK_CERT_FILE"] == "/etc/kubesft/webhook-tls/tls.crt"
    assert env["KUBESFT_WEBHOOK_CONFIGURATION"] == ""
    (cluster_role,) = find(docs, "ClusterRole")
    assert "webhookconfigurations" not in str(cluster_role["rules"])
    (mutating,) = find(docs, "MutatingWebhookConfiguration")
    assert mutating["metadata"]["annotations"] == webhook["metadata"]["annotations"]


@pytest.mark.parametrize(
    "issuer_ref", [None, {"name": "corp-ca", "kind": "ClusterIssuer"}], ids=["self-signed", "own-issuer"]
)
def test_cert_manager_certificate_reaches_the_operator(issuer_ref: dict[str, str] | None) -> None:
    """The Secret cert-manager fills is the one mounted, at the paths the operator reads."""
    values: dict[str, Any] = {"webhook.certManager.enabled": True}
    if issuer_ref:
        values["webhook.certManager.issuerRef"] = issuer_ref
    docs = render(values, release="ml", namespace="ml-system")
    (certificate,) = find(docs, "Certificate")
    issuers = find(docs, "Issuer")
    if issuer_ref:
        assert not issuers
        assert certificate["spec"]["issuerRef"] == issuer_ref
    else:
        (issuer,) = issuers
        assert issuer["spec"] == {"selfSigned": {}}
        assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    # The API server calls <service>.<namespace>.svc; the certificate must name it.
    (webhook,) = find(docs, "ValidatingWebhookConfiguration")
    service = webhook["webhooks"][0]["clientConfig"]["service"]
    assert f"{service['name']}.{service['namespace']}.svc" in certificate["spec"]["dnsNames"]
    assert find(docs, "Service", service["name"]), "the webhook configuration names a Service the chart lacks"
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"ml-system/{certificate['metadata']['name']}"
    )

    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    env = _env(_operator_container(docs))
    # cert-manager writes the key pair and its CA as tls.crt, tls.key and ca.crt.
    for variable, key in (
        ("KUBESFT_WEBHOOK_CERT_FILE", "tls.crt"),
        ("KUBESFT_WEBHOOK_KEY_FILE", "tls.key"),
        ("KUBESFT_WEBHOOK_CA_FILE", "ca.crt"),
    ):
        directory, name = env[variable].rsplit("/", 1)
        assert name == key, variable
        volume = volumes[mounts[directory]]
        assert volume["secret"]["secretName"] == certificate["spec"]["secretName"], variable
    # The chart owns the configuration, so the operator must not write its own.
    assert env["KUBESFT_WEBHOOK_CONFIGURATION"] == ""


def test_dashboard_label_and_namespace_are_configurable() -> None:
    docs = render(
        {
            "monitoring.dashboards.enabled": True,
            # null drops the default label, as with any Helm map value.
            "monitoring.dashboards.labels": {"grafana_dashboard": None, "my_dashboards": "yes"},
            "monitoring.dashboards.namespace": "grafana",
        }
    )
    for config_map in find(docs, "ConfigMap"):
        assert config_map["metadata"]["labels"]["my_dashboards"] == "yes"
        assert "grafana_dashboard" not in config_map["metadata"]["labels"]
        assert config_map["metadata"]["namespace"] == "grafana"


def test_monitoring_parts_switch_independently() -> None:
    parts = {
        "serviceMonitor": "ServiceMonitor",
        "podMonitor": "PodMonitor",
        "dashboards": "ConfigMap",
        "prometheusRule": "PrometheusRule",
    }
    for part, kind in parts.items():
        docs = render({f"monitoring.{part}.enabled": True})
        present = {d["kind"] for d in docs} & set(parts.values())
        assert present == {kind}, part


def test_alert_thresholds_come_from_values() -> None:
    docs = render(
        {
            "monitoring.prometheusRule.enabled": True,
            "monitoring.prometheusRule.sftJobStalled.minutes": 42,
            "monitoring.prometheusRule.sftJobCheckpointUploadFailing.threshold": 3,
            "monitoring.prometheusRule.sftJobCheckpointUploadFailing.window": "2h",
            "monitoring.prometheusRule.kubesftReconcileErrors.threshold": 0.7,
            "monitoring.prometheusRule.kubesftOperatorDown.for": "11m",
            "monitoring.prometheusRule.sftJobFailed.window": "1h",
            "monitoring.prometheusRule.additionalAlertLabels": {"team": "ml-platform"},
        }
    )
    rules = {r["alert"]: r for g in rule_groups(docs) for r in g["rules"]}
    assert "[42m]" in rules["SFTJobStalled"]["expr"] and "offset 42m" in rules["SFTJobStalled"]["expr"]
    assert rules["SFTJobCheckpointUploadFailing"]["expr"].rstrip().endswith("> 3")
    assert "[2h]" in rules["SFTJobCheckpointUploadFailing"]["expr"]
    assert "> 0.7" in rules["KubesftReconcileErrors"]["expr"]
    assert rules["KubesftOperatorDown"]["for"] == "11m"
    assert 'job="kubesft-metrics"' in rules["KubesftOperatorDown"]["expr"]
    assert "[1h]" in rules["SFTJobFailed"]["expr"]
    assert all(r["labels"]["team"] == "ml-platform" for r in rules.values())


BAD_VALUES = {
    "replicas-not-a-number": ("replicas: two\n", "/replicas"),
    "watch-namespaces-not-a-list": ("watchNamespaces: team-a\n", "/watchNamespaces"),
    "watch-namespace-invalid-name": ("watchNamespaces: [Team_A]\n", "/watchNamespaces/0"),
    "misspelt-top-level-key": ("replica: 2\n", "replica"),
    "pull-policy-unknown": ("image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"),
    "webhook-failure-policy-unknown": ("webhook:\n  failurePolicy: Maybe\n", "/webhook/failurePolicy"),
    "port-out-of-range": ("metrics:\n  port: 70000\n", "/metrics/port"),
    "interval-not-a-duration": (
        "monitoring:\n  serviceMonitor:\n    interval: 30 seconds\n",
        "/monitoring/serviceMonitor/interval",
    ),
    "stalled-minutes-zero": (
        "monitoring:\n  prometheusRule:\n    sftJobStalled:\n      minutes: 0\n",
        "/monitoring/prometheusRule/sftJobStalled/minutes",
    ),
    "dashboard-label-not-a-string": (
        "monitoring:\n  dashboards:\n    labels:\n      grafana_dashboard: 1\n",
        "/monitoring/dashboards/labels/grafana_dashboard",
    ),
    "replicas-without-leader-election": (
        "replicas: 3\nleaderElection:\n  enabled: false\nwebhook:\n  certManager:\n    enabled: true\n",
        "/leaderElection/enabled",
    ),
    # Each replica would make its own self-signed certificate behind one Service.
    "replicas-with-self-signed-webhook": ("replicas: 2\n", "/webhook/certManager/enabled"),
    "progress-interval-zero": ("progress:\n  intervalSeconds: 0\n", "/progress/intervalSeconds"),
    "storage-prefix-not-a-location": (
        "policy:\n  storagePrefixes: [gs://models/]\n",
        "/policy/storagePrefixes/0",
    ),
    "storage-prefix-other-placeholder": (
        "policy:\n  storagePrefixes: ['s3://models/{team}/']\n",
        "/policy/storagePrefixes/0",
    ),
    "allowed-images-not-a-list": ("policy:\n  allowedImages: ghcr.io/*\n", "/policy/allowedImages"),
    "policy-key-misspelt": ("policy:\n  allowAmbientCredential: true\n", "allowAmbientCredential"),
    "network-policy-peer-unknown-key": (
        "policy:\n  networkPolicy:\n    prometheus: [{podSelektor: {}}]\n",
        "/policy/networkPolicy/prometheus/0",
    ),
    "issuer-ref-without-name": (
        "webhook:\n  certManager:\n    enabled: true\n    issuerRef:\n      kind: ClusterIssuer\n",
        "/webhook/certManager/issuerRef",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case: str, tmp_path: pathlib.Path) -> None:
    text, path = BAD_VALUES[case]
    values_file = tmp_path / f"{case}.yaml"
    values_file.write_text(text)
    with pytest.raises(HelmError) as failure:
        run_helm("template", "kubesft", str(CHART_DIR), "--values", str(values_file))
    message = failure.value.stderr
    assert "don't meet the specifications of the schema" in message
    assert path in message, message


def test_chart_crd_copy_equals_the_generated_crd() -> None:
    assert (CHART_DIR / "crds/sftjob.yaml").read_text() == (REPO_ROOT / "crds/sftjob.yaml").read_text()


def test_notes_show_a_valid_first_sftjob() -> None:
    for values_file, apply_flag in (
        (None, "kubectl apply -f -"),
        (NAMESPACED, "kubectl apply -n team-a -f -"),
    ):
        args = ["install", "kubesft", str(CHART_DIR), "--dry-run=client", "--namespace", "kubesft-system"]
        if values_file:
            args += ["--values", str(values_file)]
        notes = run_helm(*args).stdout.split("NOTES:", 1)[1]
        assert apply_flag in notes
        manifest = re.search(r"<<'YAML' \| .*?\n(.*?)\n\s*YAML\n", notes, re.S)
        assert manifest, notes
        job = yaml.safe_load(textwrap.dedent(manifest.group(1)))
        assert job["kind"] == "SFTJob"
        SFTJobSpec.model_validate(job["spec"])


def _values_leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for key, sub in node.items() for leaf in _values_leaves(sub, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def _readme_values_table() -> dict[str, str]:
    """The README's values table: value path -> its Default cell."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Install with Helm", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| (.*?) \| .* \|$", section, re.M)
    assert rows, "the README's Install with Helm section has no values table"
    return dict(rows)


def _value_at(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        assert isinstance(node, dict) and key in node, (
            f"the README documents `{path}`, which values.yaml lacks"
        )
        node = node[key]
    return node


def _default_cell(value: Any) -> str | None:
    """How the table writes a default it can show literally; None for maps described in words."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, int | float):
        return f"`{value}`"
    if value in ([], {}):
        return f"`{json.dumps(value)}`"
    return None


def test_every_value_is_in_the_readme_table() -> None:
    table = _readme_values_table()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    # A map documented as a whole (e.g. `resources`) covers its keys.
    missing = [
        leaf
        for leaf in _values_leaves(values)
        if not any(".".join(leaf.split(".")[:n]) in table for n in range(1, leaf.count(".") + 2))
    ]
    assert not missing, f"values missing from the README's values table: {missing}"


def test_readme_values_table_defaults_match_values_yaml() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    wrong = {}
    for path, cell in _readme_values_table().items():
        expected = _default_cell(_value_at(values, path))
        if expected is not None and cell != expected:
            wrong[path] = f"README {cell}, values.yaml {expected}"
    assert not wrong, f"README defaults that differ from values.yaml: {wrong}"


# --- alerts -------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_alert_rules(tmp_path: pathlib.Path) -> None:
    rule_file = write_rule_file(render(values_files=(MONITORING,)), tmp_path / "rules.yaml")
    result = subprocess.run([PROMTOOL, "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


ALERT_UNIT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # A job that keeps stepping never stalls; one whose step froze does, once the window is full.
  - interval: 1m
    input_series:
      - series: 'kubesft_train_global_step{namespace="ml", sftjob="moving", pod="moving-0"}'
        values: '0+1x60'
      - series: 'kubesft_train_max_steps{namespace="ml", sftjob="moving", pod="moving-0"}'
        values: '1000x60'
      - series: 'kubesft_train_global_step{namespace="ml", sftjob="frozen", pod="frozen-0"}'
        values: '0+1x10 10x50'
      - series: 'kubesft_train_max_steps{namespace="ml", sftjob="frozen", pod="frozen-0"}'
        values: '1000x60'
      - series: 'kubesft_train_global_step{namespace="ml", sftjob="done", pod="done-0"}'
        values: '0+100x10 1000x50'
      - series: 'kubesft_train_max_steps{namespace="ml", sftjob="done", pod="done-0"}'
        values: '1000x60'
    alert_rule_test:
      - eval_time: 25m
        alertname: SFTJobStalled
        exp_alerts: []
      - eval_time: 45m
        alertname: SFTJobStalled
        exp_alerts:
          - exp_labels: {severity: warning, namespace: ml, sftjob: frozen}
  # A job that has just started and not yet stepped is loading, not stalled.
  - interval: 1m
    input_series:
      - series: 'kubesft_train_global_step{namespace="ml", sftjob="loading", pod="loading-0"}'
        values: '0x20'
      - series: 'kubesft_train_max_steps{namespace="ml", sftjob="loading", pod="loading-0"}'
        values: '1000x20'
    alert_rule_test:
      - eval_time: 20m
        alertname: SFTJobStalled
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'kubesft_train_loss{namespace="ml", sftjob="diverged", pod="diverged-0"}'
        values: '2.1 1.9 NaN NaN NaN NaN NaN'
      - series: 'kubesft_train_loss{namespace="ml", sftjob="healthy", pod="healthy-0"}'
        values: '2.1 1.9 1.8 1.7 1.6 1.5 1.4'
      - series: 'kubesft_train_loss{namespace="ml", sftjob="exploded", pod="exploded-0"}'
        values: '2.1 Inf Inf Inf Inf Inf Inf'
    alert_rule_test:
      - eval_time: 6m
        alertname: SFTJobLossNaN
        exp_alerts:
          - exp_labels: {severity: critical, namespace: ml, sftjob: diverged}
          - exp_labels: {severity: critical, namespace: ml, sftjob: exploded}
  # A guarded set whose loss climbs past its allowed increase fires; the held-out set, which
  # guards nothing, and a guarded set that stays near its baseline do not.
  - interval: 1m
    input_series:
      - series: 'kubesft_eval_loss{namespace="ml", sftjob="forgets", pod="f-0", set="general"}'
        values: '2.0 2.05 2.2 2.4 2.6'
      - series: 'kubesft_eval_baseline_loss{namespace="ml", sftjob="forgets", pod="f-0", set="general"}'
        values: '2.0x4'
      - series: 'kubesft_eval_loss_max_increase{namespace="ml", sftjob="forgets", pod="f-0", set="general"}'
        values: '0.1x4'
      - series: 'kubesft_eval_loss{namespace="ml", sftjob="forgets", pod="f-0", set="heldout"}'
        values: '2.0 3.0 4.0 5.0 6.0'
      - series: 'kubesft_eval_baseline_loss{namespace="ml", sftjob="forgets", pod="f-0", set="heldout"}'
        values: '2.0x4'
      - series: 'kubesft_eval_loss{namespace="ml", sftjob="keeps", pod="k-0", set="general"}'
        values: '2.0 1.9 2.05 2.08 2.09'
      - series: 'kubesft_eval_baseline_loss{namespace="ml", sftjob="keeps", pod="k-0", set="general"}'
        values: '2.0x4'
      - series: 'kubesft_eval_loss_max_increase{namespace="ml", sftjob="keeps", pod="k-0", set="general"}'
        values: '0.1x4'
    alert_rule_test:
      - eval_time: 1m
        alertname: SFTJobForgetting
        exp_alerts: []
      - eval_time: 4m
        alertname: SFTJobForgetting
        exp_alerts:
          - exp_labels: {severity: warning, namespace: ml, sftjob: forgets, set: general}
  - interval: 1m
    input_series:
      - series: 'kubesft_checkpoint_upload_failures_total{namespace="ml", sftjob="bad-bucket", pod="b-0"}'
        values: '0 0 1 2 3 4 5'
      - series: 'kubesft_checkpoint_upload_failures_total{namespace="ml", sftjob="fine", pod="f-0"}'
        values: '0x6'
    alert_rule_test:
      - eval_time: 6m
        alertname: SFTJobCheckpointUploadFailing
        exp_alerts:
          - exp_labels: {severity: warning, namespace: ml, sftjob: bad-bucket}
  - interval: 1m
    input_series:
      - series: 'kubesft_sftjobs_failed_total{job="kubesft-metrics", namespace="kubesft-system", reason="InvalidData"}'
        values: '0 0 1 1 1'
    alert_rule_test:
      - eval_time: 4m
        alertname: SFTJobFailed
        exp_alerts:
          - exp_labels: {severity: warning, namespace: kubesft-system, reason: InvalidData}
  - interval: 1m
    input_series:
      - series: 'up{job="kubesft-metrics", namespace="kubesft-system", pod="kubesft-0"}'
        values: '1 1 1 0x10'
    alert_rule_test:
      - eval_time: 3m
        alertname: KubesftOperatorDown
        exp_alerts: []
      - eval_time: 10m
        alertname: KubesftOperatorDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: kubesft-system}
  - interval: 1m
    input_series:
      - series: 'kubesft_reconcile_errors_total{job="kubesft-metrics", namespace="kubesft-system"}'
        values: '0+6x40'
    alert_rule_test:
      - eval_time: 10m
        alertname: KubesftReconcileErrors
        exp_alerts: []
      - eval_time: 35m
        alertname: KubesftReconcileErrors
        exp_alerts:
          - exp_labels: {severity: warning, namespace: kubesft-system, job: kubesft-metrics}
"""


@needs_promtool
def test_alerts_fire_on_synthetic_series(tmp_path: pathlib.Path) -> None:
    """promtool evaluates each alert over series that should and should not fire it."""
    groups = rule_groups(render({"monitoring.prometheusRule.enabled": True}))
    # The unit tests are about when alerts fire; their wording is free to change.
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yaml").write_text(ALERT_UNIT_TESTS)
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERT_UNIT_TESTS))
    assert tested == set(ALERTS)


# --- dashboards ---------------------------------------------------------------------------


def test_dashboards_are_well_formed() -> None:
    boards = dashboards()
    assert {b["title"] for b in boards.values()} == {"kubesft / Operator", "kubesft / Training"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{board['title']}: duplicate panel ids"
        assert "datasource" in template_variables(board)
        for panel in panels(board):
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], f"{board['title']} / {panel['title']} has no query"
            assert panel.get("description"), f"{board['title']} / {panel['title']} has no description"
    training = boards["training"]
    assert template_variables(training) == ["datasource", "namespace", "sftjob"]
    for query in panel_queries(training):
        # Every query honours both variables, so the selection actually filters the panel.
        assert '"$namespace"' in query.expr and '"$sftjob"' in query.expr, query


def test_dashboards_cover_what_users_look_for() -> None:
    training = panel_queries(dashboards()["training"])
    needed = {
        "kubesft_train_loss",
        "kubesft_eval_loss",
        "kubesft_train_learning_rate",
        "kubesft_train_grad_norm",
        "kubesft_train_tokens_per_second",
        "kubesft_train_global_step",
        "kubesft_train_max_steps",
        "kubesft_gpu_memory_allocated_bytes",
        "kubesft_checkpoint_upload_failures_total",
    }
    used = set().union(*(metric_names(q.expr) for q in training))
    assert needed <= used, needed - used
    assert any(name.startswith("kubesft_checkpoint_save_seconds") for name in used)
    assert any(name.startswith("kubesft_checkpoint_upload_seconds") for name in used)
    assert {"ETA", "Progress"} <= {q.panel for q in training}

    operator = panel_queries(dashboards()["operator"])
    exprs = " ".join(q.expr for q in operator)
    for name in (
        "kubesft_sftjobs",
        "kubesft_sftjobs_created_total",
        "kubesft_sftjobs_failed_total",
        "kubesft_sftjob_restarts_total",
        "kubesft_sftjob_preemptions_total",
        "kubesft_reconcile_errors_total",
    ):
        assert re.search(rf"\b{name}\b", exprs), name
    assert "histogram_quantile(0.5, " in exprs and "histogram_quantile(0.99, " in exprs


@needs_promtool
def test_dashboard_queries_parse_as_promql(tmp_path: pathlib.Path) -> None:
    """promtool parses each query (as a recording rule) after Grafana's variables are resolved."""
    rules = []
    for stem, board in dashboards().items():
        variables = {
            "namespace": "ml",
            "sftjob": "smollm2-chat",
            "job": "kubesft-metrics",
            **builtin_variables("1m", "6h"),
        }
        for i, query in enumerate(panel_queries(board)):
            rules.append({"record": f"kubesft:{stem}:query{i}", "expr": substitute(query.expr, variables)})
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "dashboards.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- metric names against the code --------------------------------------------------------

_METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info"}
# Custom collectors build their series from these families.
_FAMILY_TYPES = {f"{kind}MetricFamily": kind for kind in _METRIC_TYPES}


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def defined_series() -> dict[str, str]:
    """Series names the code exports through prometheus_client, mapped to the defining file.

    Reads every prometheus_client metric (or metric family) constructor in operator/ and trainer_image/ and
    expands it to the names Prometheus stores (_total, _bucket, _sum, _count, _info).
    """
    series: dict[str, str] = {}
    for path in sorted(
        [*REPO_ROOT.joinpath("operator").rglob("*.py"), *REPO_ROOT.joinpath("trainer_image").rglob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            kind = _FAMILY_TYPES.get(kind, kind)
            if kind not in _METRIC_TYPES:
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            name = _string(node.args[0] if node.args else keywords.get("name"))
            if name is None:
                continue
            prefix = [
                p for p in (_string(keywords.get("namespace")), _string(keywords.get("subsystem"))) if p
            ]
            full = "_".join([*prefix, name])
            where = str(path.relative_to(REPO_ROOT))
            if kind == "Counter":
                full = full.removesuffix("_total")
                names = [f"{full}_total", f"{full}_created"]
            elif kind == "Histogram":
                names = [f"{full}_bucket", f"{full}_sum", f"{full}_count"]
            elif kind == "Summary":
                names = [full, f"{full}_sum", f"{full}_count"]
            elif kind == "Info":
                names = [f"{full}_info"]
            else:
                names = [full]
            series.update(dict.fromkeys(names, where))
    return series


def test_dashboards_and_alerts_only_use_metrics_the_code_defines() -> None:
    series = defined_series()
    assert series, "no prometheus_client metrics found under operator/ or trainer_image/"
    used: dict[str, set[str]] = {}
    for board in dashboards().values():
        for query in panel_queries(board):
            for name in metric_names(query.expr):
                used.setdefault(name, set()).add(f"{query.dashboard} / {query.panel}")
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                for name in metric_names(variable["definition"]):
                    used.setdefault(name, set()).add(f"{board['title']} variable {variable['name']}")
    for group in rule_groups(render({"monitoring.prometheusRule.enabled": True})):
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(f"alert {rule['alert']}")
    undefined = {name: sorted(where) for name, where in used.items() if name not in series}
    assert not undefined, f"metrics used but not defined in the code: {undefined}"


def test_every_alert_has_a_runbook_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    runbooks = readme.split("## Alerts and runbooks", 1)[1].split("\n## ", 1)[0]
    sections = dict(
        (part.split("\n", 1)[0].strip(), part.split("\n", 1)[1].strip() if "\n" in part else "")
        for part in runbooks.split("\n### ")[1:]
    )
    assert sorted(sections) == sorted(ALERTS), "README runbook sections differ from the alerts"
    empty = [alert for alert, text in sections.items() if len(text.split()) < 15]
    assert not empty, f"runbooks too short to act on: {empty}"


def test_every_metric_is_documented_once_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(kubesft_[a-z_]+)(?:\{[a-z_,]*\})?` \|", readme, flags=re.MULTILINE)
    twice = sorted({name for name in rows if rows.count(name) > 1})
    assert not twice, f"metrics with more than one README row: {twice}"
    series = defined_series()
    expansions = ("", "_total", "_bucket", "_sum", "_count", "_info")
    unknown = [name for name in rows if not any(name + end in series for end in expansions)]
    assert not unknown, f"the README documents metrics the code does not define: {unknown}"
    # x_created: prometheus_client's creation time of each counter and histogram, not a metric of ours.
    undocumented = sorted(
        name
        for name in series
        if not name.endswith("_created")
        and not any(name == row or name in {row + end for end in expansions} for row in rows)
    )
    assert not undocumented, f"metrics the code defines that the README does not document: {undocumented}"
