"""The chart installed by real helm into the local control plane, checked by a real training run.

One module-scoped run: ``helm install``; the operator runs as a local process with a
kubeconfig of the chart's ServiceAccount (so only the chart's RBAC applies) and the environment
of the installed Deployment; a real Prometheus scrapes it and, through the chart's PodMonitor
translated to a scrape config over pod discovery, the trainer pod on its own IP; one SFTJob
trains a tiny model to Succeeded and is removed by its TTL, and a second one is suspended before
its pod starts. The tests then read the API server's audit log, the scrapes, and the Prometheus
data.

What this control plane (no kubelet, no kube-proxy) cannot show: the
Deployment's pods (there is no Deployment controller, so the operator runs beside the cluster
rather than in a pod), the webhook reached through its Service (the API server calls the
operator on loopback instead), and the GPU memory panel (the trainer runs on CPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from testing.devcluster.chart import (
    CHART_DIR,
    builtin_variables,
    dashboards,
    find,
    panel_queries,
    pod_monitor_scrape_config,
    render,
    rule_groups,
    service_monitor_static_config,
    substitute,
)
from testing.devcluster.cluster import Cluster
from testing.devcluster.helm import run_helm
from testing.devcluster.kube import wait_until
from testing.devcluster.operator_install import (
    OperatorInstall,
    OperatorProcess,
    patch_sftjob_spec,
    running_operator,
    wait_for_phase,
)
from testing.devcluster.prometheus import LocalPrometheus
from testing.devcluster.s3 import S3Server
from testing.sftjob_manifests import sftjob_manifest, tiny_cpu_spec
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl
from tests.support.pod_discovery import PodDiscovery
from tests.support.render_dashboard_png import render_dashboard_png, render_training_png

RELEASE = "chart-e2e"
NAMESPACE = "kubesft-chart"
SFTJOB = "chart-e2e"
SUSPENDED = "chart-e2e-suspended"
# Distinct from the peering object other tests' operators use in the same session.
VALUES = {"leaderElection.peeringName": "chart-e2e"}
MONITORING = {
    **VALUES,
    "monitoring.serviceMonitor.enabled": True,
    "monitoring.podMonitor.enabled": True,
    "monitoring.prometheusRule.enabled": True,
}
# Seconds between scrapes: the run lasts seconds, not the 15-30 s a cluster would use.
SCRAPE_INTERVAL = "1s"
RATE_INTERVAL = "5s"
# Set to a directory (make dashboard-png) to write the rendered dashboards there, from a longer run.
PNG_DIR = os.environ.get("KUBESFT_DASHBOARD_DIR")
MAX_STEPS = 600 if PNG_DIR else 120
# Seconds the training may take; the longer run gets room for a busy machine.
TRAINING_TIMEOUT = 1800 if PNG_DIR else 600


@dataclass
class ChartRun:
    install: OperatorInstall
    prometheus: LocalPrometheus
    job_namespace: str
    started: float
    finished: float
    # When the second SFTJob was gone and the operator last scraped, still running.
    settled: float = 0.0
    operator_scrape: str = ""
    trainer_scrape: str = ""
    final_status: dict[str, Any] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)


def _sftjob(namespace: str, s3: Any, prefix: str, name: str = SFTJOB) -> dict[str, Any]:
    spec = tiny_cpu_spec(
        s3,
        prefix,
        max_steps=MAX_STEPS,
        learning_rate=1.0e-3,
        logging_steps=1,
        eval_steps=10,
        save_steps=40,
        # The TTL makes the operator delete the finished SFTJob, which its RBAC must allow.
        run_policy={"backoffLimit": 0, "ttlSecondsAfterFinished": 5, "terminationGracePeriodSeconds": 30},
    )
    return sftjob_manifest(name, spec, namespace)


def _stage_inputs(s3: S3Server, directory: pathlib.Path, prefix: str) -> None:
    s3.upload_directory(build_tiny_model(directory / "model"), f"{prefix}/model")
    data = write_jsonl(directory / "data/chat.jsonl", chat_rows(200))
    s3.upload_directory(data.parent, f"{prefix}/data")


def _suspend_while_waiting(cluster: Cluster, namespace: str, s3: Any, operator: OperatorProcess) -> None:
    """A second SFTJob, suspended while its pod waits for a Secret that does not exist.

    The operator suspends by setting the Job's .spec.suspend: this exercises the chart's Job
    patch grant on every run, without a second training. The Job stays and its pod goes.
    """
    job = _sftjob(namespace, s3, "chart-e2e", name=SUSPENDED)
    job["spec"]["checkpoints"]["credentialsSecret"] = {"name": "not-created"}
    # Straight to the trainer Job: a validation pod would wait for the same missing Secret.
    job["spec"]["validation"] = {"enabled": False}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    trainer_job = f"{SUSPENDED}-0"
    wait_until(
        lambda: cluster.kube.get("batch/v1", "Job", trainer_job, namespace),
        timeout=60,
        describe=lambda: f"no Job for the second SFTJob:\n{operator.log()[-3000:]}",
    )
    patch_sftjob_spec(cluster, namespace, SUSPENDED, {"runPolicy": {"suspend": True}})
    wait_for_phase(cluster, namespace, SUSPENDED, "Suspended", timeout=120)
    kept = cluster.kube.get("batch/v1", "Job", trainer_job, namespace)
    assert kept is not None and kept["spec"]["suspend"] is True, kept
    wait_until(
        lambda: (
            not cluster.kube.core.list_namespaced_pod(
                namespace, label_selector=f"job-name={trainer_job}"
            ).items
            or None
        ),
        timeout=60,
        describe=lambda: f"the suspended Job {trainer_job} still has pods",
    )
    cluster.kubectl("delete", "sft", SUSPENDED, "-n", namespace, "--timeout=60s")


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _trainer_scrape(cluster: Cluster, namespace: str) -> str | None:
    """rank 0's /metrics once it reports a step, read from the pod's own IP like Prometheus does."""
    job = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", SFTJOB, namespace) or {}
    if (job.get("status") or {}).get("phase") == "Failed":
        raise AssertionError(f"the SFTJob failed:\n{yaml.safe_dump(job['status'])}")
    pods = cluster.kube.core.list_namespaced_pod(namespace, label_selector=f"kubesft.io/job={SFTJOB}").items
    for pod in pods:
        if pod.status.phase != "Running" or not pod.status.pod_ip:
            continue
        try:
            text = _fetch(f"http://{pod.status.pod_ip}:9090/metrics")
        except OSError:
            return None
        step = re.search(r"^kubesft_train_global_step (\S+)$", text, re.M)
        if step and float(step.group(1)) >= 2:
            return text
    return None


def _helm_install(cluster: Cluster) -> None:
    args = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", NAMESPACE]
    sets = [f"--set={key}={value}" for key, value in VALUES.items()]
    run_helm("install", RELEASE, str(CHART_DIR), "--create-namespace", *sets, *args)


def _operator_install(
    cluster: Cluster, release: str = RELEASE, namespace: str = NAMESPACE
) -> OperatorInstall:
    """The operator as the installed release sets it up: its Deployment's env and ServiceAccount."""
    return OperatorInstall.from_release(cluster, release=release, namespace=namespace)


