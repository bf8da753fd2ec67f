"""The engine's figures in Prometheus' text format (``GET /metrics``), through prometheus_client.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units, base units only),
so a Grafana dashboard scrapes them as it does any exporter. Counters and histograms are fed by
the inference thread when a request ends; gauges are read when scraped. llama-server's
``/metrics`` has no latency histograms: these have time to first token, time per output token
and request duration, from which p50/p95 over any window follow (``histogram_quantile``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from assistant.records import Completion, FinishReason

CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTCOMES = ("stop", "length", "cancelled", "error", "rejected")

# Time to first token runs from milliseconds (a cached prompt) to minutes (a queue on a CPU).
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)
_DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class TokenRate:
    """Tokens per second over the last few seconds, from counts added as they come."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._window = window_s
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            events = self._events
            if events and now - events[-1][0] < 0.1:  # one entry per 100 ms keeps it small
                events[-1] = (events[-1][0], events[-1][1] + n)
            else:
                events.append((now, n))
                self._prune(now)

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            self._prune(now)
            return sum(n for _, n in self._events) / self._window

    def _prune(self, now: float) -> None:
        events = self._events
        while events and now - events[0][0] > self._window:
            events.popleft()


class Metrics:
    """One registry per engine (tests run several in one process)."""

    def __init__(
        self,
        *,
        running: Callable[[], int],
        queued: Callable[[], int],
        slots_busy: Callable[[], int],
        slots_total: Callable[[], int],
    ):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "assistant_requests",
            "Generation requests, by how they ended (rejected: 429, queue full).",
            ["outcome"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.requests.labels(outcome)  # present from the start, at 0
        self.prompt_tokens = Counter(
            "assistant_prompt_tokens", "Prompt tokens of finished requests.", registry=r
        )
        self.cached_tokens = Counter(
            "assistant_cached_prompt_tokens",
            "Prompt tokens reused from a slot's KV cache instead of evaluated.",
            registry=r,
        )
        self.completion_tokens = Counter(
            "assistant_completion_tokens", "Tokens generated.", registry=r
        )
        self.ttft = Histogram(
            "assistant_time_to_first_token_seconds",
            "From the request's arrival (queue included) to its first token.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "assistant_time_per_output_token_seconds",
            "Mean time between a request's tokens after the first.",
            buckets=_TPOT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "assistant_request_duration_seconds",
            "From the request's arrival to its last token.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.embedded_inputs = Counter(
            "assistant_embedded_inputs", "Texts turned into vectors (/v1/embeddings).", registry=r
        )
        self.embedded_tokens = Counter(
            "assistant_embedded_tokens", "Tokens of the texts embedded.", registry=r
        )
        self.rate = TokenRate()
        gauges = {
            "assistant_requests_running": ("Requests being served in a slot.", running),
            "assistant_requests_queued": ("Requests waiting for a slot.", queued),
            "assistant_slots_busy": ("Slots serving a request.", slots_busy),
            "assistant_slots": ("Requests the loaded model serves at once.", slots_total),
            "assistant_tokens_per_second": (
                "Tokens generated per second, all requests, over the last 5 s.",
                self.rate.rate,
            ),
        }
        for name, (text, read) in gauges.items():
            Gauge(name, text, registry=r).set_function(read)

    def finished(self, completion: Completion, waited_s: float) -> None:
        """A request ended; ``waited_s`` is the time it spent queued before its slot."""
        outcome = (
            completion.finish_reason if completion.finish_reason in OUTCOMES else FinishReason.ERROR
        )
        self.requests.labels(outcome).inc()
        self.prompt_tokens.inc(completion.prompt_tokens)
        self.cached_tokens.inc(completion.cached_tokens)
        self.completion_tokens.inc(completion.completion_tokens)
        if completion.completion_tokens > 0:
            self.ttft.observe(waited_s + completion.ttft_s)
            self.duration.observe(waited_s + completion.duration_s)
        if completion.completion_tokens > 1:
            per_token = (completion.duration_s - completion.ttft_s) / (
                completion.completion_tokens - 1
            )
            self.tpot.observe(max(0.0, per_token))

    def embedded(self, inputs: int, tokens: int) -> None:
        self.embedded_inputs.inc(inputs)
        self.embedded_tokens.inc(tokens)

    def rejected(self) -> None:
        self.requests.labels("rejected").inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
