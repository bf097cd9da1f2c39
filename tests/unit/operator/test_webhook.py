"""Admission decisions, the webhook's certificate, and the status patch and metrics the operator writes."""

from __future__ import annotations

import asyncio
import base64
import datetime
import socket
import ssl
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from cryptography import x509

from kubesft_api.status import Condition, SFTJobStatus
from kubesft_operator import metrics
from kubesft_operator.controller import status_patch
from kubesft_operator.settings import OperatorSettings
from kubesft_operator.webhook import (
    PublishingWebhookServer,
    admission_problems,
    self_signed_certificate,
    validating_configuration,
    webhook_server,
)
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


def test_status_patch_sends_only_changes_and_nulls_for_dropped_fields() -> None:
    old = {"phase": "Running", "etaText": "3m", "progressText": "1/4 (25%)", "restarts": 0, "kopf": {"x": 1}}
    new = SFTJobStatus(phase="Succeeded", progress_text="1/4 (25%)", restarts=0)
    assert status_patch(old, new) == {"phase": "Succeeded", "etaText": None}
    assert status_patch(new.model_dump(mode="json", by_alias=True, exclude_none=True), new) == {}


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_transitions_are_counted_once() -> None:
    created = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    before = (
        _sample("kubesft_sftjobs_created_total"),
        _sample("kubesft_sftjob_restarts_total"),
        _sample("kubesft_sftjobs_failed_total", {"reason": "OOMKilled"}),
        _sample("kubesft_sftjob_duration_seconds_count"),
    )
    pending = SFTJobStatus(phase="Pending")
    metrics.record_transition(SFTJobStatus(), pending, created)
    restarted = SFTJobStatus(phase="Pending", restarts=1)
    metrics.record_transition(pending, restarted, created)
    failed = SFTJobStatus(
        phase="Failed",
        restarts=1,
        completion_time="2030-01-01T01:00:00Z",
        conditions=[Condition(type="Failed", status="True", reason="OOMKilled")],
    )
    metrics.record_transition(restarted, failed, created)
    metrics.record_transition(failed, failed, created)
    after = (
        _sample("kubesft_sftjobs_created_total"),
        _sample("kubesft_sftjob_restarts_total"),
        _sample("kubesft_sftjobs_failed_total", {"reason": "OOMKilled"}),
        _sample("kubesft_sftjob_duration_seconds_count"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]


def test_phase_gauge_counts_jobs_per_namespace_and_phase() -> None:
    metrics.PHASE_COUNTS.set("ns-gauge", "a", "Running")
    metrics.PHASE_COUNTS.set("ns-gauge", "b", "Running")
    metrics.PHASE_COUNTS.set("ns-gauge", "c", "Failed")
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Running"}) == 2
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Succeeded"}) == 0
    metrics.PHASE_COUNTS.set("ns-gauge", "b", None)
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Running"}) == 1
    text = prometheus_client.generate_latest().decode()
    assert "kubesft_sftjobs_created_created" not in text


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
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(_free_port()))
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
    port = _free_port()
    monkeypatch.setenv("KUBESFT_WEBHOOK_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(port))
    config = asyncio.run(_first_client_config(webhook_server(OperatorSettings())))
    assert config["url"] == f"https://127.0.0.1:{port}"
    assert "service" not in config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def test_publishing_server_publishes_before_kopf_sees_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESFT_WEBHOOK_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("KUBESFT_WEBHOOK_PORT", str(_free_port()))
    published: list[Any] = []

    async def publish(config: Any) -> None:
        published.append(config)

    server = PublishingWebhookServer(webhook_server(OperatorSettings()), publish)
    config = asyncio.run(_first_client_config(server))
    assert published == [config]
