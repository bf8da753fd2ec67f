"""The Monitor's arithmetic (Qt-free): quantiles from histogram buckets, points from scrapes."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from assistant.clients.metrics import History, Scrape, quantile


def test_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    buckets = ((1.0, 10.0), (2.0, 30.0), (math.inf, 30.0))
    assert quantile(0.5, buckets) == pytest.approx(1.25)  # rank 15: a quarter into (1, 2]
    assert quantile(0.1, buckets) == pytest.approx(0.3)  # rank 3 of the first 10
    assert quantile(0.5, ((1.0, 0.0), (math.inf, 0.0))) is None
    # Past the last finite bound: that bound, as histogram_quantile answers.
    assert quantile(0.99, ((1.0, 1.0), (math.inf, 10.0))) == 1.0


def _scrape(at: float, done: int, ttfts: list[float]) -> Scrape:
    registry = CollectorRegistry()
    c = Counter("assistant_requests", "", ["outcome"], registry=registry)
    c.labels("length").inc(done)
    c.labels("rejected").inc(100)  # never counted as done
    h = Histogram(
        "assistant_time_to_first_token_seconds", "", buckets=(0.5, 1, 2), registry=registry
    )
    for t in ttfts:
        h.observe(t)
    Gauge("assistant_tokens_per_second", "", registry=registry).set(42)
    Gauge("assistant_requests_queued", "", registry=registry).set(3)
    return Scrape.parse(generate_latest(registry).decode(), at=at)


def test_history_turns_scrapes_into_points_over_each_interval() -> None:
    history = History(span_s=10)
    assert history.add(_scrape(0.0, 2, [0.2, 0.2])) is None
    point = history.add(_scrape(2.0, 6, [0.2, 0.2, 1.5, 1.5, 1.5, 1.5]))
    assert point is not None
    assert point.requests_per_s == pytest.approx(2.0)
    # Only the four requests of this interval count: all in (1, 2].
    assert 1.0 < point.ttft_p50 <= 2.0  # type: ignore[operator]
    assert point.tokens_per_s == 42 and point.queued == 3
    history.add(_scrape(20.0, 6, [0.2, 0.2, 1.5, 1.5, 1.5, 1.5]))
    assert [p.at for p in history.points] == [20.0]  # older than the span: dropped
    assert history.points[0].ttft_p50 is None  # no first token in that interval
