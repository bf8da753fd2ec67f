"""``POST /v1/embeddings`` of ``assistant serve``: the embedding model beside the chat model,
spoken to by the real ``openai`` client and by plain HTTP with the Local API's key."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import openai
import pytest

from assistant.clients.supervisor import Supervisor
from tests.conftest import install_model

pytestmark = pytest.mark.starter


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, starter_model_file: Path, minilm_model_file: Path
) -> Iterator[tuple[Supervisor, str]]:
    home = tmp_path_factory.mktemp("served")
    model = install_model(starter_model_file, home)
    install_model(minilm_model_file, home, "embedding-models")
    supervisor = Supervisor(
        env={**os.environ, "ASSISTANT_HOME": str(home)}, announce=False, n_ctx=2048
    )
    client = supervisor.start()
    client.load(model.name, n_ctx=2048, n_gpu_layers=0)
    try:
        yield supervisor, model.name
    finally:
        supervisor.stop()


def client(served) -> openai.OpenAI:
    supervisor, _ = served
    return openai.OpenAI(base_url=supervisor.url + "/v1", api_key=supervisor.api_key,
                         max_retries=0, timeout=60)  # fmt: skip


def auth(served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served[0].api_key}"}


def test_one_input_and_many_with_usage(served) -> None:
    one = client(served).embeddings.create(model="all-MiniLM-L6-v2.F16", input="Hello there")
    assert one.object == "list" and len(one.data) == 1
    assert len(one.data[0].embedding) == 384
    assert abs(np.linalg.norm(one.data[0].embedding) - 1) < 1e-4
    assert one.usage.prompt_tokens == one.usage.total_tokens == 4  # [CLS] hello there [SEP]
    texts = [f"Sentence number {i} about {'cats' if i % 2 else 'databases'}." for i in range(50)]
    many = client(served).embeddings.create(model="all-MiniLM-L6-v2.F16.gguf", input=texts)
    assert [d.index for d in many.data] == list(range(50))
    vectors = np.array([d.embedding for d in many.data])
    # Batched or alone, a text gets the same vector.
    alone = client(served).embeddings.create(model="all-MiniLM-L6-v2.F16", input=texts[7])
    assert float(vectors[7] @ np.array(alone.data[0].embedding)) > 0.9999


def test_base64_is_the_same_vector(served) -> None:
    c = client(served)
    floats = c.embeddings.create(model="all-MiniLM-L6-v2.F16", input="same text")
    raw = c.with_raw_response.embeddings.create(
        model="all-MiniLM-L6-v2.F16", input="same text", encoding_format="base64"
    ).http_response.json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)
    # The openai client asks for base64 by default when given none, and decodes it itself.
    default = c.embeddings.create(model="all-MiniLM-L6-v2.F16", input="same text")
    assert np.allclose(default.data[0].embedding, floats.data[0].embedding, atol=1e-6)


def test_the_chat_model_stays_loaded_and_answers(served) -> None:
    supervisor, chat_model = served
    c = client(served)
    c.embeddings.create(model="all-MiniLM-L6-v2.F16", input=["a", "b"])
    status = httpx.get(supervisor.url + "/v1/assistant/status", headers=auth(served)).json()
    assert status["loaded"]["path"].endswith(chat_model)
    reply = c.chat.completions.create(
        model=chat_model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    metrics = httpx.get(supervisor.url + "/metrics", headers=auth(served)).text
    assert "assistant_embedded_inputs_total" in metrics


def test_dimensions_cut_and_renormalize(served) -> None:
    r = client(served).embeddings.create(model="all-MiniLM-L6-v2.F16", input="x", dimensions=64)
    assert len(r.data[0].embedding) == 64
    assert abs(np.linalg.norm(r.data[0].embedding) - 1) < 1e-4


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"input": []}, 400, "'input'"),
        ({"input": [1, "a"]}, 400, "'input'"),
        ({"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "a", "model": "text-embedding-3-small"}, 404, "installed: all-MiniLM"),
        ({"input": "word " * 600}, 400, "at most 512"),
        ({"input": "a", "dimensions": 1000}, 400, "between 1 and 384"),
    ],
)
def test_bad_requests_say_what_is_wrong(served, body, status, says) -> None:
    supervisor, _ = served
    r = httpx.post(supervisor.url + "/v1/embeddings", json=body, headers=auth(served), timeout=30)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]


def test_needs_a_key(served) -> None:
    supervisor, _ = served
    r = httpx.post(supervisor.url + "/v1/embeddings", json={"input": "a"}, timeout=30)
    assert r.status_code == 401


def test_indexing_waits_for_the_persons_reply_and_questions_do_not(served) -> None:
    import threading
    import time

    supervisor, chat_model = served
    done: dict[str, float] = {}
    first_token = threading.Event()

    def reply() -> None:
        stream = client(served).chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "Tell me a long story."}],
            max_tokens=160, stream=True, extra_body={"ignore_eos": True},
        )  # fmt: skip
        for _ in stream:
            first_token.set()
        done["reply"] = time.monotonic()

    def embed(label: str, priority: str | None) -> None:
        body = {"input": ["a passage"] * 4, "model": "all-MiniLM-L6-v2.F16"}
        if priority:
            body["priority"] = priority
        r = httpx.post(supervisor.url + "/v1/embeddings", json=body, headers=auth(served),
                       timeout=120)  # fmt: skip
        assert r.status_code == 200
        done[label] = time.monotonic()

    writer = threading.Thread(target=reply)
    writer.start()
    assert first_token.wait(60)
    jobs = [threading.Thread(target=embed, args=a) for a in
            (("indexing", "background"), ("question", None))]  # fmt: skip
    for job in jobs:
        job.start()
    for t in (writer, *jobs):
        t.join(120)
    # The app's reply (its key: the person at the keyboard) goes first; the app's own indexing
    # ("background") waits for it, and a question being asked does not.
    assert done["question"] < done["reply"] <= done["indexing"]
