"""Kopf handlers: watches feed in-memory indexes, and every change reconciles the SFTJob it touches.

The handlers are level-triggered. An event on an SFTJob, on one of its Jobs or on one of their
Pods reconciles that SFTJob from the indexes; a timer per SFTJob reads progress and reconciles
again, so time-driven transitions (deadline, TTL) and anything a lost event missed still happen.
Kopf keeps its own bookkeeping in annotations (``kubesft.io/*``), never in status. SFTJobs carry
no finalizer: deleting one leaves nothing to clean up (owner references remove the children, and
object storage is kept), so it never waits for the operator.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar, cast

import kopf

from kubesft_api.sftjob import GROUP, KIND, PLURAL, VERSION
from kubesft_operator import metrics, names, watched
from kubesft_operator.controller import Controller, Key, Observed
from kubesft_operator.kube import Kube, find_connection
from kubesft_operator.settings import get_settings
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


class LeanDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's "essence" of an object, built without deep-copying what it throws away.

    Kopf builds it on every watch event, by default from a deep copy of the whole object,
    status and managed fields included. The operator has no change-detecting handlers, so the
    essence only needs labels, annotations and the SFTJob's spec; for Pods and Jobs, which
    make most of the events, this saves most of the operator's CPU under load.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        meta = body.get("metadata") or {}
        lean: dict[str, Any] = {
            "metadata": {key: meta[key] for key in ("labels", "annotations") if key in meta},
        }
        if body.get("kind") == KIND:
            lean["spec"] = body.get("spec") or {}
        return super().build(body=kopf.Body(cast(kopf.RawBody, lean)), extra_fields=extra_fields)


def _controller() -> Controller:
    if _State.controller is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return _State.controller


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = LeanDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Watch only the operator's own Jobs and Pods, not every Pod in the cluster.
    own = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
    settings.watching.label_selectors["batch", "jobs"] = own
    settings.watching.label_selectors["", "pods"] = own
    # Events are recorded on purpose by the controller; Kopf posts only its own warnings and errors.
    settings.posting.level = logging.WARNING
    kube = Kube(lambda: find_connection(settings))
    await kube.start()
    if SETTINGS.webhook_enabled:
        server = webhook_server(SETTINGS)
        if SETTINGS.webhook_configuration:

            async def publish(client_config: kopf.WebhookClientConfig) -> None:
                body = validating_configuration(
                    SETTINGS.webhook_configuration, client_config, SETTINGS.webhook_failure_policy
                )
                await kube.apply_webhook_configuration(body)
                logger.info("published ValidatingWebhookConfiguration %s", SETTINGS.webhook_configuration)

            settings.admission.server = PublishingWebhookServer(server, publish)
        else:
            settings.admission.server = server
    controller = Controller(SETTINGS, kube, _observed)
    await controller.start()
    _State.controller = controller
    metrics.serve(SETTINGS.metrics_port, SETTINGS.listen_address)


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    if _State.controller is not None:
        await _State.controller.stop()


@kopf.index(GROUP, VERSION, PLURAL)
def sftjobs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", name): watched.keep_sftjob(_plain(body))}


@kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS)
def trainer_jobs(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", labels[names.LABEL_JOB]): watched.keep_job(_plain(body))}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
def trainer_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", labels[names.LABEL_JOB]): watched.keep_pod(_plain(body))}


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


def _observed(key: Key) -> Observed:
    """What the watches show for ``key`` now: the SFTJob (or None), its Jobs and their Pods."""
    bodies = _lookup("sftjobs", key)
    return Observed(bodies[0] if bodies else None, _lookup("trainer_jobs", key), _lookup("trainer_pods", key))


async def _reconcile_from_indexes(key: Key) -> None:
    await _controller().reconcile(key)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def sftjob_changed(type: str, namespace: str | None, name: str, body: kopf.Body, **kwargs: Any) -> None:
    _remember(kwargs)
    key = (namespace or "", name)
    if type == "DELETED":
        _controller().forget(key)
        return
    _controller().observe(key, (body.get("status") or {}).get("phase"))
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
    await _controller().poll_progress(key)
    await _reconcile_from_indexes(key)


def _timers_without_finalizer(registry: kopf.OperatorRegistry) -> None:
    """Kopf gives every timer a finalizer so it can stop it before the object goes; this timer
    only reads and reconciles, and stops harmlessly on the deletion event. Without the finalizer
    an SFTJob is deleted even while no operator runs, and Kopf removes the finalizer that earlier
    versions added. Kopf has no public switch for timers, hence the registry's own list."""
    spawning = registry._spawning
    spawning._handlers[:] = [
        dataclasses.replace(handler, requires_finalizer=False) for handler in spawning.get_all_handlers()
    ]


_timers_without_finalizer(kopf.get_default_registry())


if SETTINGS.webhook_enabled:
    kopf.on.validate(GROUP, VERSION, PLURAL, id=HANDLER_ID, operations=["CREATE", "UPDATE"])(validate_sftjob)
