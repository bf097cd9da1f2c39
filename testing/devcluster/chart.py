"""Reads the Helm chart: rendered manifests, the dashboards' queries and the alert rules.

The dashboards live once, as JSON under ``charts/kubesft/dashboards/``; the chart ships them
with ``.Files.Get``, and the tests and the PNG renderer read the same files through here.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from testing.devcluster.helm import run_helm

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts/kubesft"
DASHBOARD_DIR = CHART_DIR / "dashboards"

# Grafana's built-in interval variables, as the tests and the renderer resolve them.
_BUILTIN_VARIABLES = ("__rate_interval", "__interval", "__range")


@dataclasses.dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    legend: str


def render(
    values: Mapping[str, Any] | None = None,
    *,
    values_files: tuple[pathlib.Path, ...] = (),
    release: str = "kubesft",
    namespace: str = "kubesft-system",
    kube_version: str | None = None,
) -> list[dict[str, Any]]:
    """``helm template`` the chart and return its objects (CRDs included), for the Kubernetes
    version ``kube_version`` when given (helm's own default otherwise)."""
    args = ["template", release, str(CHART_DIR), "--namespace", namespace, "--include-crds"]
    if kube_version:
        args += ["--kube-version", kube_version]
    for path in values_files:
        args += ["--values", str(path)]
    if values:
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
    out = run_helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards by file stem (operator, training)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel with queries, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panels(panel)
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(
            dashboard=dashboard["title"],
            panel=panel["title"],
            ref_id=target["refId"],
            expr=target["expr"],
            legend=target.get("legendFormat", ""),
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def template_variables(dashboard: Mapping[str, Any]) -> list[str]:
    return [v["name"] for v in dashboard.get("templating", {}).get("list", [])]


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Resolve ``$name`` and ``${name}`` the way Grafana does; unknown names raise KeyError."""

    def value(match: re.Match[str]) -> str:
        return variables[match.group(1) or match.group(2)]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def builtin_variables(rate_interval: str, range_: str) -> dict[str, str]:
    values = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": range_}
    assert set(values) == set(_BUILTIN_VARIABLES)
    return values


def rule_groups(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups of the chart's PrometheusRule, in Prometheus' own rule-file shape."""
    rules = find(docs, "PrometheusRule")
    if len(rules) != 1:
        raise ValueError(f"expected one PrometheusRule, found {len(rules)}")
    groups: list[dict[str, Any]] = rules[0]["spec"]["groups"]
    return groups


def write_rule_file(docs: list[dict[str, Any]], path: pathlib.Path) -> pathlib.Path:
    path.write_text(yaml.safe_dump({"groups": rule_groups(docs)}, sort_keys=False))
    return path


_METRIC_NAME = re.compile(r"\bkubesft_[a-z0-9_]+\b")


def metric_names(expr: str) -> set[str]:
    """kubesft metric names an expression reads."""
    return set(_METRIC_NAME.findall(expr))


def _label_name(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_monitor_scrape_config(
    pod_monitor: Mapping[str, Any], targets_file: pathlib.Path, interval: str | None = None
) -> dict[str, Any]:
    """The Prometheus scrape config prometheus-operator generates for ``pod_monitor``.

    Pod targets come from ``targets_file`` in the shape Kubernetes service discovery gives them
    (see pod_discovery.py): Debian's Prometheus is built without Kubernetes discovery. Pods are
    kept when they carry the selector's labels and a container port of the endpoint's name, and
    get namespace, pod, container and job labels plus the PodMonitor's own relabelings.
    """
    spec = pod_monitor["spec"]
    meta = pod_monitor["metadata"]
    (endpoint,) = spec["podMetricsEndpoints"]
    relabel: list[dict[str, Any]] = []
    namespaces = spec.get("namespaceSelector", {})
    if not namespaces.get("any"):
        names = namespaces.get("matchNames") or [meta["namespace"]]
        relabel.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_namespace"],
                "regex": "|".join(re.escape(n) for n in names),
            }
        )
    for key, value in spec["selector"].get("matchLabels", {}).items():
        relabel.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{_label_name(key)}",
                    f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}",
                ],
                "regex": f"({re.escape(value)});true",
            }
        )
    relabel += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": endpoint["port"],
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    for rule in endpoint.get("relabelings", []):
        relabel.append(
            {
                "source_labels": rule["sourceLabels"],
                "target_label": rule["targetLabel"],
                **({"action": rule["action"]} if "action" in rule else {}),
            }
        )
    return {
        **_endpoint_settings("podMonitor", meta, endpoint, interval),
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
        "relabel_configs": relabel,
    }


def _endpoint_settings(
    kind: str, meta: Mapping[str, Any], endpoint: Mapping[str, Any], interval: str | None
) -> dict[str, Any]:
    """Job name and scrape settings of one monitor endpoint; ``interval`` overrides its timing."""
    return {
        "job_name": f"{kind}/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "scrape_interval": interval or endpoint.get("interval", "30s"),
        "scrape_timeout": interval or endpoint.get("scrapeTimeout", "10s"),
        "metrics_path": endpoint.get("path", "/metrics"),
    }


def service_monitor_static_config(
    service_monitor: Mapping[str, Any], service: Mapping[str, Any], address: str, interval: str | None = None
) -> dict[str, Any]:
    """A scrape config for ``address`` with the labels ``service_monitor`` gives its targets.

    prometheus-operator names the job after the Service and adds its namespace; ``address``
    stands in for the endpoints of ``service``.
    """
    (endpoint,) = service_monitor["spec"]["endpoints"]
    return {
        **_endpoint_settings("serviceMonitor", service_monitor["metadata"], endpoint, interval),
        "static_configs": [
            {
                "targets": [address],
                "labels": {
                    "job": service["metadata"]["name"],
                    "namespace": service["metadata"]["namespace"],
                    "service": service["metadata"]["name"],
                    "endpoint": endpoint["port"],
                },
            }
        ],
    }
