"""Kopf handlers: watches feed in-memory indexes, and every change reconciles the SFTJob it touches.

The handlers are level-triggered. An event on an SFTJob, on one of its Jobs or on one of their
Pods reconciles that SFTJob from the indexes; a timer per SFTJob reads progress and reconciles
again, so time-driven transitions (deadline, TTL) and anything a lost event missed still happen.
Kopf keeps its own bookkeeping in annotations (``kubesft.io/*``) and a finalizer, never in status.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import kopf

from kubesft_operator import metrics, names
from kubesft_operator.controller import Controller, Key
from kubesft_operator.kube import Kube, load_client_config
from kubesft_operator.settings import get_settings
from kubesft_operator.spec import GROUP, PLURAL, VERSION
from kubesft_operator.webhook import (
    HANDLER_ID,
    PublishingWebhookServer,
    validate_sftjob,
    validating_configuration,
    webhook_server,
)

logger = logging.getLogger(__name__)

SETTINGS = get_settings()
CHILD_LABELS: dict[str, Any] = {
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
    names.LABEL_JOB: kopf.PRESENT,
}


class _State:
    controller: Controller | None = None
    indexes: ClassVar[dict[str, kopf.Index[Key, dict[str, Any]]]] = {}


def _controller() -> Controller:
    if _State.controller is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return _State.controller


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events are recorded on purpose by the controller; Kopf posts only its own warnings and errors.
    settings.posting.level = logging.WARNING
    kube = Kube(load_client_config())
    if SETTINGS.webhook_enabled:
        server = webhook_server(SETTINGS)
        if SETTINGS.webhook_configuration:

            async def publish(client_config: kopf.WebhookClientConfig) -> None:
                body = validating_configuration(
                    SETTINGS.webhook_configuration, client_config, SETTINGS.webhook_failure_policy
                )
                await asyncio.to_thread(kube.apply_webhook_configuration, body)
                logger.info("published ValidatingWebhookConfiguration %s", SETTINGS.webhook_configuration)

            settings.admission.server = PublishingWebhookServer(server, publish)
        else:
            settings.admission.server = server
    controller = Controller(SETTINGS, kube)
    await controller.start()
    controller.requeue_hook = _reconcile_from_indexes
    _State.controller = controller
    metrics.serve(SETTINGS.metrics_port, SETTINGS.listen_address)


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    if _State.controller is not None:
        await _State.controller.stop()


@kopf.index(GROUP, VERSION, PLURAL)
def sftjobs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", name): _plain(body)}


@kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS)
def trainer_jobs(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", labels[names.LABEL_JOB]): _plain(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
def trainer_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", labels[names.LABEL_JOB]): _plain(body)}


def _plain(body: kopf.Body) -> dict[str, Any]:
    """The object as plain dicts; each watch event brings a new one, so no copy is needed."""
    return dict(body)


def _remember(kwargs: dict[str, Any]) -> None:
    for index in ("sftjobs", "trainer_jobs", "trainer_pods"):
        if index in kwargs:
            _State.indexes[index] = kwargs[index]


def _lookup(index: str, key: Key) -> list[dict[str, Any]]:
    store = _State.indexes.get(index)
    if store is None or key not in store:
        return []
    return list(store[key])


async def _reconcile_from_indexes(key: Key) -> None:
    bodies = _lookup("sftjobs", key)
    if not bodies:
        return
    await _controller().reconcile(key, bodies[0], _lookup("trainer_jobs", key), _lookup("trainer_pods", key))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def sftjob_changed(type: str, namespace: str | None, name: str, body: kopf.Body, **kwargs: Any) -> None:
    _remember(kwargs)
    key = (namespace or "", name)
    if type == "DELETED":
        _controller().forget(key)
        return
    _controller().observe(key, _plain(body))
    await _reconcile_from_indexes(key)


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
async def job_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    _remember(kwargs)
    await _reconcile_from_indexes((namespace or "", labels[names.LABEL_JOB]))


@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
async def pod_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    _remember(kwargs)
    await _reconcile_from_indexes((namespace or "", labels[names.LABEL_JOB]))


@kopf.timer(GROUP, VERSION, PLURAL, interval=SETTINGS.progress_interval_seconds)
async def resync(namespace: str | None, name: str, **kwargs: Any) -> None:
    """Read progress, then reconcile: the periodic pass that makes the operator level-triggered."""
    _remember(kwargs)
    key = (namespace or "", name)
    bodies = _lookup("sftjobs", key)
    if not bodies:
        return
    await _controller().poll_progress(key, bodies[0], _lookup("trainer_pods", key))
    await _reconcile_from_indexes(key)


if SETTINGS.webhook_enabled:
    kopf.on.validate(GROUP, VERSION, PLURAL, id=HANDLER_ID, operations=["CREATE", "UPDATE"])(validate_sftjob)
