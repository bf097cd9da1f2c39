"""Apply SFTJobs at once on the local control plane and measure the operator.

The process node runs a stand-in (``stand_in_trainer.py``: serves /progress for 3 s, exits 0)
instead of the trainer, so the figures are the operator's and the control plane's. The operator
runs as in the e2e tests: ``python -m kubesft_operator`` under the Helm chart's RBAC, with the
chart's settings. Modes:

- ``--jobs N`` (default 200): N SFTJobs whose pods run, until every one is Succeeded or Failed;
- ``--jobs N --no-pods``: the node is cordoned, so every pod stays Pending (Unschedulable), as
  in a full cluster; until every SFTJob has a status phase, its Job, and shows Unschedulable;
- ``--compare-floor``: rounds of N SFTJobs (default 200 × 3 rounds), the operator and the floor
  controller (``floor_controller.py``) in turn on one control plane, one of them at a time,
  after an unmeasured warm-up round of the floor; a floor round lasts until every Job ended. The
  round's SFTJobs, children and Events are deleted, and gone, before the next one starts.

Printed: apply -> Job created latency (from the create call returning to the Job appearing on a
watch), CPU seconds per process and per job, the operator's memory (VmRSS before the first
apply, VmHWM peak), its reconcile p99 (from its ``kubesft_reconcile_duration_seconds``
histogram), API requests per job (from the API server's audit log of the operator's
ServiceAccount), and lost jobs (never done, or with other than exactly one Job). Figures go to
``bench/out/operator_scale_<mode>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import write_figures  # noqa: E402
from bench.operator_scale.measure import (  # noqa: E402
    Observer,
    rss_mib,
    wait_for,
)
from bench.operator_scale.quantiles import bucket_quantile, histogram_buckets, histogram_count_and_sum  # noqa: E402
from bench.operator_scale.report import print_compare, print_single  # noqa: E402
from bench.operator_scale.rounds import (  # noqa: E402
    NAMESPACE,
    Done,
    Load,
    audit_requests,
    clear_namespace,
    jobs_ended,
    measure_round,
    running_floor,
    terminal,
    wait_until_watching,
)
from kubesft_operator import names  # noqa: E402
from testing.devcluster.cluster import Cluster, ClusterOptions  # noqa: E402
from testing.devcluster.containers import CommandOverride  # noqa: E402
from testing.devcluster.node_options import NodeOptions  # noqa: E402
from testing.devcluster.operator_install import OperatorInstall, OperatorProcess, running_operator  # noqa: E402

STAND_IN = Path(__file__).with_name("stand_in_trainer.py")
PROFILED_OPERATOR = Path(__file__).with_name("profiled_operator.py")
RECONCILE = "kubesft_reconcile_duration_seconds"
WARM_UP_JOBS = 20


def start_cluster(cordoned: bool) -> tuple[Cluster, OperatorInstall]:
    override = CommandOverride(
        # -S -I: the stand-in needs only the standard library, so skip the venv's site setup.
        command=(sys.executable, "-S", "-I", str(STAND_IN)),
        pod_labels={names.LABEL_MANAGED_BY: names.MANAGED_BY},
    )
    node = NodeOptions(command_overrides=[override], cordoned=cordoned)
    cluster = Cluster.start(ClusterOptions(node=node))
    try:
        # The stand-in trainers touch no storage, so the jobs name no S3 credentials.
        install = OperatorInstall.apply(cluster, values={"policy.allowAmbientCredentials": True})
        cluster.kubectl("create", "namespace", NAMESPACE)
        # A new CRD's storage answers 429 for a moment; no controller should start into that.
        ready = lambda: cluster.kubectl("get", "sftjobs", "-A", check=False).returncode == 0  # noqa: E731
        if not wait_for(ready, time.monotonic() + 60, step=0.5):
            raise TimeoutError("the SFTJob CRD never served")
    except BaseException:
        cluster.stop()
        raise
    return cluster, install


@contextlib.contextmanager
def watching_operator(install: OperatorInstall, log: Path, **profiling: Any) -> Iterator[OperatorProcess]:
    """The operator, once its watches are open."""
    since = len(install.cluster.audit_events(user=install.username))
    with running_operator(install, log, **profiling) as operator:
        wait_until_watching(install.cluster, install.username, ("sftjobs", "jobs", "pods"), since)
        yield operator


def unschedulable_shown(observer: Observer) -> set[str]:
    """SFTJobs with their Job whose status says their pod is Unschedulable."""
    shown = {name for name, reason in observer.waiting_reason.items() if reason == "Unschedulable"}
    return shown & set(observer.jobs_per_sftjob)


def progress(pid: int) -> Any:
    began = time.monotonic()

    def report(observer: Observer) -> None:
        print(
            f"  {time.monotonic() - began:6.0f} s: {len(observer.job_seen)} Jobs"
            f" ({len(observer.job_done)} ended),"
            f" {len(observer.phase_seen)} with a status phase, {len(observer.finished)} terminal,"
            f" {list(observer.waiting_reason.values()).count('Unschedulable')} Unschedulable;"
            f" RSS {rss_mib(pid, 'VmRSS'):.0f} MiB",
            flush=True,
        )

    return report


def controller_round(
    cluster: Cluster, install: OperatorInstall, name: str, pid: int, load: Load, done: Done
) -> dict[str, Any]:
    """One round with the operator or the floor running as ``pid``; its memory and requests too."""
    before = len(cluster.audit_events(user=install.username))
    idle = rss_mib(pid, "VmRSS")
    figures = measure_round(cluster, (name, pid), load, done, progress(pid))
    events = cluster.audit_events(user=install.username)[before:]
    peak = rss_mib(pid)
    return figures | {
        "rssBeforeApplyMiB": round(idle, 1),
        "peakRssMiB": round(peak, 1),
        "rssAtEndMiB": round(rss_mib(pid, "VmRSS"), 1),
        "rssGrowthPer1000JobsMiB": round((peak - idle) * 1000 / load.jobs, 1),
        "apiRequests": len(events),
        "apiRequestsPerJob": round(len(events) / load.jobs, 1),
        "apiRequestsByCall": audit_requests(events),
        "controlPlaneMemoryMiB": {
            p.name: {"peak": round(rss_mib(p.pid), 1), "atEnd": round(rss_mib(p.pid, "VmRSS"), 1)}
            for p in cluster.control_plane.processes
        },
        "machineLoadAverage": [round(x, 1) for x in os.getloadavg()],
    }


def reconcile_figures(operator: OperatorProcess) -> dict[str, Any]:
    text = operator.metrics()
    count, total = histogram_count_and_sum(text, RECONCILE)
    p99 = bucket_quantile(histogram_buckets(text, RECONCILE), 0.99)
    return {
        "reconciles": count,
        "reconcileSecondsMean": round(total / count, 4) if count else None,
        # Interpolated inside its histogram bucket, and that bucket's upper bound.
        "reconcileP99Seconds": (
            {"interpolated": round(p99[0], 3), "bucketUpperBound": p99[1]} if p99 else None
        ),
    }


def operator_round(
    cluster: Cluster, install: OperatorInstall, operator: OperatorProcess, load: Load, done: Done
) -> dict[str, Any]:
    assert operator.process is not None
    figures = controller_round(cluster, install, "operator", operator.process.pid, load, done)
    return figures | reconcile_figures(operator)


def single(load: Load, no_pods: bool, profile: Path | None) -> dict[str, Any]:
    """One operator, ``load.jobs`` SFTJobs."""
    cluster, install = start_cluster(cordoned=no_pods)
    try:
        log = Path(tempfile.mkdtemp(prefix="kubesft-scale-")) / "operator.log"
        profiling: dict[str, Any] = {}
        if profile is not None:
            profiling = {
                "python_args": (str(PROFILED_OPERATOR),),
                "KUBESFT_BENCH_PROFILE_DIR": str(profile),
            }
        with watching_operator(install, log, **profiling) as operator:
            assert operator.process is not None
            if no_pods:
                figures = operator_round(cluster, install, operator, load, unschedulable_shown)
                # Lost: no status phase or no Job. Showing Unschedulable also waits on the Job
                # controller creating each pod, at its own client rate limit.
                figures["notShowingUnschedulable"] = figures["lost"]
                figures["lost"] = figures["withoutStatusOrJob"]
            else:
                figures = operator_round(cluster, install, operator, load, terminal)
            if profile is not None:
                operator.process.send_signal(signal.SIGUSR1)  # memory.txt: live memory now
                time.sleep(5)
            figures["operatorCpuSeconds"] = figures["cpuSecondsOverTheRound"]["operator"]
    finally:
        cluster.stop()
    return figures | {"noPods": no_pods, "machineCpus": os.cpu_count()}


def compare_floor(load: Load, rounds: int) -> dict[str, Any]:
    """The operator and the floor in turn, ``rounds`` times each, on one control plane."""
    cluster, install = start_cluster(cordoned=False)
    logs = Path(tempfile.mkdtemp(prefix="kubesft-scale-"))
    results: dict[str, list[dict[str, Any]]] = {"kubesft": [], "floor": []}
    try:
        # Unmeasured: the control plane's first Jobs and pods are slower than any after them.
        with running_floor(install, logs / "floor-warm-up.log") as floor:
            warm_up = Load(WARM_UP_JOBS, load.timeout)
            controller_round(cluster, install, "floor", floor.pid, warm_up, jobs_ended)
            clear_namespace(cluster)
        for number in range(1, rounds + 1):
            with watching_operator(install, logs / f"operator-{number}.log") as operator:
                figures = operator_round(cluster, install, operator, load, terminal)
                clear_namespace(cluster)
            results["kubesft"].append(figures)
            print(f"round {number} kubesft: {_line(figures, 'operator')}", flush=True)
            with running_floor(install, logs / f"floor-{number}.log") as floor:
                figures = controller_round(cluster, install, "floor", floor.pid, load, jobs_ended)
                clear_namespace(cluster)
            results["floor"].append(figures)
            print(f"round {number} floor:   {_line(figures, 'floor')}", flush=True)
    finally:
        cluster.stop()
    return {"jobs": load.jobs, "rate": load.rate, "rounds": results, "machineCpus": os.cpu_count()}


def _line(figures: dict[str, Any], controller: str) -> str:
    latency, per_job = figures["jobCreatedLatencySeconds"], figures["cpuMillisecondsPerJob"]
    return (
        f"apply -> Job p50 {latency['p50']} s, p99 {latency['p99']} s;"
        f" CPU ms per job: {controller} {per_job[controller]}, kube-apiserver {per_job['kube-apiserver']};"
        f" lost {len(figures['lost'])}, not exactly one Job {len(figures['notExactlyOneJob'])},"
        f" create calls refused {figures['createCallsRefused']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--no-pods", action="store_true", help="cordon the node: every pod stays Pending")
    parser.add_argument("--compare-floor", action="store_true", help="rounds of the operator and the floor")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each with --compare-floor")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a round may take")
    parser.add_argument(
        "--rate", type=float, help="apply this many SFTJobs per second instead of all at once"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the operator under cProfile and tracemalloc and write cpu.txt and memory.txt"
        " here (slower: its figures are not the benchmark's)",
    )
    args = parser.parse_args()
    load = Load(args.jobs, args.timeout, args.rate)
    paced = f"_at_{args.rate:g}_per_second" if args.rate else ""
    if args.compare_floor:
        result = compare_floor(load, args.rounds)
        out = write_figures(f"operator_scale_compare_floor{paced}", result | print_compare(result))
    else:
        result = single(load, args.no_pods, args.profile)
        out = write_figures(f"operator_scale_{args.jobs}{'_no_pods' if args.no_pods else ''}{paced}", result)
        print_single(result)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
