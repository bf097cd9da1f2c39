"""The NetworkPolicy of an SFTJob's trainer pods, rendered as a plain manifest.

Trainer pods may run a tenant's image and hold the job's credentials, so nothing but what the
job needs may reach them: the operator reading ``/progress``, the Prometheus that scrapes
``/metrics`` (both on the metrics port), and, in a multi-node job, the job's own other pods. The
last get every port, not only the rendezvous port: NCCL and Gloo open connections between ranks
on ports they pick at random. Egress stays open unless the platform restricts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubesft_api import pod_contract
from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator import names
from kubesft_operator.render import Owner, owner_reference

if TYPE_CHECKING:
    from kubesft_operator.settings import OperatorSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set on every namespace by Kubernetes 1.21+; selects a namespace by its name."""


@dataclass(frozen=True)
class NetworkPolicySettings:
    """Who may reach trainer pods, and what they may reach, from the operator's settings."""

    operator_namespace: str
    operator_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus: tuple[Mapping[str, Any], ...] = ()
    """NetworkPolicy peers (namespaceSelector and podSelector) that scrape trainer metrics."""
    restrict_egress: bool = False
    egress: tuple[Mapping[str, Any], ...] = ()
    """Egress rules trainer pods get when egress is restricted."""


def network_policy_settings(settings: OperatorSettings) -> NetworkPolicySettings | None:
    """The NetworkPolicy settings of the operator's settings; None when it makes no NetworkPolicy."""
    if not settings.network_policy_enabled:
        return None
    return NetworkPolicySettings(
        operator_namespace=settings.pod_namespace,
        operator_labels=dict(settings.network_policy_operator_labels),
        prometheus=tuple(settings.network_policy_prometheus),
        restrict_egress=settings.network_policy_restrict_egress,
        egress=tuple(settings.network_policy_egress),
    )


def _metrics_port() -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": pod_contract.TRAINER_METRICS_PORT}]


def render_network_policy(owner: Owner, spec: SFTJobSpec, settings: NetworkPolicySettings) -> dict[str, Any]:
    own_pods = {"podSelector": {"matchLabels": {names.LABEL_JOB: owner.name}}}
    operator = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: settings.operator_namespace}},
        "podSelector": {"matchLabels": dict(settings.operator_labels)},
    }
    ingress: list[dict[str, Any]] = [{"from": [operator], "ports": _metrics_port()}]
    if settings.prometheus:
        ingress.append({"from": [dict(peer) for peer in settings.prometheus], "ports": _metrics_port()})
    multi_node = spec.resources.nodes > 1
    if multi_node:
        ingress.append({"from": [own_pods]})
    policy: dict[str, Any] = {
        "podSelector": {
            "matchLabels": {names.LABEL_JOB: owner.name, names.LABEL_MANAGED_BY: names.MANAGED_BY}
        },
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    }
    if settings.restrict_egress:
        egress = [dict(rule) for rule in settings.egress]
        if multi_node:
            egress.append({"to": [own_pods]})
        policy["policyTypes"] = ["Ingress", "Egress"]
        policy["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": names.network_policy_name(owner.name),
            "namespace": owner.namespace,
            "labels": names.child_labels(owner.name),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": policy,
    }
