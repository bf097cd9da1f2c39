"""Admission: the same validation as the operator's, so ``kubectl apply`` of a bad SFTJob fails at once.

The webhooks are served by Kopf's HTTPS server (the handlers are in ``admission``). In a cluster
the API server reaches it through a Service; in development it calls the operator's address
directly. Without mounted certificate files the operator makes a self-signed one at start-up.
The chart creates both webhook configurations; the operator only patches them, by name, with its
address and CA bundle.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import pathlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubesft_api.sftjob import GROUP, PLURAL, VERSION, InvalidSpecError, parse_spec
from kubesft_operator import names, spec_changes
from kubesft_operator.network_policy import NAMESPACE_NAME_LABEL
from kubesft_operator.policy import Policy, policy_problems
from kubesft_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

HANDLER_ID = "validate-sftjob"
"""Kopf serves the handler at /<id>; a ValidatingWebhookConfiguration made by hand points there."""
MUTATING_HANDLER_ID = "record-sftjob-admission"
WEBHOOK_NAME = f"validate.{PLURAL}.{GROUP}"
MUTATING_WEBHOOK_NAME = f"record.{PLURAL}.{GROUP}"


def admission_problems(
    operation: str,
    name: str | None,
    spec: dict[str, Any] | None,
    old_spec: dict[str, Any] | None = None,
    old_phase: str | None = None,
    *,
    namespace: str = "",
    policy: Policy | None = None,
) -> list[str]:
    """Why an SFTJob create or update must be refused; empty when it may go ahead.

    With a ``policy``, a spec that breaks it in ``namespace`` is refused too.
    """
    problems: list[str] = []
    if operation == "CREATE" and name and not names.is_dns_label(name):
        problems.append(names.name_problem(name))
    try:
        parsed = parse_spec(spec)
    except InvalidSpecError as exc:
        problems += exc.problems
    else:
        if policy is not None:
            problems += policy_problems(parsed, namespace, policy)
    if operation == "UPDATE" and old_spec is not None and old_phase in spec_changes.ACTIVE_PHASES:
        changed = spec_changes.immutable_changes(old_spec, spec or {})
        if changed:
            problems.append(spec_changes.refusal_message(changed, old_phase))
    return problems


def self_signed_certificate(
    hostnames: list[str], directory: pathlib.Path
) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed CA certificate for ``hostnames`` (DNS names or IPs) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alt_names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hostnames):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class ServiceWebhookServer(kopf.WebhookServer):
    """Kopf's HTTPS server, announced to the API server as a Service rather than a URL."""

    def __init__(
        self, *, service_name: str, service_namespace: str, service_port: int, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.service_namespace = service_namespace
        self.service_port = service_port

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            service = kopf.WebhookClientConfigService(
                name=self.service_name, namespace=self.service_namespace, port=self.service_port, path=""
            )
            yield kopf.WebhookClientConfig(caBundle=client_config.get("caBundle"), service=service)


def _webhook(
    name: str,
    handler_id: str,
    client_config: Mapping[str, Any],
    failure_policy: str,
    namespaces: Sequence[str],
    exempt_user: str | None,
) -> dict[str, Any]:
    config: dict[str, Any] = {key: value for key, value in client_config.items() if value is not None}
    if "url" in config:
        config["url"] = f"{config['url'].rstrip('/')}/{handler_id}"
    if "service" in config:
        config["service"] = {**config["service"], "path": f"/{handler_id}"}
    webhook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "timeoutSeconds": 10,
        "clientConfig": config,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": [PLURAL],
                "scope": "Namespaced",
            }
        ],
    }
    if namespaces:
        # One namespaced install being down must not block SFTJob writes anywhere else.
        webhook["namespaceSelector"] = {
            "matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}]
        }
    if exempt_user:
        webhook["matchConditions"] = [exempt_condition(exempt_user)]
    return webhook


def exempt_condition(username: str) -> dict[str, str]:
    """A matchCondition that skips the webhook for ``username``'s requests: the operator's own.

    The operator only writes the records it signs itself, which both webhooks would let through
    unchanged; skipping them spares two admission round trips per SFTJob, served on the same
    event loop that creates the Jobs. The username is quoted as a CEL string literal.
    """
    literal = username.replace("\\", "\\\\").replace('"', '\\"')
    return {"name": "not-the-operator", "expression": f'request.userInfo.username != "{literal}"'}


def _configuration(kind: str, name: str, webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": {names.LABEL_NAME: "kubesft", names.LABEL_MANAGED_BY: names.MANAGED_BY},
        },
        "webhooks": [webhook],
    }


