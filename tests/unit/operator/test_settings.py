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