@pytest.fixture(scope="module")
def chart_run(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRun]:
    work = tmp_path_factory.mktemp("chart-e2e")
    s3 = cluster.start_s3()
    _stage_inputs(s3, work / "inputs", "chart-e2e")
    job_namespace = "chart-e2e-jobs"
    docs = render(MONITORING, release=RELEASE, namespace=NAMESPACE)
    (service_monitor,) = find(docs, "ServiceMonitor")
    (metrics_service,) = [s for s in find(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    (pod_monitor,) = find(docs, "PodMonitor")
    prometheus: LocalPrometheus | None = None
    try:
        _helm_install(cluster)
        cluster.kubectl("create", "namespace", job_namespace)
        s3.credentials_secret(cluster.kube.api, job_namespace)
        install = _operator_install(cluster)
        with contextlib.ExitStack() as operators:
            # A first operator publishes the webhook configuration and stops; the second one, like
            # a restarted pod, finds it and points it at itself.
            first = OperatorProcess(install, work / "operator-first.log")
            operators.callback(first.stop)
            first.start()
            first.stop()
            operator = operators.enter_context(running_operator(install, work / "operator.log"))
            discovery = PodDiscovery(cluster.kube.api, work / "prometheus" / "pods.json").start()
            operators.callback(discovery.stop)
            prometheus = LocalPrometheus(
                work / "prometheus",
                [
                    service_monitor_static_config(
                        service_monitor,
                        metrics_service,
                        f"127.0.0.1:{operator.metrics_port}",
                        SCRAPE_INTERVAL,
                    ),
                    pod_monitor_scrape_config(pod_monitor, discovery.path, SCRAPE_INTERVAL),
                ],
                interval=SCRAPE_INTERVAL,
            )
            started = time.time()
            cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_sftjob(job_namespace, s3, "chart-e2e")))
            trainer_scrape = wait_until(
                lambda: _trainer_scrape(cluster, job_namespace),
                timeout=300,
                describe=lambda: f"the trainer never served a step on /metrics:\n{operator.log()[-3000:]}",
            )
            done = wait_for_phase(
                cluster, job_namespace, SFTJOB, "Succeeded", "Failed", timeout=TRAINING_TIMEOUT
            )
            run = ChartRun(
                install=install,
                prometheus=prometheus,
                job_namespace=job_namespace,
                started=started,
                finished=time.time(),
                trainer_scrape=trainer_scrape,
                final_status=done.get("status") or {},
            )
            assert run.final_status.get("phase") == "Succeeded", yaml.safe_dump(run.final_status)
            cluster.kube.wait_for_deletion("kubesft.io/v1alpha1", "SFTJob", SFTJOB, job_namespace, timeout=60)
            _suspend_while_waiting(cluster, job_namespace, s3, operator)
            # A few more scrapes of the operator after the job is gone.
            time.sleep(3)
            run.operator_scrape = operator.metrics()
            run.settled = time.time()
        # The operator has stopped, so its audit trail is complete. It watches every namespace of
        # the session cluster, so another module's leftovers (an SFTJob in a namespace being
        # deleted, where any create is refused) can reach it; only this run's requests count.
        ours = {None, NAMESPACE, job_namespace}
        run.audit = [
            event
            for event in cluster.audit_events(install.username)
            if (event.get("objectRef") or {}).get("namespace") in ours
        ]
        yield run
    finally:
        if prometheus is not None:
            prometheus.stop()
        run_helm(
            "uninstall",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--kubeconfig",
            str(cluster.kubeconfig),
            check=False,
        )
        cluster.kubectl("delete", "namespace", job_namespace, "--wait=false", check=False)


