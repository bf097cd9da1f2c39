"""Admission decisions, the webhook's certificate, and how its server is announced to the API server."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kubesft_operator.policy import Policy
from kubesft_operator.settings import OperatorSettings
from kubesft_operator.webhook import (
    NamespacedWebhookServer,
    PublishingWebhookServer,
    admission_problems,
    exempt_condition,
    mutating_configuration,
    self_signed_certificate,
    validating_configuration,
    webhook_server,
)
from testing.devcluster.processes import free_port
from tests.support.operator_objects import spec_dict


def test_valid_create_is_admitted() -> None:
    assert admission_problems("CREATE", "chat", spec_dict()) == []


def test_bad_create_names_the_fields() -> None:
    raw = spec_dict()
    raw["training"]["learningRate"] = 3
    raw["dataset"]["evalFraction"] = 0.9
    problems = admission_problems("CREATE", "Chat_1", raw)
    assert any(p.startswith("metadata.name: 'Chat_1'") for p in problems)
    assert any(p.startswith("spec.training.learningRate: must be ≤ 1") for p in problems)
    assert any(p.startswith("spec.dataset.evalFraction: must be ≤ 0.5") for p in problems)


def test_update_of_a_running_job_may_only_touch_suspend_deadline_ttl() -> None:
    old = spec_dict()
    allowed = spec_dict(suspend=True, activeDeadlineSeconds=600, ttlSecondsAfterFinished=60)
    assert admission_problems("UPDATE", "chat", allowed, old, "Running") == []
    changed = spec_dict()
    changed["training"]["maxSteps"] = 99
    (problem,) = admission_problems("UPDATE", "chat", changed, old, "Running")
    assert problem.startswith("spec.training.maxSteps cannot change while the job is Running")
    assert "spec.runPolicy.suspend" in problem
    # Finished or not yet started jobs are not held to their spec.
    assert admission_problems("UPDATE", "chat", changed, old, "Succeeded") == []
    assert admission_problems("UPDATE", "chat", changed, old, None) == []


def test_with_a_policy_a_spec_that_breaks_it_is_refused() -> None:
    raw = spec_dict()
    raw["resources"] = {"image": "docker.io/evil:1"}
    assert admission_problems("CREATE", "chat", raw) == []
    (problem,) = admission_problems(
        "CREATE", "chat", raw, namespace="team-a", policy=Policy(allowed_images=())
    )
    assert problem.startswith(
        "spec.resources.image: 'docker.io/evil:1' matches no pattern of policy.allowedImages"
    )


def test_self_signed_certificate_serves_tls_for_its_names(tmp_path: Path) -> None:
    cert_file, key_file = self_signed_certificate(["kubesft-webhook.kubesft.svc", "127.0.0.1"], tmp_path)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kubesft-webhook.kubesft.svc"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


async def _first_client_config(server: Any) -> Any:
    async def fn(*_: Any, **__: Any) -> Any:
        return {}

    stream = server(fn)
    try:
        return await stream.__anext__()
    finally:
        await stream.aclose()


def test_in_cluster_server_is_announced_as_a_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBESFT_WEBHOOK_SERVICE_NAME", "kubesft-webhook")
    monkeypatch.setenv("KUBESFT_POD_NAMESPACE", "kubesft-system")
    monkeypatch.setenv("KUBESFT_WEBHOOK_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(free_port()))
    config = asyncio.run(_first_client_config(webhook_server(OperatorSettings())))
    assert "url" not in config
    assert config["service"] == {
        "name": "kubesft-webhook",
        "namespace": "kubesft-system",
        "port": 443,
        "path": "",
    }
    ca = base64.b64decode(config["caBundle"])
    cert = x509.load_pem_x509_certificate(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubesft-webhook.kubesft-system.svc" in names.get_values_for_type(x509.DNSName)


def test_local_server_is_announced_by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("KUBESFT_WEBHOOK_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(port))
    config = asyncio.run(_first_client_config(webhook_server(OperatorSettings())))
    assert config["url"] == f"https://127.0.0.1:{port}"
    assert "service" not in config


def test_validating_configuration_points_at_the_handler() -> None:
    by_url = validating_configuration(
        "kubesft", {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}, "Fail"
    )
    (hook,) = by_url["webhooks"]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/validate-sftjob", "caBundle": "Q0E="}
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hook["rules"][0]["resources"] == ["sftjobs"]
    service = {"name": "kubesft-webhook", "namespace": "kubesft-system", "port": 9443, "path": ""}
    by_service = validating_configuration("kubesft", {"service": service, "caBundle": None}, "Ignore")
    (hook,) = by_service["webhooks"]
    assert hook["clientConfig"] == {"service": {**service, "path": "/validate-sftjob"}}
    assert hook["failurePolicy"] == "Ignore"


def test_the_mutating_configuration_points_at_its_own_handler() -> None:
    body = mutating_configuration("kubesft", {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}, "Fail")
    assert body["kind"] == "MutatingWebhookConfiguration"
    (hook,) = body["webhooks"]
    assert hook["name"] == "record.sftjobs.kubesft.io"
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/record-sftjob-admission"
    assert hook["reinvocationPolicy"] == "Never" and hook["sideEffects"] == "None"


def test_a_namespaced_operators_webhooks_see_only_its_namespaces() -> None:
    for render in (validating_configuration, mutating_configuration):
        (hook,) = render("kubesft", {"url": "https://x"}, "Fail", ["team-a", "team-b"])["webhooks"]
        assert hook["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
            ]
        }
        (everywhere,) = render("kubesft", {"url": "https://x"}, "Fail")["webhooks"]
        assert "namespaceSelector" not in everywhere


def test_the_operators_own_requests_can_skip_both_webhooks() -> None:
    operator = "system:serviceaccount:kubesft-system:kubesft"
    for render in (validating_configuration, mutating_configuration):
        (hook,) = render("kubesft", {"url": "https://x"}, "Fail", (), operator)["webhooks"]
        assert hook["matchConditions"] == [
            {"name": "not-the-operator", "expression": f'request.userInfo.username != "{operator}"'}
        ]
        (unknown,) = render("kubesft", {"url": "https://x"}, "Fail")["webhooks"]
        assert "matchConditions" not in unknown


def test_an_exempt_username_is_quoted_as_a_cel_string() -> None:
    condition = exempt_condition('odd"user\\name')
    assert condition["expression"] == 'request.userInfo.username != "odd\\"user\\\\name"'


def test_admission_requests_name_their_namespace_before_kopf_sees_them() -> None:
    """A create may leave the object's namespace to the URL; the record is bound to it."""
    served: list[Any] = []

    async def kopf_fn(request: Any, **_: Any) -> Any:
        served.append(request["request"]["object"]["metadata"])
        return {"response": {"allowed": True}}

    async def server(fn: Any) -> Any:
        await fn({"request": {"namespace": "team-a", "object": {"metadata": {"name": "chat"}}}}, webhook="x")
        await fn({"request": {"namespace": "team-a", "object": {"metadata": {"namespace": "team-a"}}}})
        yield {"url": "https://x"}

    async def first() -> Any:
        async for config in NamespacedWebhookServer(server)(kopf_fn):
            return config

    assert asyncio.run(first()) == {"url": "https://x"}
    assert served == [{"name": "chat", "namespace": "team-a"}, {"namespace": "team-a"}]


def test_publishing_server_publishes_before_kopf_sees_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESFT_WEBHOOK_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(free_port()))
    published: list[Any] = []

    async def publish(config: Any) -> None:
        published.append(config)

    server = PublishingWebhookServer(webhook_server(OperatorSettings()), publish)
    config = asyncio.run(_first_client_config(server))
    assert published == [config]
