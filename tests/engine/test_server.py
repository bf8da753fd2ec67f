"""``assistant serve`` with the starter model, spoken to by the real ``openai`` client."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from assistant.clients.supervisor import Supervisor
from tests.conftest import install_model

pytestmark = pytest.mark.starter


class Served:
    def __init__(self, supervisor: Supervisor, model: str, home: Path):
        self.supervisor = supervisor
        self.home = home
        self.model = model
        self.url = supervisor.url
        self.key = supervisor.api_key

    def openai(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=self.key, max_retries=0, timeout=60, **kwargs
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, starter_model_file: Path) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served")
    model = install_model(starter_model_file, home)
    supervisor = Supervisor(
        env={**os.environ, "ASSISTANT_HOME": str(home)}, announce=False, n_ctx=2048
    )
    client = supervisor.start()
    client.load(model.name, n_ctx=2048, n_gpu_layers=0)
    try:
        yield Served(supervisor, model.name, home)
    finally:
        supervisor.stop()


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_non_streaming_reply(served: Served) -> None:
    r = served.openai().chat.completions.create(
        model=served.model, messages=ask("What is the capital of France?"), max_tokens=12,
        temperature=0, seed=1,
    )  # fmt: skip
    assert r.object == "chat.completion"
    assert r.model == served.model
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_reply_with_usage_last(served: Served) -> None:
    stream = served.openai().chat.completions.create(
        model=served.model, messages=ask("Tell me about the sea."), max_tokens=16,
        temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    # "stop" when the base model writes the plain format's next "User:" turn itself.
    assert finishes[-1] in ("length", "stop") and all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert 0 < last.usage.completion_tokens <= 16
    assert last.usage.prompt_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_max_tokens_gives_finish_reason_length(served: Served) -> None:
    r = served.openai().chat.completions.create(
        model=served.model, messages=ask("Count to one hundred."), max_tokens=3,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3


def test_stop_string_ends_the_reply_before_it(served: Served) -> None:
    client = served.openai()
    kwargs = dict(
        model=served.model, messages=ask("Write a story about a dog."), max_tokens=40,
        temperature=0, seed=3, extra_body={"ignore_eos": True, "top_k": 1},
    )  # fmt: skip
    full = client.chat.completions.create(**kwargs).choices[0].message.content or ""
    words = full.split()
    assert len(words) >= 6, full
    stop = " " + words[4]
    expected = full[: full.index(stop)].strip()
    r = client.chat.completions.create(stop=[stop], **kwargs)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"


def test_extensions_are_accepted(served: Served) -> None:
    r = served.openai().chat.completions.create(
        model=served.model, messages=ask("Hi"), max_tokens=4,
        extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.2, "ignore_eos": True},
        seed=7,
    )  # fmt: skip
    assert r.usage is not None and r.usage.completion_tokens == 4


def test_completions_and_models(served: Served) -> None:
    client = served.openai()
    r = client.completions.create(
        model=served.model, prompt="Once upon a time", max_tokens=5,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    ids = [m.id for m in client.models.list()]
    assert served.model in ids


def test_missing_or_wrong_key_is_401(served: Served) -> None:
    bad = openai.OpenAI(base_url=served.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=served.model, messages=ask("Hi"), max_tokens=2)
    r = httpx.get(served.url + "/v1/models", trust_env=False)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    # X-Api-Key works as well as Authorization: Bearer.
    r = httpx.get(served.url + "/v1/models", headers={"X-Api-Key": served.key}, trust_env=False)
    assert r.status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/assistant/load"),
        ("POST", "/v1/assistant/unload"),
        ("POST", "/v1/assistant/cancel"),
        ("GET", "/v1/assistant/status"),
        ("GET", "/metrics"),
        ("GET", "/no/such/endpoint"),
    ],
)
def test_every_endpoint_but_health_needs_the_key(served: Served, method: str, path: str) -> None:
    r = httpx.request(method, served.url + path, json={}, trust_env=False)
    assert r.status_code == 401, (path, r.status_code)


def test_health_needs_no_key(served: Served) -> None:
    r = httpx.get(served.url + "/health", trust_env=False)
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize(
    "body, where",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": "hello"}).encode(), "messages"),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "messages"),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}
            ).encode(),
            "temperature",
        ),  # noqa: E501
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
            "max_tokens",
        ),  # noqa: E501
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "stop": 3}).encode(), "stop"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(),
            "stream",
        ),  # noqa: E501
    ],
)
def test_bad_bodies_are_400(served: Served, body: bytes, where: str | None) -> None:
    r = httpx.post(
        served.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"},
        trust_env=False,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == where


def test_bad_bodies_through_openai_are_400(served: Served) -> None:
    client = served.openai()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=served.model, messages=ask("x"), temperature=5)
    # A prompt longer than the context: refused, not silently cut.
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(
            model=served.model, messages=ask("word " * 3000), max_tokens=2
        )


def test_unknown_model_is_404(served: Served) -> None:
    with pytest.raises(openai.NotFoundError):
        served.openai().chat.completions.create(
            model="no-such-model.gguf", messages=ask("Hi"), max_tokens=2
        )


def test_closing_the_stream_stops_the_reply(served: Served) -> None:
    client = served.openai()
    stream = client.chat.completions.create(
        model=served.model, messages=ask("Write a very long story."), max_tokens=2000,
        stream=True, extra_body={"ignore_eos": True},
    )  # fmt: skip
    got = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            got += 1
            if got == 3:
                break
    stream.close()
    # The engine stopped that reply: the next request is served at once, not after 2000 tokens.
    r = client.chat.completions.create(
        model=served.model, messages=ask("Hi"), max_tokens=2, timeout=20,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert r.usage is not None and r.usage.completion_tokens == 2


def test_listens_on_loopback_only_and_refuses_foreign_hosts(served: Served) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    # Not on another address of this machine: only 127.0.0.1 was bound.
    other = socket.gethostbyname(socket.gethostname())
    if not other.startswith("127."):
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
            pass
    headers = {"Authorization": f"Bearer {served.key}", "Host": "attacker.example"}
    r = httpx.get(served.url + "/v1/models", headers=headers, trust_env=False)
    assert r.status_code == 403
    r = httpx.get(served.url + "/health", headers={"Host": "attacker.example:80"}, trust_env=False)
    assert r.status_code == 403
    ok = httpx.get(served.url + "/health", headers={"Host": f"localhost:{port}"}, trust_env=False)
    assert ok.status_code == 200


def test_no_cors_for_foreign_origins(served: Served) -> None:
    r = httpx.options(
        served.url + "/v1/chat/completions",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        trust_env=False,
    )
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    r = httpx.get(
        served.url + "/v1/models",
        headers={"Authorization": f"Bearer {served.key}", "Origin": "https://evil.example"},
        trust_env=False,
    )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def test_the_engine_uses_every_physical_core(served: Served) -> None:
    from assistant.hardware import machine

    status = httpx.get(
        served.url + "/v1/assistant/status",
        headers={"Authorization": f"Bearer {served.key}"},
        trust_env=False,
    ).json()
    assert status["threads"] == machine.math_cores()


def test_a_thinking_models_reasoning_streams_apart_from_its_answer(
    served: Served, tmp_path: Path
) -> None:
    # Last in this module: it swaps the engine's model for a tiny one whose template opens
    # <think> (as DeepSeek R1's does); that model never closes it, so all it writes is thinking.
    from tests.tinymodel import THINKING_TEMPLATE, write_tiny_model

    tiny = write_tiny_model(tmp_path / "thinker.gguf", chat_template=THINKING_TEMPLATE)
    model = install_model(tiny, served.home)
    stream = served.openai().chat.completions.create(
        model=model.name, messages=ask("Hi"), max_tokens=12, stream=True
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    thinking = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    answer = "".join(d.content or "" for d in deltas)
    assert thinking.strip() and answer == "" and "<think>" not in thinking
    r = served.openai().chat.completions.create(model=model.name, messages=ask("Hi"), max_tokens=8)
    assert r.choices[0].message.content == ""
    assert getattr(r.choices[0].message, "reasoning_content", "")