def test_helm_install_created_the_release(cluster: Cluster, chart_run: ChartRun) -> None:
    status = run_helm("status", RELEASE, "--namespace", NAMESPACE, "--kubeconfig", str(cluster.kubeconfig))
    assert "STATUS: deployed" in status.stdout
    assert "kubectl apply -f -" in status.stdout, "NOTES tell how to apply the first SFTJob"
    fullname = f"{RELEASE}-kubesft"
    for api_version, kind, name, namespace in (
        ("v1", "ServiceAccount", fullname, NAMESPACE),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", fullname, None),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", fullname, None),
        ("v1", "Service", f"{fullname}-metrics", NAMESPACE),
        ("v1", "Service", f"{fullname}-webhook", NAMESPACE),
        ("apps/v1", "Deployment", fullname, NAMESPACE),
        ("kopf.dev/v1", "ClusterKopfPeering", "chart-e2e", None),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "sftjobs.kubesft.io", None),
    ):
        assert cluster.kube.get(api_version, kind, name, namespace) is not None, f"{kind} {name}"


# --- RBAC ---------------------------------------------------------------------------------

# Verbs the chart grants that this run does not exercise, each with why the operator needs it.
_ADOPT = "adopting its own object after a create conflict (restarted between creating and recording it)"
GRANTED_BUT_NOT_EXERCISED: dict[tuple[str, str, str], str] = {
    ("batch", "jobs", "get"): _ADOPT,
    ("", "configmaps", "patch"): _ADOPT + ", then refreshing the trainer config in it",
    ("batch", "jobs", "delete"): "replacing a failed attempt's Job, and suspending a job queued in Kueue "
    "or on Kubernetes before 1.22; no job of this run fails or is queued",
    ("", "services", "create"): "the headless Service of multi-node jobs; this run trains on one node",
    ("", "services", "get"): _ADOPT + " (multi-node jobs only)",
    ("kueue.x-k8s.io", "workloads", "list"): "reading Kueue's Workload of a queued job; no job of "
    "this run is queued (tests/e2e/test_kueue.py runs queued jobs under this chart's RBAC)",
}


