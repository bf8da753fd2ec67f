"""A burst of concurrent streaming clients against an OpenAI-compatible server, and its figures.

Every client sends one streaming ``/v1/completions`` request at the same moment and reads it to
the end. Per client: time to first token (from sending), tokens, and throughput over its whole
life (tokens / (end - sent), so waiting in a queue counts against it, which is what fairness is
about). Jain's index over those throughputs is 1.0 when every client got the same share.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx2 as httpx


@dataclass
class ClientResult:
    sent: float
    first: float | None = None
    end: float | None = None
    tokens: int = 0
    error: str = ""

    @property
    def ttft(self) -> float:
        assert self.first is not None
        return self.first - self.sent

    @property
    def throughput(self) -> float:
        return self.tokens / (self.end - self.sent) if self.end else 0.0


@dataclass
class LoadResult:
    clients: int
    wall_s: float
    results: list[ClientResult]

    @property
    def ok(self) -> list[ClientResult]:
        return [r for r in self.results if not r.error and r.first is not None]

    @property
    def errors(self) -> int:
        return len(self.results) - len(self.ok)

    @property
    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.ok) / self.wall_s

    @property
    def requests_per_s(self) -> float:
        return len(self.ok) / self.wall_s

    def ttft(self, q: float) -> float:
        return percentile([r.ttft for r in self.ok], q)

    @property
    def per_client_min(self) -> float:
        return min((r.throughput for r in self.ok), default=0.0)

    @property
    def per_client_median(self) -> float:
        return statistics.median([r.throughput for r in self.ok]) if self.ok else 0.0

    @property
    def jain(self) -> float:
        xs = [r.throughput for r in self.ok]
        squares = sum(x * x for x in xs)
        return sum(xs) ** 2 / (len(xs) * squares) if squares else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _one(client: httpx.AsyncClient, body: dict, expected: int) -> ClientResult:
    result = ClientResult(sent=time.perf_counter())
    try:
        async with client.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                result.error = f"HTTP {r.status_code}"
                await r.aread()
                return result
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    result.error = str(event["error"].get("message", "error"))[:200]
                for choice in event.get("choices") or []:
                    if choice.get("text"):
                        result.first = result.first or time.perf_counter()
                usage = event.get("usage")
                if usage:
                    result.tokens = int(usage.get("completion_tokens", 0))
        result.end = time.perf_counter()
        if not result.error and result.tokens != expected:
            result.error = f"{result.tokens} of {expected} tokens"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    return result


async def _burst(url: str, key: str, body: dict, clients: int, expected: int) -> LoadResult:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(900.0, connect=30.0),
        limits=limits,
        trust_env=False,
    ) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(_one(client, body, expected) for _ in range(clients)))
        wall = time.perf_counter() - started
    return LoadResult(clients, wall, list(results))


def burst(url: str, key: str, body: dict, clients: int) -> LoadResult:
    """``clients`` concurrent streaming requests of ``body`` (with ``max_tokens`` and
    ``ignore_eos``, so every reply is exactly that long)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    return asyncio.run(_burst(url, key, body, clients, int(body["max_tokens"])))
