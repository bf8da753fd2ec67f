"""Continuous batching in one llama.cpp context (batch.Scheduler), on tiny generated models."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from assistant.engine.batch import Request, Scheduler
from assistant.engine.llama import Engine
from assistant.errors import RequestRejected
from assistant.hardware.machine import Hardware
from assistant.models import fit
from assistant.models.gguf_info import read_gguf_info
from assistant.records import Completion, GenerationParams
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

GREEDY = GenerationParams(max_tokens=24, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch-models")
    return write_tiny_model(folder / "chatml.gguf", chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def engine(model: Path) -> Iterator[Engine]:
    e = Engine()
    e.load(model, n_ctx=512, n_slots=4)
    yield e
    e.close()


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def run_all(scheduler: Scheduler, requests: list[Request]) -> list[Completion]:
    """Admit what fits, step until every request has ended, admitting the rest as slots free."""
    done: dict[int, Completion] = {}
    waiting = list(enumerate(requests))
    for i, request in waiting:
        request.on_done = lambda c, i=i: done.__setitem__(i, c)
    steps = 0
    while len(done) < len(requests):
        while waiting and scheduler.has_free_slot:
            scheduler.admit(waiting.pop(0)[1])
        scheduler.step()
        steps += 1
        assert steps < 10_000
    return [done[i] for i in range(len(requests))]


def test_load_reports_its_slots(engine: Engine) -> None:
    assert engine.model is not None
    assert engine.model.n_slots == 4 and engine.model.n_ctx == 512
    assert llama_cpp.llama_n_seq_max(engine.context) == 4


def test_parallel_replies_equal_the_same_replies_made_alone(engine: Engine) -> None:
    prompts = ["alpha beta", "gamma delta epsilon", "zeta", "eta theta iota kappa"]
    alone = [engine.generate(ask(p), GREEDY).text for p in prompts]
    together = run_all(engine.scheduler, [Request(ask(p), GREEDY) for p in prompts * 2])
    assert all(c.finish_reason == "length" and c.completion_tokens == 24 for c in together)
    # Eight requests through four slots: every reply is its prompt's, whatever ran beside it.
    assert [c.text for c in together] == alone * 2


def test_a_long_prompt_does_not_hold_back_the_others(model: Path) -> None:
    e = Engine()
    e.load(model, n_ctx=2048, n_slots=2)
    try:
        scheduler = e.scheduler
        long_prompt = "word " * 300  # three batches' worth of prompt (a token a letter)
        first_tokens: list[str] = []
        long = Request(ask(long_prompt), GenerationParams(max_tokens=2, temperature=0))
        short = Request(ask("hi"), GenerationParams(max_tokens=2, temperature=0))
        long.on_text = lambda _t: first_tokens.append("long")
        short.on_text = lambda _t: first_tokens.append("short")
        run_all(scheduler, [long, short])
        # Admitted second, the short prompt shares the first step's batch and answers first.
        assert first_tokens[0] == "short"
    finally:
        e.close()


def test_prefix_reuse_picks_the_slot_holding_the_conversation(engine: Engine) -> None:
    scheduler = engine.scheduler
    history = ask("tell me about lighthouses " * 10)
    first = run_all(scheduler, [Request(history, GREEDY, interactive=True)])[0]
    # Other traffic comes and goes in the other slots.
    run_all(scheduler, [Request(ask(f"other {i} " * 5), GREEDY) for i in range(3)])
    follow_up = [*history, {"role": "assistant", "content": first.text}, *ask("and more?")]
    second = run_all(scheduler, [Request(follow_up, GREEDY, interactive=True)])[0]
    assert second.cached_tokens >= first.prompt_tokens


def test_a_stop_ends_one_sequence_and_not_the_others(engine: Engine) -> None:
    scheduler = engine.scheduler
    stop = threading.Event()
    count = {"n": 0}

    def on_text(_piece: str) -> None:
        count["n"] += 1
        if count["n"] == 3:
            stop.set()

    long = GenerationParams(max_tokens=60, temperature=0, ignore_eos=True)
    stopped = Request(ask("stop me"), long, on_text=on_text, stop=stop)
    others = [Request(ask(f"keep going {i}"), long) for i in range(3)]
    results = run_all(scheduler, [stopped, *others])
    assert results[0].finish_reason == "cancelled" and results[0].completion_tokens < 10
    assert all(c.finish_reason == "length" and c.completion_tokens == 60 for c in results[1:])


def test_a_prompt_longer_than_a_slot_is_rejected_before_anything_runs(engine: Engine) -> None:
    with pytest.raises(RequestRejected, match="context of 512 tokens"):
        engine.scheduler.admit(Request(ask("word " * 200), GREEDY))
    assert engine.scheduler.has_free_slot and not engine.scheduler.active


def test_each_sequence_stops_at_its_own_context(model: Path) -> None:
    e = Engine()
    e.load(model, n_ctx=256, n_slots=2)
    try:
        big = GenerationParams(max_tokens=10_000, temperature=0, ignore_eos=True)
        results = run_all(e.scheduler, [Request(ask("a"), big), Request(ask("b " * 40), big)])
        assert [c.finish_reason for c in results] == ["length", "length"]
        assert all(c.context_tokens == 256 for c in results)
    finally:
        e.close()


def test_plan_slots_from_memory(model: Path) -> None:
    info = read_gguf_info(model)
    per_slot = fit.kv_cache_bytes(info, 4096)
    gib = 2**30

    def machine(ram: int) -> Hardware:
        return Hardware(total_ram=ram, available_ram=ram, gpu_offload=False, backend="CPU")

    # A fifth of free memory after the weights, in whole caches; at least one, at most the cap.
    expected = int((8 * gib - 1000) * fit.SLOT_MEMORY_SHARE // per_slot)
    assert fit.plan_slots(info, 4096, machine(8 * gib), weights_bytes=1000, cap=10**6) == expected
    assert fit.plan_slots(info, 4096, machine(8 * gib), weights_bytes=1000) == min(
        expected, fit.MAX_AUTO_SLOTS
    )
    assert fit.plan_slots(info, 4096, machine(per_slot), weights_bytes=0) == 1


def test_a_full_kv_cache_frees_idle_slots_then_ends_the_newest_request(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """llama_decode returning 1 (no room in the KV cache) is injected: a split cache with a
    per-slot limit never fills on its own, a unified one (or another build) can."""
    scheduler = engine.scheduler
    run_all(scheduler, [Request(ask("leave a cache behind"), GREEDY)])  # an idle slot's cache
    assert any(s.tokens for s in scheduler.slots)
    real_decode = llama_cpp.llama_decode
    refusals = {"left": 1}

    def decode(ctx, batch):  # type: ignore[no-untyped-def]
        if refusals["left"] > 0:
            refusals["left"] -= 1
            return 1
        return real_decode(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    caplog.set_level(logging.INFO, logger="assistant.engine.batch")
    results = run_all(scheduler, [Request(ask(f"after {i}"), GREEDY) for i in range(3)])
    # The idle slot's cache made room; nobody lost anything.
    assert all(c.finish_reason == "length" for c in results)
    assert "dropped the caches of 1 idle slots" in caplog.text

    # Refused whatever is freed: the prompt budget halves down to one token, then the newest
    # request ends with a clear error while the others go on.
    refusals["left"] = 12
    first, second = Request(ask("first"), GREEDY), Request(ask("second"), GREEDY)
    results = run_all(scheduler, [first, second])
    reasons = sorted(c.finish_reason for c in results)
    assert reasons == ["error", "length"], [(c.finish_reason, c.error) for c in results]
    failed = next(c for c in results if c.finish_reason == "error")
    assert failed.error and "no room in the KV cache" in failed.error
