"""What the Monitor shows, from successive scrapes of the engine's ``/metrics``: Qt-free.

Each scrape is a ``Scrape`` (counter, gauge and histogram values at one moment). Two in a row
give one ``Point``: requests/s, time to first token p50/p95 over that interval (from the
histogram's bucket deltas, interpolated as Prometheus' ``histogram_quantile`` does), tokens/s,
queue depth and busy slots. ``History`` keeps the last minutes of points.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

TTFT = "assistant_time_to_first_token_seconds"
HISTORY_S = 300.0  # what the charts span


@dataclass(frozen=True)
class Scrape:
    at: float  # time.monotonic() when it was taken
    requests_done: float  # requests that ended, every outcome but "rejected"
    tokens_per_s: float
    queued: float
    running: float
    slots: float
    ttft_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)

    @classmethod
    def parse(cls, text: str, at: float | None = None) -> Scrape:
        values: dict[str, float] = {}
        done = 0.0
        buckets: list[tuple[float, float]] = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "assistant_requests_total":
                    if s.labels.get("outcome") != "rejected":
                        done += s.value
                elif s.name == TTFT + "_bucket":
                    buckets.append((float(s.labels["le"]), s.value))
                else:
                    values[s.name] = s.value
        buckets.sort()
        return cls(
            at=time.monotonic() if at is None else at,
            requests_done=done,
            tokens_per_s=values.get("assistant_tokens_per_second", 0.0),
            queued=values.get("assistant_requests_queued", 0.0),
            running=values.get("assistant_requests_running", 0.0),
            slots=values.get("assistant_slots", 0.0),
            ttft_buckets=tuple(buckets),
        )


@dataclass(frozen=True)
class Point:
    at: float
    requests_per_s: float
    ttft_p50: float | None  # None: no request got its first token in this interval
    ttft_p95: float | None
    tokens_per_s: float
    queued: float
    running: float
    slots: float


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile of cumulative histogram buckets, as Prometheus' histogram_quantile: linear
    within the bucket it falls in; the +Inf bucket answers with the largest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def point_between(before: Scrape, after: Scrape) -> Point:
    dt = max(after.at - before.at, 1e-6)
    # Counters only grow, unless the engine restarted (then it counts from 0 again).
    restarted = after.requests_done < before.requests_done
    done = after.requests_done - (0.0 if restarted else before.requests_done)
    if restarted or len(before.ttft_buckets) != len(after.ttft_buckets):
        delta = after.ttft_buckets
    else:
        delta = tuple(
            (bound, count - old)
            for (bound, count), (_, old) in zip(
                after.ttft_buckets, before.ttft_buckets, strict=True
            )
        )
    return Point(
        at=after.at,
        requests_per_s=done / dt,
        ttft_p50=quantile(0.5, delta),
        ttft_p95=quantile(0.95, delta),
        tokens_per_s=after.tokens_per_s,
        queued=after.queued,
        running=after.running,
        slots=after.slots,
    )


@dataclass
class History:
    span_s: float = HISTORY_S
    points: deque[Point] = field(default_factory=deque)
    _last: Scrape | None = None

    def add(self, scrape: Scrape) -> Point | None:
        """Take a scrape; the point it makes with the one before (None for the first)."""
        last, self._last = self._last, scrape
        if last is None:
            return None
        point = point_between(last, scrape)
        self.points.append(point)
        while self.points and scrape.at - self.points[0].at > self.span_s:
            self.points.popleft()
        return point
