"""Quantiles of the scale benchmark: of measured latencies, and of a Prometheus histogram such
as the operator's ``kubesft_reconcile_duration_seconds`` read from its /metrics."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``th percentile: the smallest value at least ``q`` % of all are not above."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def histogram_buckets(metrics_text: str, name: str) -> list[tuple[float, float]]:
    """The cumulative ``(upper bound, count)`` buckets of histogram ``name``, +Inf last."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == name:
            buckets = [
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name == f"{name}_bucket"
            ]
            return sorted(buckets)
    return []


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, float] | None:
    """The ``q`` quantile (0..1) of a cumulative histogram: (interpolated value, upper bound of
    its bucket). Interpolated linearly inside the bucket, as Prometheus's histogram_quantile does;
    in the +Inf bucket: the highest finite bound, and inf. None for an empty histogram."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound, bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share, bound
        lower_bound, lower_count = bound, count
    return lower_bound, lower_bound


def histogram_count_and_sum(metrics_text: str, name: str) -> tuple[int, float]:
    """(count, sum) of histogram ``name``."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == name:
            values = {sample.name: sample.value for sample in family.samples}
            return int(values.get(f"{name}_count", 0)), values.get(f"{name}_sum", 0.0)
    return 0, 0.0
