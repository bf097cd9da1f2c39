"""One round of the scale benchmark: N SFTJobs applied at once to one namespace by 16 client
threads, timed until each has its Job and until each is done, then removed again; and the floor
controller (``floor_controller.py``) as a process beside the cluster."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from bench.operator_scale.measure import CpuLedger, Observer, wait_for
from bench.operator_scale.quantiles import percentile
from kubesft_api.sftjob import GROUP, PLURAL, VERSION
from kubesft_operator import names
from testing.devcluster.cluster import Cluster
from testing.devcluster.operator_install import OperatorInstall

NAMESPACE = "scale"
CLIENT_THREADS = 16
FLOOR = Path(__file__).with_name("floor_controller.py")
CHILDREN = "jobs,configmaps,networkpolicies,pods"
CREATE_ATTEMPTS = 5

Done = Callable[[Observer], set[str]]
"""The SFTJobs of the round that are done, by what the observer saw."""


def terminal(observer: Observer) -> set[str]:
    return set(observer.finished)


def jobs_ended(observer: Observer) -> set[str]:
    return set(observer.job_done)


def with_status_and_job(observer: Observer) -> set[str]:
    return set(observer.phase_seen) & set(observer.jobs_per_sftjob)


def sftjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SFTJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": "s3://bench/models/tiny", "chatTemplate": "chatml"},
            "dataset": {"uri": "s3://bench/data/chat.jsonl"},
            "training": {"maxSteps": 10},
            "output": {"uri": f"s3://bench/out/{name}"},
            "resources": {"gpusPerNode": 0, "cpu": "10m", "memory": "64Mi", "sharedMemory": "16Mi"},
            "runPolicy": {"backoffLimit": 0, "terminationGracePeriodSeconds": 30},
            # The stand-in trainer is no validator: the trainer Job is the one timed.
            "validation": {"enabled": False},
        },
    }


@dataclass
class Applied:
    at: dict[str, float]
    """When each SFTJob's create call returned (monotonic)."""
    called: dict[str, float]
    """When each SFTJob's first create call was made."""
    call_seconds: list[float]
    """How long each successful create call took: the API server and the admission webhooks."""
    refused: list[str]
    """Why create calls were refused and made again (e.g. an admission webhook timing out)."""
    started: float
    seconds: float


def apply_all(api: client.ApiClient, count: int, rate: float | None = None) -> Applied:
    """Create ``count`` SFTJobs from ``CLIENT_THREADS`` threads, at once or ``rate`` per second;
    a create the API server refuses for the moment (5xx, 429) is made again, as a user would."""
    custom = client.CustomObjectsApi(api)
    at: dict[str, float] = {}
    called: dict[str, float] = {}
    calls: list[float] = []
    refused: list[str] = []
    started = time.monotonic()

    def create(index: int) -> None:
        name = f"scale-{index:04d}"
        if rate is not None:
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
        called[name] = time.monotonic()
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            call = time.monotonic()
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, sftjob(name))
            except ApiException as err:
                if err.status == 409 and attempt > 1:
                    break  # an earlier attempt was stored after all
                if attempt == CREATE_ATTEMPTS or not (err.status == 429 or err.status >= 500):
                    raise
                refused.append(f"{err.status} {err.reason}: {str(err.body)[:300]}")
                time.sleep(1.0)
                continue
            calls.append(time.monotonic() - call)
            break
        at[name] = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        list(pool.map(create, range(count)))
    return Applied(at, called, calls, refused, started, time.monotonic() - started)


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


@dataclass(frozen=True)
class Load:
    jobs: int
    timeout: float
    """Seconds a round may take from its first apply."""
    rate: float | None = None
    """SFTJobs applied per second; None: all at once."""


