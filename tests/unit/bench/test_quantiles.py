"""Quantiles the scale benchmark reports, from a histogram as prometheus_client serves it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.operator_scale.quantiles import (
    bucket_quantile,
    histogram_buckets,
    histogram_count_and_sum,
    percentile,
)

NAME = "kubesft_reconcile_duration_seconds"


def served(values: list[float], buckets: tuple[float, ...] = (0.1, 0.5, 1.0)) -> str:
    registry = CollectorRegistry()
    histogram = Histogram(NAME, "Time one reconciliation takes.", buckets=buckets, registry=registry)
    for value in values:
        histogram.observe(value)
    return generate_latest(registry).decode()


def test_the_quantile_is_interpolated_inside_the_bucket_it_falls_in() -> None:
    text = served([0.05] * 90 + [0.3] * 9 + [0.7])
    assert histogram_buckets(text, NAME) == [(0.1, 90), (0.5, 99), (1.0, 100), (float("inf"), 100)]
    assert bucket_quantile(histogram_buckets(text, NAME), 0.99) == pytest.approx((0.5, 0.5))
    assert bucket_quantile(histogram_buckets(text, NAME), 0.5) == pytest.approx((0.1 * 50 / 90, 0.1))


def test_a_quantile_beyond_the_last_bound_is_that_bound_in_the_unbounded_bucket() -> None:
    text = served([0.05] * 50 + [3.0] * 50)
    assert bucket_quantile(histogram_buckets(text, NAME), 0.99) == (1.0, float("inf"))


def test_an_empty_or_missing_histogram_has_no_quantile() -> None:
    assert bucket_quantile(histogram_buckets(served([]), NAME), 0.99) is None
    assert histogram_buckets(served([0.2]), "kubesft_other_seconds") == []


def test_count_and_sum_come_from_the_same_histogram() -> None:
    count, total = histogram_count_and_sum(served([0.2, 0.3, 0.5]), NAME)
    assert count == 3
    assert total == pytest.approx(1.0)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile(values, 100) == 100.0
    assert percentile([4.0], 99) == 4.0
