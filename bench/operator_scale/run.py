"""Apply 200 SFTJobs at once on the local control plane and measure the operator alone.

The process node runs a stand-in (``stand_in_trainer.py``: serves /progress for 3 s, exits 0)
instead of the trainer, so the figures are the operator's and the control plane's. The operator
runs as in the e2e tests: ``python -m kubesft_operator`` under the Helm chart's RBAC, with the
chart's settings. Printed:

- apply -> Job created latency (p50, p99): from the create call returning to the Job appearing
  on a watch;
- time from the first apply until every SFTJob is Succeeded or Failed;
- the operator's peak RSS (VmHWM);
- API requests per job, from the API server's audit log of the operator's ServiceAccount;
- lost jobs: SFTJobs that never finished, and SFTJobs with other than exactly one Job.

Run: ``python bench/operator_scale/run.py [--jobs 200]``; figures also go to
``bench/out/operator_scale.json``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from kubernetes import client, watch  # noqa: E402

from kubesft_operator import names  # noqa: E402
from testing.devcluster.cluster import Cluster, ClusterOptions  # noqa: E402
from testing.devcluster.containers import CommandOverride  # noqa: E402
from testing.devcluster.node_options import NodeOptions  # noqa: E402
from testing.devcluster.operator_install import OperatorInstall, running_operator  # noqa: E402

NAMESPACE = "scale"
STAND_IN = Path(__file__).with_name("stand_in_trainer.py")
PROFILED_OPERATOR = Path(__file__).with_name("profiled_operator.py")
TERMINAL = ("Succeeded", "Failed")


def sftjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": "s3://bench/models/tiny", "chatTemplate": "chatml"},
            "dataset": {"uri": "s3://bench/data/chat.jsonl"},
            "training": {"maxSteps": 10},
            "output": {"uri": f"s3://bench/out/{name}"},
            "resources": {"gpusPerNode": 0, "cpu": "10m", "memory": "64Mi", "sharedMemory": "16Mi"},
            "runPolicy": {"backoffLimit": 0, "terminationGracePeriodSeconds": 30},
        },
    }


class Observer:
    """Watches Jobs and SFTJobs and notes when each first appears or finishes (monotonic time)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.job_seen: dict[str, float] = {}
        self.jobs_per_sftjob: collections.Counter[str] = collections.Counter()
        self.finished: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._jobs, daemon=True),
            threading.Thread(target=self._sftjobs, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _jobs(self) -> None:
        batch = client.BatchV1Api(self.api)
        while not self._stop.is_set():
            for event in watch.Watch().stream(batch.list_namespaced_job, NAMESPACE, timeout_seconds=5):
                job = event["object"]
                owner = (job.metadata.labels or {}).get(names.LABEL_JOB)
                if event["type"] == "ADDED" and owner and job.metadata.name not in self.job_seen:
                    self.job_seen[job.metadata.name] = time.monotonic()
                    self.jobs_per_sftjob[owner] += 1

    def _sftjobs(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                custom.list_namespaced_custom_object,
                "kubesft.io",
                "v1alpha1",
                NAMESPACE,
                "sftjobs",
                timeout_seconds=5,
            )
            for event in stream:
                body = event["object"]
                phase = (body.get("status") or {}).get("phase")
                name = body["metadata"]["name"]
                if phase in TERMINAL and name not in self.finished:
                    self.finished[name] = (time.monotonic(), phase)


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: peak resident memory so far; VmRSS: resident now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuLedger:
    """CPU seconds of each process on the machine's hot path, read at named moments.

    The process node and this client share this process; its children (the stand-in trainers
    and the node's helper commands that set up each pod's sandbox) count once reaped.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.readings: dict[str, dict[str, float]] = {}

    def read(self, moment: str) -> None:
        usage = os.times()
        reading = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        reading["process node + client"] = usage.user + usage.system
        reading["pods + node helper commands"] = usage.children_user + usage.children_system
        reading["machine (all CPUs)"] = machine_cpu_seconds()
        self.readings[moment] = reading

    def between(self, start: str, end: str) -> dict[str, float]:
        first, last = self.readings[start], self.readings[end]
        return {name: round(last[name] - first[name], 1) for name in first}


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def reconcile_seconds(metrics_text: str) -> tuple[int, float]:
    """(count, total seconds) of the operator's kubesft_reconcile_duration_seconds histogram."""
    values = {
        line.split()[0]: float(line.split()[1])
        for line in metrics_text.splitlines()
        if line.startswith("kubesft_reconcile_duration_seconds_")
    }
    return int(values.get("kubesft_reconcile_duration_seconds_count", 0)), values.get(
        "kubesft_reconcile_duration_seconds_sum", 0.0
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run(jobs: int, timeout: float, out: Path, profile: Path | None = None) -> dict[str, Any]:
    python = sys.executable
    override = CommandOverride(
        # -S -I: the stand-in needs only the standard library, so skip the venv's site setup.
        command=(python, "-S", "-I", str(STAND_IN)),
        pod_labels={names.LABEL_MANAGED_BY: names.MANAGED_BY},
    )
    cluster = Cluster.start(ClusterOptions(node=NodeOptions(command_overrides=[override])))
    try:
        # The stand-in trainers touch no storage, so the jobs name no S3 credentials.
        install = OperatorInstall.apply(cluster, values={"policy.allowAmbientCredentials": True})
        cluster.kubectl("create", "namespace", NAMESPACE)
        log = Path(tempfile.mkdtemp(prefix="kubesft-scale-")) / "operator.log"
        profiling: dict[str, Any] = {}
        if profile is not None:
            profiling = {
                "python_args": (str(PROFILED_OPERATOR),),
                "KUBESFT_BENCH_PROFILE_DIR": str(profile),
            }
        with running_operator(install, log, **profiling) as operator:
            assert operator.process is not None
            requests_before = len(cluster.audit_events(user=install.username))
            idle_rss = rss_mib(operator.process.pid, "VmRSS")
            cpu_before = cpu_seconds(operator.process.pid)
            ledger = CpuLedger(
                {"operator": operator.process.pid}
                | {process.name: process.pid for process in cluster.control_plane.processes}
            )
            ledger.read("start")
            observer = Observer(cluster.kube.api)
            observer.start()
            custom = client.CustomObjectsApi(cluster.kube.api)
            applied: dict[str, float] = {}

            create_seconds: list[float] = []

            def create(name: str) -> None:
                called = time.monotonic()
                custom.create_namespaced_custom_object(
                    "kubesft.io", "v1alpha1", NAMESPACE, "sftjobs", sftjob(name)
                )
                applied[name] = time.monotonic()
                create_seconds.append(applied[name] - called)

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(create, [f"scale-{i:04d}" for i in range(jobs)]))
            applied_seconds = time.monotonic() - started
            deadline = started + timeout
            while len(observer.job_seen) < jobs and time.monotonic() < deadline:
                time.sleep(0.05)
            ledger.read("every Job created")
            while len(observer.finished) < jobs and time.monotonic() < deadline:
                time.sleep(0.5)
            all_done = max((t for t, _ in observer.finished.values()), default=time.monotonic()) - started
            time.sleep(2)  # let trailing requests (last status writes, events) reach the audit log
            observer.stop()
            ledger.read("end")
            rss = rss_mib(operator.process.pid)
            if profile is not None:
                operator.process.send_signal(signal.SIGUSR1)  # memory.txt: live memory now
                time.sleep(5)
            operator_cpu = cpu_seconds(operator.process.pid) - cpu_before
            reconciles, reconcile_total = reconcile_seconds(operator.metrics())
            load = os.getloadavg()
            events = cluster.audit_events(user=install.username)[requests_before:]
    finally:
        cluster.stop()

    latencies = [
        observer.job_seen[names.job_name(name, 0)] - applied[name]
        for name in applied
        if names.job_name(name, 0) in observer.job_seen
    ]
    by_call = collections.Counter(
        f"{e.get('verb')} {e.get('objectRef', {}).get('resource', '')}"
        + (f"/{e['objectRef']['subresource']}" if e.get("objectRef", {}).get("subresource") else "")
        + f" -> {(e.get('responseStatus') or {}).get('code', '?')}"
        for e in events
    )
    phases = collections.Counter(phase for _, phase in observer.finished.values())
    lost = sorted(set(applied) - set(observer.finished))
    wrong_job_count = sorted(name for name in applied if observer.jobs_per_sftjob[name] != 1)
    result = {
        "jobs": jobs,
        "applySeconds": round(applied_seconds, 2),
        # The API server's own latency for one write under this load, as this client sees it; the
        # operator needs two writes (ConfigMap, Job) before a Job exists.
        "createCallSeconds": {
            "p50": round(percentile(create_seconds, 50), 3),
            "p99": round(percentile(create_seconds, 99), 3),
        },
        "jobCreatedLatencySeconds": {
            "p50": round(percentile(latencies, 50), 3) if latencies else None,
            "p99": round(percentile(latencies, 99), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        "everyJobCreatedSeconds": round(max(observer.job_seen.values(), default=started) - started, 2),
        "allTerminalSeconds": round(all_done, 1),
        "phases": dict(phases),
        "operatorPeakRssMiB": round(rss, 1),
        "operatorRssBeforeApplyMiB": round(idle_rss, 1),
        "operatorCpuSeconds": round(operator_cpu, 1),
        "reconciles": reconciles,
        "reconcileSecondsMean": round(reconcile_total / reconciles, 4) if reconciles else None,
        "machineLoadAverage": [round(x, 1) for x in load],
        # Who used the CPUs from the first apply until the last Job existed, and over the run.
        "cpuSecondsUntilEveryJob": ledger.between("start", "every Job created"),
        "cpuSecondsOverTheRun": ledger.between("start", "end"),
        "machineCpus": os.cpu_count(),
        "apiRequests": len(events),
        "apiRequestsPerJob": round(len(events) / jobs, 1),
        "apiRequestsByCall": dict(by_call.most_common()),
        "lost": lost,
        "notExactlyOneJob": wrong_job_count,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for every job to finish"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/operator_scale.json")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the operator under cProfile and tracemalloc and write cpu.txt and memory.txt"
        " here (slower: its figures are not the benchmark's)",
    )
    args = parser.parse_args()
    result = run(args.jobs, args.timeout, args.out, args.profile)
    latency = result["jobCreatedLatencySeconds"]
    print(f"SFTJobs applied:             {result['jobs']} in {result['applySeconds']} s")
    create_call = result["createCallSeconds"]
    print(
        f"one SFTJob create call:      p50 {create_call['p50']} s, p99 {create_call['p99']} s (API server latency)"
    )
    print(
        f"apply -> Job created:        p50 {latency['p50']} s, p99 {latency['p99']} s, max {latency['max']} s"
    )
    print(f"all terminal after:          {result['allTerminalSeconds']} s  {result['phases']}")
    print(
        f"operator peak RSS:           {result['operatorPeakRssMiB']} MiB"
        f" ({result['operatorRssBeforeApplyMiB']} MiB before the first apply)"
    )
    print(
        f"operator CPU:                {result['operatorCpuSeconds']} s over the run;"
        f" {result['reconciles']} reconciles, mean {result['reconcileSecondsMean']} s"
    )
    print(
        f"machine:                     {result['machineCpus']} CPUs, load average {result['machineLoadAverage']}"
    )
    window = result["everyJobCreatedSeconds"]
    busy = result["cpuSecondsUntilEveryJob"]["machine (all CPUs)"] / max(window * result["machineCpus"], 1e-9)
    print(f"every Job created after:     {window} s (the machine's CPUs {busy:.0%} busy until then)")
    print("CPU seconds, first apply -> every Job created | whole run:")
    for name, seconds in result["cpuSecondsUntilEveryJob"].items():
        print(f"    {name:28s} {seconds:7.1f} | {result['cpuSecondsOverTheRun'][name]:7.1f}")
    print(f"API requests by the operator: {result['apiRequests']} ({result['apiRequestsPerJob']} per job)")
    for call, count in result["apiRequestsByCall"].items():
        print(f"    {count:6d}  {call}")
    print(f"lost (never finished):       {len(result['lost'])} {result['lost'][:5]}")
    print(f"not exactly one Job:         {len(result['notExactlyOneJob'])} {result['notExactlyOneJob'][:5]}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