def measure_round(
    cluster: Cluster,
    controller: tuple[str, int],
    load: Load,
    done: Done,
    progress: Callable[[Observer], None] | None = None,
) -> dict[str, Any]:
    """Apply ``load.jobs`` SFTJobs and wait until each has its Job, then until ``done`` counts them
    all; the figures of the round. ``controller``: the name and pid of the operator or the floor."""
    name, pid = controller
    jobs, rate = load.jobs, load.rate
    ledger = CpuLedger({name: pid} | {p.name: p.pid for p in cluster.control_plane.processes})
    observer = Observer(cluster.kube.api, NAMESPACE)
    observer.start()
    ledger.read("start")
    applied = apply_all(cluster.kube.api, jobs, rate)
    deadline = applied.started + load.timeout
    next_report = time.monotonic() + 30

    def every(count: Callable[[], int]) -> Callable[[], bool]:
        def check() -> bool:
            nonlocal next_report
            if progress is not None and time.monotonic() >= next_report:
                next_report += 30
                progress(observer)
            return count() >= jobs

        return check

    wait_for(every(lambda: len(observer.job_seen)), deadline)
    ledger.read("every Job created")
    wait_for(every(lambda: len(done(observer))), deadline, step=0.5)
    done_at = time.monotonic()
    time.sleep(2)  # let trailing requests (last status writes, events) reach the audit log
    ledger.read("end")
    observer.stop()
    jobs_seen = {
        n: observer.job_seen[names.job_name(n, 0)]
        for n in applied.at
        if names.job_name(n, 0) in observer.job_seen
    }
    latencies = [seen - applied.at[n] for n, seen in jobs_seen.items()]
    from_call = [seen - applied.called[n] for n, seen in jobs_seen.items()]
    every_job = max(observer.job_seen.values(), default=applied.started) - applied.started
    window = ledger.between("start", "every Job created")
    whole = ledger.between("start", "end")
    cpus = os.cpu_count() or 1
    return {
        "jobs": jobs,
        "applySeconds": round(applied.seconds, 2),
        "applyRatePerSecond": rate,
        "createCallsRefused": len(applied.refused),
        "createRefusals": applied.refused[:5],
        # The API server's own latency for one write under this load, as this client sees it.
        "createCallSeconds": _quantiles(applied.call_seconds),
        "jobCreatedLatencySeconds": _quantiles(latencies),
        # From the create call being made: with the call itself, admission webhooks included.
        "jobCreatedFromCallSeconds": _quantiles(from_call),
        "everyJobCreatedSeconds": round(every_job, 2),
        "doneSeconds": round(done_at - applied.started, 1),
        "done": len(done(observer)),
        "phases": dict(collections.Counter(phase for _, phase in observer.finished.values())),
        "withStatusPhase": len(observer.phase_seen),
        "waitingReasons": dict(collections.Counter(observer.waiting_reason.values())),
        "machineBusyUntilEveryJob": round(window["machine (all CPUs)"] / max(every_job * cpus, 1e-9), 2),
        # Who used the CPUs from the first apply until the last Job existed, and over the round.
        "cpuSecondsUntilEveryJob": window,
        "cpuSecondsOverTheRound": whole,
        "cpuMillisecondsPerJob": {k: round(1000 * v / jobs, 1) for k, v in whole.items()},
        "lost": sorted(set(applied.at) - done(observer)),
        "withoutStatusOrJob": sorted(set(applied.at) - with_status_and_job(observer)),
        "notExactlyOneJob": sorted(n for n in applied.at if observer.jobs_per_sftjob[n] != 1),
        "watchErrors": observer.errors[:5],
    }


def clear_namespace(cluster: Cluster, timeout: float = 600.0) -> None:
    """Delete the round's SFTJobs (the garbage collector deletes their children) and its Events,
    and wait until no SFTJob and no child is left."""
    cluster.kubectl("-n", NAMESPACE, "delete", "sftjobs", "--all", "--wait=false")
    cluster.kubectl("-n", NAMESPACE, "delete", "events", "--all", "--wait=false")
    own = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"

    def left() -> bool:
        sftjobs = cluster.kubectl("-n", NAMESPACE, "get", "sftjobs", "-o", "name").stdout.strip()
        children = cluster.kubectl("-n", NAMESPACE, "get", CHILDREN, "-l", own, "-o", "name").stdout.strip()
        return not sftjobs and not children

    if not wait_for(left, time.monotonic() + timeout, step=1.0):
        raise TimeoutError(f"namespace {NAMESPACE} still has SFTJobs or children after {timeout:.0f} s")


def wait_until_watching(cluster: Cluster, user: str, resources: tuple[str, ...], since: int) -> None:
    """Wait until ``user`` has watches open on ``resources`` (by the audit log after its first
    ``since`` events): a controller that reports ready may not be watching yet."""

    def watching() -> bool:
        events = cluster.audit_events(user=user)[since:]
        opened = {e.get("objectRef", {}).get("resource") for e in events if e.get("verb") == "watch"}
        return opened >= set(resources)

    if not wait_for(watching, time.monotonic() + 60, step=0.5):
        raise TimeoutError(f"{user} never watched {', '.join(resources)}")


def audit_requests(events: list[dict[str, Any]]) -> dict[str, int]:
    """Requests by verb, resource and response code."""
    return dict(
        collections.Counter(
            f"{e.get('verb')} {e.get('objectRef', {}).get('resource', '')}"
            + (f"/{e['objectRef']['subresource']}" if e.get("objectRef", {}).get("subresource") else "")
            + f" -> {(e.get('responseStatus') or {}).get('code', '?')}"
            for e in events
        ).most_common()
    )


@contextlib.contextmanager
def running_floor(install: OperatorInstall, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The floor controller with the operator's ServiceAccount and settings, until it watches."""
    since = len(install.cluster.audit_events(user=install.username))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESFT_")}
    env |= install.env | {"KUBECONFIG": str(install.kubeconfig), "PYTHONUNBUFFERED": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(FLOOR)], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:

        def watching() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the floor controller exited with {process.returncode}:\n{log.read_text()}"
                )
            return "watching" in log.read_text()

        if not wait_for(watching, time.monotonic() + 60):
            raise TimeoutError(f"the floor controller never listed SFTJobs:\n{log.read_text()}")
        wait_until_watching(install.cluster, install.username, ("sftjobs",), since)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
