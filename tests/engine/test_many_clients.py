"""Many clients at once against ``assistant serve`` (continuous batching), with the starter model:
real OpenAI clients, real HTTP, the engine in its own process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistant.clients.supervisor import Supervisor
from tests.conftest import install_model

pytestmark = pytest.mark.starter

API_KEY = "sk-test-local-api"
PROMPT = "Once upon a time, by the sea,"
CHAT = [{"role": "user", "content": "Tell me about the sea."}]


class Engine:
    def __init__(self, supervisor: Supervisor, model: str):
        self.supervisor = supervisor
        self.model = model
        self.url = supervisor.url

    def api(self) -> openai.OpenAI:
        """Another app on this machine, with the Local API key."""
        return openai.OpenAI(base_url=self.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)

    def owner(self) -> openai.OpenAI:
        """The app itself, with the owner's key."""
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=self.supervisor.api_key, max_retries=0, timeout=120
        )

    def status(self) -> dict:
        r = httpx.get(
            self.url + "/v1/assistant/status",
            headers={"Authorization": f"Bearer {API_KEY}"},
            trust_env=False,
        )
        r.raise_for_status()
        return r.json()

    def metrics(self) -> dict[str, float]:
        r = httpx.get(
            self.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, trust_env=False
        )
        r.raise_for_status()
        assert r.headers["content-type"].startswith("text/plain")
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return values

    def wait_for(self, condition, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if condition(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"timed out; last status: {status}")


def start(home: Path, model: Path, *, slots: int, max_queue: int = 0) -> Engine:
    supervisor = Supervisor(
        env={**os.environ, "ASSISTANT_HOME": str(home)},
        announce=False,
        n_ctx=1024,
        slots=slots,
        max_queue=max_queue,
        api_key=API_KEY,
    )
    client = supervisor.start()
    client.load(model.name, n_ctx=1024, n_gpu_layers=0)
    return Engine(supervisor, model.name)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, starter_model_file: Path) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("many")
    return home, install_model(starter_model_file, home)


@pytest.fixture(scope="module")
def eight_slots(home: tuple[Path, Path]) -> Iterator[Engine]:
    engine = start(*home, slots=8)
    try:
        yield engine
    finally:
        engine.supervisor.stop()


def stream_reply(client: openai.OpenAI, model: str, max_tokens: int) -> dict:
    """Stream a raw-text completion (no chat template, so no stop string ends it early)."""
    started = time.monotonic()
    first = None
    text = []
    usage = None
    finish = None
    stream = client.completions.create(
        model=model, prompt=PROMPT, max_tokens=max_tokens, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    )  # fmt: skip
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.text:
                first = first or time.monotonic()
                text.append(choice.text)
            finish = choice.finish_reason or finish
    return {
        "text": "".join(text),
        "usage": usage,
        "finish": finish,
        "first": first,
        "started": started,
    }


def test_32_streaming_clients_all_complete(eight_slots: Engine) -> None:
    before = eight_slots.metrics()
    client = eight_slots.api()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: stream_reply(client, eight_slots.model, 16), range(32)))
    assert all(r["finish"] == "length" for r in results), [r["finish"] for r in results]
    assert all(r["usage"].completion_tokens == 16 and r["text"] for r in results)
    after = eight_slots.metrics()
    # The counters match the requests made.
    done = "assistant_requests_total{outcome=length}"
    assert after[done] - before[done] == 32
    generated = (
        after["assistant_completion_tokens_total"] - before["assistant_completion_tokens_total"]
    )
    assert generated == 32 * 16
    prompt = after["assistant_prompt_tokens_total"] - before["assistant_prompt_tokens_total"]
    assert prompt == sum(r["usage"].prompt_tokens for r in results)
    ttft = "assistant_time_to_first_token_seconds_count"
    assert after[ttft] - before[ttft] == 32
    assert after["assistant_slots"] == 8
    assert after["assistant_requests_running"] == 0 and after["assistant_requests_queued"] == 0
    # Eight at a time: the later ones were queued, and the histogram saw it.
    assert (
        after["assistant_request_duration_seconds_sum"]
        > before["assistant_request_duration_seconds_sum"]
    )


def test_a_client_that_disconnects_frees_its_slot(eight_slots: Engine) -> None:
    before = eight_slots.metrics()["assistant_requests_total{outcome=cancelled}"]
    with httpx.stream(
        "POST",
        eight_slots.url + "/v1/completions",
        json={
            "model": eight_slots.model,
            "prompt": PROMPT,
            "max_tokens": 5000,
            "stream": True,
            "ignore_eos": True,
        },  # fmt: skip
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
        trust_env=False,
    ) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        while '"text": ""' in (line := next(lines)) or '"text"' not in line:
            pass
        assert eight_slots.status()["running"] == 1
    # Closed mid-stream: the slot is free again within a step or two.
    eight_slots.wait_for(lambda s: s["running"] == 0, timeout=10)
    after = eight_slots.metrics()["assistant_requests_total{outcome=cancelled}"]
    assert after == before + 1


