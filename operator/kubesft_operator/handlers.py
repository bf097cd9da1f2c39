"""Kopf handlers: watches feed in-memory indexes, and every change reconciles the SFTJob it touches.

The handlers are level-triggered. An event on an SFTJob, on one of its Jobs or on one of their
Pods reconciles that SFTJob from the indexes; the controller's own loop, started at startup and
kept in Kopf's memo, reads progress and reconciles every SFTJob once per progress interval. Kopf
keeps its own bookkeeping in annotations (``kubesft.io/*``), never in status.

SFTJobs carry no finalizer: deleting one leaves nothing to clean up (owner references remove the
children, and object storage is kept), so it never waits for the operator, even one that is not
running. Kopf adds a finalizer for timers, daemons and non-optional deletion handlers, so none is
registered here, and Kopf removes the finalizer that earlier versions added.

Settings are read at startup, not at import: importing this module only registers handlers.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from kubesft_api.sftjob import GROUP, KIND, PLURAL, VERSION
from kubesft_operator import metrics, names, watched
from kubesft_operator.admission import Admission, record_admission, validate_sftjob
from kubesft_operator.authorization import RecentAnswers
from kubesft_operator.controller import Controller
from kubesft_operator.kube import Kube, find_connection
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.settings import OperatorSettings, get_settings
from kubesft_operator.watched import Key, Watches
from kubesft_operator.webhook import (
    HANDLER_ID,
    MUTATING_HANDLER_ID,
    NamespacedWebhookServer,
    NoWebhookServer,
    PublishingWebhookServer,
    mutating_configuration,
    validating_configuration,
    webhook_server,
)

logger = logging.getLogger(__name__)

CHILD_LABELS: dict[str, Any] = {
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
    names.LABEL_JOB: kopf.PRESENT,
}
SFTJOB_INDEX, JOB_INDEX, POD_INDEX = "sftjobs", "trainer_jobs", "trainer_pods"


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


def _controller(memo: kopf.Memo) -> Controller:
    controller = memo.get("controller")
    if not isinstance(controller, Controller):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return controller


def _configure_kopf(settings: kopf.OperatorSettings) -> None:
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


def admission_server(config: OperatorSettings, kube: Kube) -> kopf.WebhookServerProtocol:
    """The server of the validating webhook; one that serves nothing when the webhook is off."""
    if not config.webhook_enabled:
        return NoWebhookServer()
    server = webhook_server(config)
    if not config.webhook_configuration:
        return NamespacedWebhookServer(server)

    async def publish(client_config: kopf.WebhookClientConfig) -> None:
        # The operator's own writes (its signed records) pass the webhooks unchanged: skip them.
        own = await kube.own_username()
        for render in (mutating_configuration, validating_configuration):
            body = render(
                config.webhook_configuration,
                client_config,
                config.webhook_failure_policy,
                config.watch_namespaces,
                own,
            )
            await kube.patch_webhook_configuration(body)
        logger.info(
            "published ValidatingWebhookConfiguration and MutatingWebhookConfiguration %s%s",
            config.webhook_configuration,
            f" (not called for {own}'s own requests)" if own else "",
        )

    return NamespacedWebhookServer(PublishingWebhookServer(server, publish))


def _watches(indexes: dict[str, Any]) -> Watches:
    """The indexes below, from a handler's keyword arguments, where Kopf passes each by its id.

    Startup handlers get them too, still empty: the watches fill the same objects later.
    """
    sftjob_index: kopf.Index[Key, SFTJob] = indexes[SFTJOB_INDEX]
    job_index: kopf.Index[Key, Job] = indexes[JOB_INDEX]
    pod_index: kopf.Index[Key, Pod] = indexes[POD_INDEX]
    return Watches(sftjob_index, job_index, pod_index)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config = get_settings()
    _configure_kopf(settings)
    kube = Kube(lambda: find_connection(settings))
    await kube.start()
    settings.admission.server = admission_server(config, kube)
    # One memory of answers for the webhook and the controller: both ask about the same creator.
    review = RecentAnswers(kube.review_access)
    memo.admission = Admission(config.policy, review, config.signer)
    if config.signer is None:
        logger.warning(
            "KUBESFT_SIGNING_KEY is not set: SFTJobs carry no signed admission or applied-spec "
            "record, so the operator cannot re-check creators or detect an edited record"
        )
    controller = Controller(config, kube, _watches(kwargs), review)
    await controller.start()
    memo.controller = controller
    metrics.serve(config.metrics_port, config.listen_address)


@kopf.on.cleanup()
async def shut_down(memo: kopf.Memo, **_: Any) -> None:
    controller = memo.get("controller")
    if isinstance(controller, Controller):
        await controller.stop()


@kopf.index(GROUP, VERSION, PLURAL, id=SFTJOB_INDEX)
def sftjobs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, SFTJob]:
    return {(namespace or "", name): watched.keep_sftjob(body)}


@kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS, id=JOB_INDEX)
def trainer_jobs(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Key, Job]:
    return {(namespace or "", labels[names.LABEL_JOB]): watched.keep_job(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS, id=POD_INDEX)
def trainer_pods(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Key, Pod]:
    return {(namespace or "", labels[names.LABEL_JOB]): watched.keep_pod(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def sftjob_changed(
    type: str | None, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    controller = _controller(memo)
    key = (namespace or "", name)
    if type == "DELETED":
        controller.forget(key)
        return
    # Kopf gives objects of a (re)listing the event type None.
    controller.observe(key, watched.keep_sftjob(body), listed=type is None)
    await controller.reconcile(key)


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
async def job_changed(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).reconcile((namespace or "", labels[names.LABEL_JOB]))


@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
async def pod_changed(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).reconcile((namespace or "", labels[names.LABEL_JOB]))


kopf.on.mutate(GROUP, VERSION, PLURAL, id=MUTATING_HANDLER_ID, operations=["CREATE", "UPDATE"])(
    record_admission
)
kopf.on.validate(GROUP, VERSION, PLURAL, id=HANDLER_ID, operations=["CREATE", "UPDATE"])(validate_sftjob)
