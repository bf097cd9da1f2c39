"""The trainer pods' NetworkPolicy: who may reach them, and what egress they keep."""

from __future__ import annotations

from kubesft_operator.network_policy import NetworkPolicySettings, render_network_policy
from tests.support.operator_objects import OWNER, parsed, spec_dict

OPERATOR = {"app.kubernetes.io/name": "kubesft", "app.kubernetes.io/component": "operator"}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
SETTINGS = NetworkPolicySettings("kubesft-system", OPERATOR, (PROMETHEUS,))
METRICS = [{"protocol": "TCP", "port": 9090}]


def _nodes(count: int) -> dict[str, object]:
    raw = spec_dict()
    raw["resources"] = {"nodes": count}
    return raw


def test_one_node_job_admits_the_operator_and_prometheus_on_the_metrics_port_only() -> None:
    policy = render_network_policy(OWNER, parsed(spec_dict()), SETTINGS)
    assert policy["metadata"]["name"] == "chat-trainers"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {
        "kubesft.io/job": "chat",
        "app.kubernetes.io/managed-by": "kubesft-operator",
    }
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubesft-system"}},
                    "podSelector": {"matchLabels": OPERATOR},
                }
            ],
            "ports": METRICS,
        },
        {"from": [PROMETHEUS], "ports": METRICS},
    ]


def test_multi_node_ranks_reach_each_other_on_every_port() -> None:
    (*_, peers) = render_network_policy(OWNER, parsed(_nodes(2)), SETTINGS)["spec"]["ingress"]
    # NCCL and Gloo connect ranks on ports they choose, besides the rendezvous port.
    assert peers == {"from": [{"podSelector": {"matchLabels": {"kubesft.io/job": "chat"}}}]}


def test_without_a_prometheus_no_one_else_may_scrape() -> None:
    policy = render_network_policy(OWNER, parsed(spec_dict()), NetworkPolicySettings("ops", OPERATOR))
    assert len(policy["spec"]["ingress"]) == 1


def test_restricted_egress_keeps_only_the_given_rules_and_the_jobs_own_pods() -> None:
    dns = {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}]}
    settings = NetworkPolicySettings("ops", OPERATOR, restrict_egress=True, egress=(dns,))
    one = render_network_policy(OWNER, parsed(spec_dict()), settings)["spec"]
    assert one["policyTypes"] == ["Ingress", "Egress"]
    assert one["egress"] == [dns]
    two = render_network_policy(OWNER, parsed(_nodes(2)), settings)["spec"]
    assert two["egress"] == [dns, {"to": [{"podSelector": {"matchLabels": {"kubesft.io/job": "chat"}}}]}]
    nothing = NetworkPolicySettings("ops", OPERATOR, restrict_egress=True)
    assert render_network_policy(OWNER, parsed(spec_dict()), nothing)["spec"]["egress"] == []
