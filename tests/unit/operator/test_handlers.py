"""The Kopf handlers: what importing them does, the admission server they configure, and what
SFTJob events tell the controller."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import kopf
import pytest

from kubesft_operator import handlers
from kubesft_operator.controller import Controller
from kubesft_operator.kube import Kube
from kubesft_operator.objects import SFTJob
from kubesft_operator.settings import OperatorSettings
from kubesft_operator.watched import Key, Watches
from kubesft_operator.webhook import (
    NamespacedWebhookServer,
    NoWebhookServer,
    PublishingWebhookServer,
    exempt_condition,
)
from tests.support.operator_objects import OWNER, sftjob

ROOT = Path(__file__).resolve().parents[3]
KEY: Key = (OWNER.namespace, OWNER.name)


def _kube() -> Kube:
    return Kube(lambda: kopf.ConnectionInfo(server="http://unused"))


def test_importing_the_handlers_reads_no_settings() -> None:
    """Settings are read when the operator starts: a bad value fails there, not at import."""
    code = "import kubesft_operator.handlers, kubesft_operator.__main__\nprint('ok')\n"
    env = {
        "KUBESFT_PROGRESS_INTERVAL_SECONDS": "0",
        "KUBESFT_WEBHOOK_FAILURE_POLICY": "Maybe",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_without_the_webhook_the_admission_server_listens_nowhere_and_announces_nothing() -> None:
    server = handlers.admission_server(OperatorSettings(webhook_enabled=False), _kube())
    assert isinstance(server, NoWebhookServer)

    async def first_announcement() -> kopf.WebhookClientConfig:
        async for client_config in server(cast(kopf.WebhookFn, None)):  # it serves no review
            return client_config
        raise AssertionError("the server stopped")

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(first_announcement(), timeout=0.2))


def test_with_the_webhook_the_server_publishes_its_configuration() -> None:
    settings = OperatorSettings(webhook_enabled=True, webhook_configuration="kubesft.io")
    published = handlers.admission_server(settings, _kube())
    assert isinstance(published, NamespacedWebhookServer)
    assert isinstance(published.server, PublishingWebhookServer)
    unpublished = OperatorSettings(webhook_enabled=True, webhook_configuration="")
    served = handlers.admission_server(unpublished, _kube())
    assert isinstance(served, NamespacedWebhookServer) and isinstance(served.server, kopf.WebhookServer)


def test_publishing_patches_both_configurations_by_name() -> None:
    patched: list[dict[str, Any]] = []

    class Recording(Kube):
        async def patch_webhook_configuration(self, body: dict[str, Any]) -> None:
            patched.append(body)

        async def own_username(self) -> str | None:
            return "system:serviceaccount:kubesft-system:kubesft"

    settings = OperatorSettings(
        webhook_enabled=True, webhook_configuration="kubesft.io", watch_namespaces="team-a"
    )
    server = handlers.admission_server(
        settings, Recording(lambda: kopf.ConnectionInfo(server="http://unused"))
    )
    assert isinstance(server, NamespacedWebhookServer) and isinstance(server.server, PublishingWebhookServer)
    publishing = server.server

    async def publish() -> None:
        await publishing.publish({"url": "https://127.0.0.1:9443", "caBundle": "Q0E="})

    asyncio.run(publish())
    assert [(b["kind"], b["metadata"]["name"]) for b in patched] == [
        ("MutatingWebhookConfiguration", "kubesft.io"),
        ("ValidatingWebhookConfiguration", "kubesft.io"),
    ]
    assert all(
        b["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a"] for b in patched
    )
    # Its own requests skip both: the username it learnt is the one exempted.
    assert all(
        b["webhooks"][0]["matchConditions"]
        == [exempt_condition("system:serviceaccount:kubesft-system:kubesft")]
        for b in patched
    )


class Recorder(Controller):
    """The calls the SFTJob event handler makes."""

    def __init__(self) -> None:
        super().__init__(OperatorSettings.model_construct(), _kube(), Watches({}, {}, {}))
        self.calls: list[tuple[Any, ...]] = []

    def observe(self, key: Key, body: SFTJob, *, listed: bool = False) -> None:
        self.calls.append(("observe", key, body["metadata"].get("resourceVersion"), listed))

    def forget(self, key: Key) -> None:
        self.calls.append(("forget", key))

    async def reconcile(self, key: Key) -> None:
        self.calls.append(("reconcile", key))


def _event(controller: Recorder, kind: str | None, version: str) -> None:
    raw = sftjob()
    raw["metadata"]["resourceVersion"] = version
    body = kopf.Body(cast(kopf.RawBody, raw))
    memo = kopf.Memo(controller=controller)
    handler: Any = handlers.sftjob_changed
    asyncio.run(handler(type=kind, namespace=OWNER.namespace, name=OWNER.name, body=body, memo=memo))


def test_sftjob_events_tell_the_controller_what_the_watch_shows() -> None:
    controller = Recorder()
    _event(controller, None, "listed")
    _event(controller, "MODIFIED", "watched")
    _event(controller, "DELETED", "gone")
    assert controller.calls == [
        ("observe", KEY, "listed", True),
        ("reconcile", KEY),
        ("observe", KEY, "watched", False),
        ("reconcile", KEY),
        ("forget", KEY),
    ]
