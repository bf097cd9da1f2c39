"""The operator's Prometheus metrics: transitions counted once, jobs per namespace and phase."""

from __future__ import annotations

import datetime

import prometheus_client

from kubesft_api.status import Condition, SFTJobStatus
from kubesft_operator import metrics


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_transitions_are_counted_once() -> None:
    created = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    before = (
        _sample("kubesft_sftjobs_created_total"),
        _sample("kubesft_sftjob_restarts_total"),
        _sample("kubesft_sftjob_preemptions_total"),
        _sample("kubesft_sftjobs_failed_total", {"reason": "OOMKilled"}),
        _sample("kubesft_sftjob_duration_seconds_count"),
    )
    pending = SFTJobStatus(phase="Pending")
    metrics.record_transition(SFTJobStatus(), pending, created)
    restarted = SFTJobStatus(phase="Pending", restarts=1, preemptions=2)
    metrics.record_transition(pending, restarted, created)
    failed = SFTJobStatus(
        phase="Failed",
        restarts=1,
        preemptions=2,
        completion_time="2030-01-01T01:00:00Z",
        conditions=[Condition(type="Failed", status="True", reason="OOMKilled")],
    )
    metrics.record_transition(restarted, failed, created)
    metrics.record_transition(failed, failed, created)
    after = (
        _sample("kubesft_sftjobs_created_total"),
        _sample("kubesft_sftjob_restarts_total"),
        _sample("kubesft_sftjob_preemptions_total"),
        _sample("kubesft_sftjobs_failed_total", {"reason": "OOMKilled"}),
        _sample("kubesft_sftjob_duration_seconds_count"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2, 1, 1]


def test_phase_gauge_counts_jobs_per_namespace_and_phase() -> None:
    metrics.PHASE_COUNTS.set("ns-gauge", "a", "Running")
    metrics.PHASE_COUNTS.set("ns-gauge", "b", "Running")
    metrics.PHASE_COUNTS.set("ns-gauge", "c", "Failed")
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Running"}) == 2
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Succeeded"}) == 0
    metrics.PHASE_COUNTS.set("ns-gauge", "b", None)
    assert _sample("kubesft_sftjobs", {"namespace": "ns-gauge", "phase": "Running"}) == 1
    text = prometheus_client.generate_latest().decode()
    assert "kubesft_sftjobs_created_created" not in text
