"""The operator reads its configuration from KUBESFT_* variables, as the Helm chart sets them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubesft_operator.settings import DEFAULT_TRAINER_IMAGE, OperatorSettings


def test_defaults_watch_the_whole_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBESFT_WATCH_NAMESPACES", "KUBESFT_TRAINER_IMAGE", "KUBESFT_PROGRESS_INTERVAL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = OperatorSettings()
    assert settings.clusterwide
    assert settings.trainer_image == DEFAULT_TRAINER_IMAGE
    assert settings.progress_interval_seconds == 15.0
    assert (settings.metrics_port, settings.health_port, settings.webhook_port) == (8080, 8081, 9443)


def test_lists_are_comma_separated_and_empty_strings_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESFT_WATCH_NAMESPACES", "team-a, team-b,")
    monkeypatch.setenv("KUBESFT_TRAINER_IMAGE_PULL_SECRETS", "")
    monkeypatch.setenv("KUBESFT_WEBHOOK_HOST", "")
    monkeypatch.setenv("KUBESFT_PEERING_PRIORITY", "7")
    settings = OperatorSettings()
    assert settings.watch_namespaces == ["team-a", "team-b"]
    assert not settings.clusterwide
    assert settings.trainer_image_pull_secrets == []
    assert settings.webhook_host is None
    assert settings.peering_priority == 7


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESFT_PROGRESS_INTERVAL_SECONDS", "0.1")
    with pytest.raises(ValidationError, match="progress_interval_seconds"):
        OperatorSettings()


def test_certificate_and_key_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESFT_WEBHOOK_CERT_FILE", "/certs/tls.crt")
    with pytest.raises(ValidationError, match="KUBESFT_WEBHOOK_KEY_FILE"):
        OperatorSettings()


def test_the_policy_comes_from_json_lists_and_defaults_to_the_trainer_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBESFT_TRAINER_IMAGE", "registry:5000/ml/trainer:1.2")
    default = OperatorSettings().policy
    assert default.allowed_images == ("registry:5000/ml/trainer:*", "registry:5000/ml/trainer@sha256:*")
    assert default.allowed_priority_classes == () and default.storage_prefixes == ()
    assert default.allow_ambient_credentials is False
    monkeypatch.setenv("KUBESFT_POLICY_ALLOWED_IMAGES", '["*"]')
    monkeypatch.setenv("KUBESFT_POLICY_ALLOWED_PRIORITY_CLASSES", '["team-*"]')
    monkeypatch.setenv("KUBESFT_POLICY_STORAGE_PREFIXES", '["s3://models/{namespace}/", "pvc://"]')
    monkeypatch.setenv("KUBESFT_POLICY_ALLOW_AMBIENT_CREDENTIALS", "true")
    policy = OperatorSettings().policy
    assert policy.allowed_images == ("*",) and policy.allowed_priority_classes == ("team-*",)
    assert policy.prefixes_for("team-a") == ["s3://models/team-a/", "pvc://"]
    assert policy.allow_ambient_credentials


@pytest.mark.parametrize("template", ["gs://models/{namespace}/", "s3://models/{team}/", "models/"])
def test_a_storage_prefix_must_be_a_location_with_only_the_namespace_placeholder(
    monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setenv("KUBESFT_POLICY_STORAGE_PREFIXES", f'["{template}"]')
    with pytest.raises(ValidationError, match="policy_storage_prefixes"):
        OperatorSettings()


def test_the_signing_key_is_secret_and_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OperatorSettings().signer is None
    assert not OperatorSettings().admission_records_required
    monkeypatch.setenv("KUBESFT_SIGNING_KEY", "k" * 48)
    settings = OperatorSettings()
    assert settings.signer is not None and settings.admission_records_required
    assert "k" * 48 not in repr(settings) and "k" * 48 not in str(settings.model_dump())
    monkeypatch.setenv("KUBESFT_WEBHOOK_ENABLED", "false")
    assert not OperatorSettings().admission_records_required, "only the webhook writes records"
    monkeypatch.setenv("KUBESFT_SIGNING_KEY", "short")
    with pytest.raises(ValidationError, match="16 bytes"):
        OperatorSettings()
