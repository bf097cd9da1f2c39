"""The operator's Prometheus metrics, served on ``/metrics`` (port 8080 by default)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kubesft_api.status import SFTJobStatus
from kubesft_api.times import parse_time

PHASES = ("Pending", "Validating", "Running", "Suspended", "Succeeded", "Failed")
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
QUEUE_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# A counter's *_created series doubles every series and no dashboard reads it.
prometheus_client.disable_created_metrics()

CREATED = prometheus_client.Counter("kubesft_sftjobs_created", "SFTJobs the operator has started handling.")
SUCCEEDED = prometheus_client.Counter("kubesft_sftjobs_succeeded", "SFTJobs that finished training.")
FAILED = prometheus_client.Counter(
    "kubesft_sftjobs_failed", "SFTJobs that failed, by the reason of their Failed condition.", ["reason"]
)
RESTARTS = prometheus_client.Counter(
    "kubesft_sftjob_restarts", "Attempts started after a retryable failure (counted against backoffLimit)."
)
PREEMPTIONS = prometheus_client.Counter(
    "kubesft_sftjob_preemptions", "Attempts started after a preemption or eviction (not counted)."
)
DURATION = prometheus_client.Histogram(
    "kubesft_sftjob_duration_seconds",
    "Time from creating an SFTJob to it succeeding or failing.",
    buckets=DURATION_BUCKETS,
)
QUEUE_WAIT = prometheus_client.Histogram(
    "kubesft_queue_wait_seconds",
    "Time from creating a queued Job (or Kueue evicting it) to Kueue admitting it.",
    buckets=QUEUE_WAIT_BUCKETS,
)
RECONCILE_DURATION = prometheus_client.Histogram(
    "kubesft_reconcile_duration_seconds",
    "Time one reconciliation of an SFTJob takes.",
    buckets=RECONCILE_BUCKETS,
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "kubesft_reconcile_errors", "Reconciliations that failed and will be retried."
)


class PhaseCollector(Collector):
    """``kubesft_sftjobs{namespace,phase}``: how many SFTJobs are in each phase right now."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def set(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            if phase is None:
                self._phases.pop((namespace, name), None)
            else:
                self._phases[(namespace, name)] = phase

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kubesft_sftjobs", "SFTJobs by namespace and phase.", labels=["namespace", "phase"]
        )
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for (namespace, _), phase in self._phases.items():
                counts[(namespace, phase)] = counts.get((namespace, phase), 0) + 1
            namespaces = {namespace for namespace, _ in self._phases}
        for namespace in sorted(namespaces):
            for phase in PHASES:
                family.add_metric([namespace, phase], counts.get((namespace, phase), 0))
        yield family


PHASE_COUNTS = PhaseCollector()
prometheus_client.REGISTRY.register(PHASE_COUNTS)


def record_transition(old: SFTJobStatus, new: SFTJobStatus, created_at: datetime | None) -> None:
    """Count what changed between the status before and after a reconciliation this operator wrote."""
    if old.phase is None and new.phase is not None:
        CREATED.inc()
    if new.restarts > old.restarts:
        RESTARTS.inc(new.restarts - old.restarts)
    if new.preemptions > old.preemptions:
        PREEMPTIONS.inc(new.preemptions - old.preemptions)
    if new.phase == old.phase or new.phase not in ("Succeeded", "Failed"):
        return
    if new.phase == "Succeeded":
        SUCCEEDED.inc()
    else:
        failed = next((c for c in new.conditions if c.type == "Failed"), None)
        FAILED.labels(reason=failed.reason if failed else "Unknown").inc()
    finished = parse_time(new.completion_time)
    if created_at is not None and finished is not None:
        DURATION.observe(max(0.0, (finished - created_at).total_seconds()))


def serve(port: int, address: str) -> None:
    """Serve the default registry on a background thread."""
    prometheus_client.start_http_server(port, addr=address)