def validating_configuration(
    name: str,
    client_config: Mapping[str, Any],
    failure_policy: str,
    namespaces: Sequence[str] = (),
    exempt_user: str | None = None,
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration that sends SFTJob creates and updates to the operator
    (but for ``exempt_user``'s, when given)."""
    webhook = _webhook(WEBHOOK_NAME, HANDLER_ID, client_config, failure_policy, namespaces, exempt_user)
    return _configuration("ValidatingWebhookConfiguration", name, webhook)


def mutating_configuration(
    name: str,
    client_config: Mapping[str, Any],
    failure_policy: str,
    namespaces: Sequence[str] = (),
    exempt_user: str | None = None,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration that records who set each SFTJob's spec."""
    webhook = _webhook(
        MUTATING_WEBHOOK_NAME, MUTATING_HANDLER_ID, client_config, failure_policy, namespaces, exempt_user
    )
    webhook["reinvocationPolicy"] = "Never"
    return _configuration("MutatingWebhookConfiguration", name, webhook)


class _NamespacedRequests:
    """``fn`` given objects that name their namespace.

    Before the API server stores a create, the object's own namespace may still be empty when
    the request named it only in the URL; the admission record must be bound to it.
    """

    def __init__(self, fn: kopf.WebhookFn) -> None:
        self.fn = fn

    def __call__(
        self,
        request: Any,
        *,
        webhook: str | None = None,
        headers: dict[str, str] | None = None,
        sslpeer: dict[str, Any] | None = None,
    ) -> Awaitable[Any]:
        payload = request.get("request") or {}
        obj, namespace = payload.get("object"), payload.get("namespace")
        if isinstance(obj, dict) and namespace:
            obj.setdefault("metadata", {}).setdefault("namespace", namespace)
        return self.fn(request, webhook=webhook, headers=headers, sslpeer=sslpeer)


class NamespacedWebhookServer:
    """Serves with ``server``; every admission request's object names the request's namespace."""

    def __init__(self, server: kopf.WebhookServerProtocol) -> None:
        self.server = server

    def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        return self.server(cast(kopf.WebhookFn, _NamespacedRequests(fn)))


class PublishingWebhookServer:
    """Serves with ``server`` and publishes each address and CA bundle it announces.

    Kopf's own managed mode would also keep an empty MutatingWebhookConfiguration; this keeps
    only the validating one, with the failure policy from the settings.
    """

    def __init__(
        self, server: kopf.WebhookServer, publish: Callable[[kopf.WebhookClientConfig], Awaitable[None]]
    ) -> None:
        self.server = server
        self.publish = publish

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in self.server(fn):
            await self.publish(client_config)
            yield client_config


class NoWebhookServer:
    """Admission turned off: Kopf wants a server once a validating handler is registered, and this
    one listens nowhere and announces no address, so no webhook configuration is published."""

    def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        return self

    def __aiter__(self) -> AsyncIterator[kopf.WebhookClientConfig]:
        return self

    async def __anext__(self) -> kopf.WebhookClientConfig:
        await asyncio.Event().wait()  # until the operator stops
        raise StopAsyncIteration


def webhook_server(settings: OperatorSettings) -> kopf.WebhookServer:
    """The admission server for ``settings``: Service-addressed in a cluster, URL-addressed locally."""
    cert_file, key_file = settings.webhook_cert_file, settings.webhook_key_file
    common: dict[str, Any] = {"addr": settings.webhook_listen_address, "port": settings.webhook_port}
    if settings.webhook_service_name:
        namespace = settings.webhook_service_namespace or settings.pod_namespace
        service = settings.webhook_service_name
        hostnames = [f"{service}.{namespace}.svc", f"{service}.{namespace}", service]
    else:
        host = settings.webhook_host or "127.0.0.1"
        hostnames = [host]
        common["host"] = host
    if cert_file is None:
        directory = pathlib.Path(tempfile.mkdtemp(prefix="kubesft-webhook-"))
        cert, key = self_signed_certificate(hostnames, directory)
        cert_file, key_file = str(cert), str(key)
    common.update(certfile=cert_file, pkeyfile=key_file, cafile=settings.webhook_ca_file or cert_file)
    if settings.webhook_service_name:
        return ServiceWebhookServer(
            service_name=settings.webhook_service_name,
            service_namespace=settings.webhook_service_namespace or settings.pod_namespace,
            service_port=settings.webhook_service_port,
            **common,
        )
    return kopf.WebhookServer(**common)