def test_a_queued_client_that_disconnects_leaves_the_queue(home: tuple[Path, Path]) -> None:
    engine = start(*home, slots=1)
    try:
        long = threading.Thread(
            target=stream_reply, args=(engine.api(), engine.model, 300), daemon=True
        )
        long.start()
        engine.wait_for(lambda s: s["running"] == 1)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                engine.url + "/v1/chat/completions",
                json={"model": engine.model, "messages": CHAT, "max_tokens": 5},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=1.0,
                trust_env=False,
            )
        # It went away while queued: it leaves the queue long before the first reply ends.
        status = engine.wait_for(lambda s: s["queued"] == 0, timeout=5)
        assert status["running"] == 1
        long.join(120)
    finally:
        engine.supervisor.stop()


def test_a_full_queue_answers_429_with_retry_after(home: tuple[Path, Path]) -> None:
    engine = start(*home, slots=1, max_queue=1)
    try:
        client = engine.api()
        running = threading.Thread(
            target=stream_reply, args=(client, engine.model, 200), daemon=True
        )
        queued = threading.Thread(target=stream_reply, args=(client, engine.model, 4), daemon=True)
        running.start()
        engine.wait_for(lambda s: s["running"] == 1)
        queued.start()
        engine.wait_for(lambda s: s["queued"] == 1)
        r = httpx.post(
            engine.url + "/v1/chat/completions",
            json={"model": engine.model, "messages": CHAT, "max_tokens": 4},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
            trust_env=False,
        )
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert "busy" in r.json()["error"]["message"]
        # The openai client knows what 429 means.
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=engine.model, messages=CHAT, max_tokens=4)
        assert engine.metrics()["assistant_requests_total{outcome=rejected}"] == 2
        # The app is never refused because other apps filled the queue: it goes first.
        mine = engine.owner().completions.create(
            model=engine.model, prompt=PROMPT, max_tokens=2, extra_body={"ignore_eos": True}
        )
        assert mine.usage is not None and mine.usage.completion_tokens == 2
        running.join(120)
        queued.join(120)
    finally:
        engine.supervisor.stop()


def test_the_apps_message_goes_ahead_of_queued_api_requests(home: tuple[Path, Path]) -> None:
    engine = start(*home, slots=4)
    try:
        api = engine.api()
        with ThreadPoolExecutor(17) as pool:
            api_runs = [pool.submit(stream_reply, api, engine.model, 48) for _ in range(16)]
            status = engine.wait_for(lambda s: s["running"] == 4 and s["queued"] == 12)
            assert {r["client"] for r in status["requests"]} != {"this app"}
            app_run = pool.submit(stream_reply, engine.owner(), engine.model, 8).result(120)
            api_results = [f.result(120) for f in api_runs]
        assert app_run["finish"] == "length"
        # Only the four already running when the app's message came answered before it (the
        # API requests admitted with it, in the same step, get their first token in that step).
        ahead = [r for r in api_results if r["first"] < app_run["first"] - 0.05]
        assert len(ahead) == 4, sorted(r["first"] - app_run["first"] for r in api_results)
    finally:
        engine.supervisor.stop()


def test_status_lists_the_requests_in_flight(eight_slots: Engine) -> None:
    seen: list[dict] = []
    runner = threading.Thread(
        target=stream_reply, args=(eight_slots.api(), eight_slots.model, 64), daemon=True
    )
    runner.start()
    status = eight_slots.wait_for(
        lambda s: any(
            r["state"] == "generating" and r["completion_tokens"] > 2 for r in s["requests"]
        )
    )
    seen = status["requests"]
    runner.join(60)
    row = seen[0]
    assert "id" not in row  # other apps share a key: no ids to cancel each other's requests
    assert row["model"] == eight_slots.model
    assert row["client"].startswith("127.0.0.1:") and "OpenAI" in row["client"]
    assert status["slots"] == 8


def test_other_apps_cannot_touch_the_apps_saved_conversations(eight_slots: Engine) -> None:
    r = httpx.post(
        eight_slots.url + "/v1/chat/completions",
        json={
            "model": eight_slots.model,
            "messages": CHAT,
            "max_tokens": 2,
            "assistant": {"kv_state": "conversation-1", "save_state": True},
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
        trust_env=False,
    )
    assert r.status_code == 400 and "app's own requests" in r.json()["error"]["message"]
    cancel = httpx.post(
        eight_slots.url + "/v1/assistant/cancel",
        json={"id": "whatever"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        trust_env=False,
    )
    assert cancel.json() == {"cancelled": False}