def _granted(cluster: Cluster) -> set[tuple[str, str, str]]:
    role = cluster.kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", f"{RELEASE}-kubesft")
    assert role is not None
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _used(audit: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    used = set()
    for event in audit:
        ref = event.get("objectRef")
        if not ref:
            continue  # discovery (/api, /apis, /version): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return used


def test_operator_succeeded_under_only_the_chart_rbac(chart_run: ChartRun) -> None:
    assert chart_run.final_status["phase"] == "Succeeded"
    assert chart_run.audit, "the audit log holds no request of the operator's ServiceAccount"
    forbidden = sorted(
        {
            f"{e['verb']} {e['requestURI']}"
            for e in chart_run.audit
            if (e.get("responseStatus") or {}).get("code") == 403
        }
    )
    assert not forbidden, f"the chart's RBAC refused the operator: {forbidden}"


def test_chart_grants_nothing_the_operator_does_not_use(cluster: Cluster, chart_run: ChartRun) -> None:
    granted, used = _granted(cluster), _used(chart_run.audit)
    assert used <= granted, f"used without a grant: {sorted(used - granted)}"
    unused = granted - used
    stale = set(GRANTED_BUT_NOT_EXERCISED) - unused
    assert not stale, f"listed as not exercised, but used or no longer granted: {sorted(stale)}"
    unexplained = sorted(unused - set(GRANTED_BUT_NOT_EXERCISED))
    assert not unexplained, f"granted but never used, with no reason given: {unexplained}"


# --- metrics ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["operator", "trainer"])
def test_promtool_accepts_the_metrics(chart_run: ChartRun, source: str) -> None:
    text = chart_run.operator_scrape if source == "operator" else chart_run.trainer_scrape
    assert "kubesft_" in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make control-plane`"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _variables(run: ChartRun) -> dict[str, str]:
    return {
        "namespace": run.job_namespace,
        "sftjob": SFTJOB,
        "job": f"{RELEASE}-kubesft-metrics",
        **builtin_variables(RATE_INTERVAL, f"{math.ceil(run.finished - run.started) + 10}s"),
    }


def _finite(series: list[dict[str, Any]]) -> int:
    return sum(1 for s in series for _, value in s["values"] if math.isfinite(float(value)))


# The trainer on this machine runs on CPU; the metric is only exported where CUDA is.
CUDA_ONLY_PANELS = {"GPU memory allocated"}
# The baseline (loss before the first step) is measured only for jobs with dataset.evalSets,
# which this run has none of (tests/unit/trainer/test_eval_set_reporting.py covers the metric).
EVAL_SETS_ONLY_QUERIES = {("Loss", "C")}


def test_every_dashboard_query_evaluates_and_training_panels_show_the_job(chart_run: ChartRun) -> None:
    prometheus, variables = chart_run.prometheus, _variables(chart_run)
    end = chart_run.finished + 3
    empty = []
    for stem, board in dashboards().items():
        for query in panel_queries(board):
            expr = substitute(query.expr, variables)
            series = prometheus.query_range(expr, chart_run.started, end, 1)
            if (
                stem == "training"
                and query.panel not in CUDA_ONLY_PANELS
                and (query.panel, query.ref_id) not in EVAL_SETS_ONLY_QUERIES
                and _finite(series) == 0
            ):
                empty.append(f"{query.panel} [{query.ref_id}]: {expr}")
    assert not empty, "training panels without data for the job:\n" + "\n".join(empty)


def test_dashboard_variables_list_the_job(chart_run: ChartRun) -> None:
    prometheus, variables = chart_run.prometheus, _variables(chart_run)
    found = {}
    for board in dashboards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert match, variable["definition"]
            found[variable["name"]] = prometheus.label_values(
                match.group(2), substitute(match.group(1), variables)
            )
    assert chart_run.job_namespace in found["namespace"]
    assert SFTJOB in found["sftjob"]
    assert variables["job"] in found["job"]


def test_alert_expressions_evaluate_and_stay_quiet_for_a_healthy_run(chart_run: ChartRun) -> None:
    rules = [
        r for g in rule_groups(render(MONITORING, release=RELEASE, namespace=NAMESPACE)) for r in g["rules"]
    ]
    at = chart_run.finished
    firing = {}
    for rule in rules:
        result = chart_run.prometheus.query(rule["expr"], at=at)
        if result:
            firing[rule["alert"]] = result
    # KubesftOperatorDown staying quiet also shows its job and namespace match the real series.
    assert not firing, f"alerts firing for a healthy run: {firing}"


def _png_path(name: str, tmp_path: pathlib.Path) -> pathlib.Path:
    return (pathlib.Path(PNG_DIR) if PNG_DIR else tmp_path) / f"{name}-dashboard.png"


def test_training_panels_render_to_png(chart_run: ChartRun, tmp_path: pathlib.Path) -> None:
    out = _png_path("training", tmp_path)
    points = render_training_png(
        chart_run.prometheus.query_range,
        namespace=chart_run.job_namespace,
        sftjob=SFTJOB,
        start=chart_run.started,
        end=chart_run.finished + 3,
        out=out,
        rate_interval=RATE_INTERVAL,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = [title for title, count in points.items() if count == 0 and title not in CUDA_ONLY_PANELS]
    assert not missing, f"panels drawn without data: {missing}"


# Panels of the operator dashboard that one successful job leaves empty: nothing failed, and the
# job was not queued (tests/e2e/test_kueue.py checks kubesft_queue_wait_seconds).
QUIET_OPERATOR_PANELS = {"Failed by reason", "Queue wait (Kueue)"}


def test_operator_panels_render_to_png(chart_run: ChartRun, tmp_path: pathlib.Path) -> None:
    out = _png_path("operator", tmp_path)
    job = _variables(chart_run)["job"]
    points = render_dashboard_png(
        chart_run.prometheus.query_range,
        "operator",
        {"job": job},
        start=chart_run.started,
        end=chart_run.settled,
        out=out,
        rate_interval=RATE_INTERVAL,
        subject=f"job={job}",
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = [title for title, count in points.items() if count == 0 and title not in QUIET_OPERATOR_PANELS]
    assert not missing, f"panels drawn without data: {missing}"


def test_namespaced_release_runs_under_its_roles(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    """watchNamespaces: Roles in the watched namespace only; the operator handles SFTJobs there."""
    release, namespace, watched, unwatched = (
        "chart-ns",
        "kubesft-chart-ns",
        "chart-ns-watched",
        "chart-ns-other",
    )
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace]
    for name in (watched, unwatched):
        cluster.kubectl("create", "namespace", name)
        # The webhooks' namespaceSelector matches this label, which Kubernetes sets itself from 1.21.
        cluster.kubectl("label", "--overwrite", "namespace", name, f"kubernetes.io/metadata.name={name}")
    run_helm(
        "install",
        release,
        str(CHART_DIR),
        "--create-namespace",
        f"--set=watchNamespaces={{{watched}}}",
        "--set=leaderElection.peeringName=chart-ns",
        *kubeconfig,
    )
    try:
        fullname = f"{release}-kubesft"
        assert cluster.kube.get("rbac.authorization.k8s.io/v1", "Role", fullname, watched) is not None
        assert cluster.kube.get("rbac.authorization.k8s.io/v1", "Role", fullname, unwatched) is None
        install = _operator_install(cluster, release, namespace)
        assert install.env["KUBESFT_WATCH_NAMESPACES"] == watched
        spec = {
            "model": {"uri": "s3://kubesft/none/model", "chatTemplate": "chatml"},
            "dataset": {"uri": "s3://kubesft/none/data.jsonl"},
            "output": {"uri": "s3://kubesft/none/output"},
            # The default policy allows no ambient S3 credentials; the Secret need not exist.
            "checkpoints": {"credentialsSecret": {"name": "s3-credentials"}},
            "resources": {"gpusPerNode": 0},
            "runPolicy": {"backoffLimit": 0},
            # Nothing here can be read: the trainer Job is what this test looks for, not validation.
            "validation": {"enabled": False},
        }
        job = sftjob_manifest("namespaced", spec)
        # The watched one carries the finalizer that earlier versions added: the operator removes it.
        marked: dict[str, Any] = yaml.safe_load(yaml.safe_dump(job))
        marked["metadata"]["finalizers"] = ["kubesft.io/finalizer"]
        with running_operator(install, tmp_path / "operator.log") as operator:
            cluster.kubectl("apply", "-n", watched, "-f", "-", input=yaml.safe_dump(marked))
            cluster.kubectl("apply", "-n", unwatched, "-f", "-", input=yaml.safe_dump(job))
            wait_until(
                lambda: cluster.kube.get("batch/v1", "Job", "namespaced-0", watched),
                timeout=60,
                describe=lambda: f"no trainer Job in the watched namespace:\n{operator.log()[-3000:]}",
            )

            def finalizers() -> list[str]:
                sftjob = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "namespaced", watched)
                assert sftjob is not None, "the SFTJob is gone"
                return list(sftjob["metadata"].get("finalizers") or [])

            wait_until(
                lambda: True if not finalizers() else None,
                timeout=60,
                describe=lambda: f"the operator kept the old finalizer: {finalizers()}",
            )
            # The operator has handled the watched job; the other one stays untouched.
            other = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "namespaced", unwatched) or {}
            assert not other.get("status"), other.get("status")
            assert cluster.kube.get("batch/v1", "Job", "namespaced-0", unwatched) is None
            operator.stop()
            # SFTJobs carry no finalizer: with no operator running, deleting a handled one completes.
            cluster.kubectl("delete", "sftjob", "namespaced", "-n", watched, "--timeout=30s")
            assert cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "namespaced", watched) is None
        forbidden = {
            (e["objectRef"]["resource"], e["verb"])
            for e in cluster.audit_events(install.username)
            if (e.get("responseStatus") or {}).get("code") == 403
        }
        # Kopf first tries to list and watch namespaces, and on a refusal uses the namespaces it was
        # given, which is all a namespaced operator needs: the chart does not grant cluster-wide
        # namespace reads just to spare that one probe.
        forbidden -= {("namespaces", "list"), ("namespaces", "watch")}
        assert not forbidden, f"the namespaced RBAC refused the operator: {sorted(forbidden)}"
        assert "Falling back to a list of namespaces which are assumed to exist" in operator.log()
    finally:
        run_helm("uninstall", release, *kubeconfig, check=False)
        for name in (watched, unwatched):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
