"""Remote engines, core: the list in Settings, and the OpenAI client against real servers.

The server is llama-cpp-python's own (``python -m llama_cpp.server``) serving the starter model
on loopback, reached directly or through ``FaultProxy``, which breaks it in the ways networks
and servers break.
"""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant import endpoints
from assistant.chat import turn
from assistant.clients import remote
from assistant.clients.openai_client import OpenAIClient
from assistant.conversations.export import ExportFormat
from assistant.conversations.export import conversation_text as as_text
from assistant.conversations.storage import Store
from assistant.endpoints import RemoteEngine, ServerKind
from assistant.errors import AssistantError, EngineBusy, EngineUnavailable, GenerationError
from assistant.records import GenerationParams
from assistant.settings import Settings
from tests.remote_servers import FaultProxy, fault_proxy, free_port, self_signed_certificate

pytestmark = pytest.mark.starter

HELLO = [
    {"role": "system", "content": "You are a helpful, concise assistant."},
    {"role": "user", "content": "Hello! Tell me about the sea."},
]
PARAMS = GenerationParams(max_tokens=24, temperature=0.0, seed=1)


def _root(url: str) -> str:
    return url.removesuffix("/v1")


def _client(url: str, name: str = "gpu-box", **kw) -> OpenAIClient:
    return OpenAIClient.for_engine(RemoteEngine(name, url, **kw))


def stop_after(pieces: int) -> tuple[threading.Event, list[float], Callable[[str], None]]:
    """A Stop pressed once ``pieces`` pieces have arrived: the event, their arrival times,
    and the on_text callback that presses it."""
    stop = threading.Event()
    seen: list[float] = []

    def on_text(_piece: str) -> None:
        seen.append(time.monotonic())
        if len(seen) == pieces:
            stop.set()

    return stop, seen, on_text


# -- the list of engines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://gpu-box:8080", "http://gpu-box:8080/v1"),
        ("http://gpu-box:8080/", "http://gpu-box:8080/v1"),
        ("https://Box.lan/v1/", "https://Box.lan/v1"),
        ("http://box:11434/v1/chat/completions", "http://box:11434/v1"),
        ("HTTP://box/openai/v1", "http://box/openai/v1"),
    ],
)
def test_urls_are_written_one_way(given: str, expected: str) -> None:
    assert endpoints.normalise_url(given) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("gpu-box:8080", "http:// or https://"),
        ("ftp://box/v1", "http:// or https://"),
        ("http://user:secret@box/v1", "not inside the URL"),
        ("http://box:99999/v1", "no valid port"),
        ("http://a..b:8080", "not a valid host name"),
    ],
)
def test_bad_urls_get_a_clear_message(url: str, says: str) -> None:
    with pytest.raises(AssistantError, match=says):
        endpoints.normalise_url(url)


def test_a_key_pasted_into_the_url_is_never_repeated() -> None:
    for url in ("user:sk-secret-1@gpu-box:8080", "https://me:sk-secret-1@gpu-box/v1"):
        with pytest.raises(AssistantError) as caught:
            endpoints.normalise_url(url)
        assert "sk-secret" not in str(caught.value) and "API key" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "needs a name"), ("a/b", "'/'"), ("local", "this machine"), ("x" * 41, "at most")],
)
def test_bad_names_get_a_clear_message(name: str, says: str) -> None:
    with pytest.raises(AssistantError, match=says):
        endpoints.check_name(name)


def test_engines_are_saved_owner_only_and_their_key_is_never_logged(
    assistant_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings()
    engine = remote.add_engine(settings, "gpu-box", "https://gpu-box:8000", "sk-secret-123")
    with pytest.raises(AssistantError, match="already an engine named"):
        remote.add_engine(settings, "GPU-box", "http://other")
    settings.save()
    logging.getLogger("test").info("engine %r", engine)
    path = assistant_home / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Settings.load()
    assert again.engines == [engine] and again.engines[0].api_key == "sk-secret-123"
    assert "sk-secret" not in repr(engine) and "sk-secret" not in caplog.text
    remote.remove_engine(again, "gpu-box")
    assert again.engines == []
    with pytest.raises(AssistantError, match="no engine named"):
        remote.remove_engine(again, "gpu-box")


def test_a_damaged_engine_entry_is_skipped_not_fatal(assistant_home: Path) -> None:
    (assistant_home / "settings.json").write_text(
        '{"engines": [{"name": "ok", "url": "http://ok:1"}, {"name": "bad", "url": "nope"}, 3]}'
    )
    assert [e.name for e in Settings.load().engines] == ["ok"]


def test_local_only_refuses_every_remote_engine() -> None:
    settings = Settings()
    remote.add_engine(settings, "gpu-box", "http://gpu-box:8080")
    assert remote.find_engine(settings, "gpu-box").name == "gpu-box"
    settings.local_only = True
    assert remote.visible_engines(settings) == []
    with pytest.raises(AssistantError, match="Local only"):
        remote.find_engine(settings, "gpu-box")


def test_extensions_go_only_to_servers_known_to_take_them() -> None:
    params = GenerationParams(top_k=20, min_p=0.1, repeat_penalty=1.2, seed=3)
    standard = {"max_tokens", "temperature", "top_p", "seed"}
    assert set(remote.sampling_fields(ServerKind.OPENAI, params)) == standard
    assert set(remote.sampling_fields(ServerKind.OLLAMA, params)) == standard
    assert remote.sampling_fields(ServerKind.VLLM, params)["repetition_penalty"] == 1.2
    assert remote.sampling_fields(ServerKind.LLAMA_CPP, params)["repeat_penalty"] == 1.2
    assert remote.sampling_fields(ServerKind.ASSISTANT, params)["assistant"] == {"truncate": True}
    assert remote.detect_kind([{"id": "m", "owned_by": "llamacpp"}]) is ServerKind.LLAMA_CPP
    assert remote.detect_kind([{"id": "m", "owned_by": "vllm"}]) is ServerKind.VLLM
    assert remote.detect_kind([{"id": "q:7b", "owned_by": "library"}]) is ServerKind.OLLAMA
    assert remote.detect_kind([]) is ServerKind.OPENAI


# -- llama-cpp-python's server, for real -------------------------------------------------------


def test_models_are_listed_and_the_server_recognised(llama_cpp_python_server) -> None:
    with _client(llama_cpp_python_server.url, "lcp") as client:
        entries = client.model_entries()
    assert [m["id"] for m in entries] == ["smollm2-135m"]
    assert remote.detect_kind(entries) is ServerKind.LLAMA_CPP_PYTHON


def test_a_streamed_reply_is_stored_with_its_engine_and_model(
    llama_cpp_python_server, assistant_home: Path
) -> None:
    choice = turn.ModelChoice("smollm2-135m", engine="lcp")
    pieces: list[str] = []
    with Store() as store:
        conversation, _ = turn.begin_turn(store, None, HELLO[1]["content"], model=choice)
        reply = turn.Reply(store, conversation.id, choice)
        with _client(llama_cpp_python_server.url, "lcp", kind=ServerKind.LLAMA_CPP_PYTHON) as c:
            completion = c.chat(
                store.chat_history(conversation.id, HELLO[0]["content"]), PARAMS,
                model="smollm2-135m",
                on_text=pieces.append,
            )  # fmt: skip
        message = reply.finish(completion)
    assert len(pieces) > 1 and completion.text == "".join(pieces)
    # This server sends no usage chunk: the tokens are the chunks, counted. (A first chunk of
    # whitespace is handed on with the next one: a <think> may have followed it.)
    assert completion.finish_reason in ("stop", "length")
    assert len(pieces) <= completion.completion_tokens <= len(pieces) + 1
    with Store() as store:
        stored = store.conversation(conversation.id)
        assert (stored.engine, stored.model) == ("lcp", "smollm2-135m")
        assert message is not None and store.message(message.id).writer == "lcp / smollm2-135m"
        exported = json.loads(as_text(store, conversation.id, ExportFormat.JSON))
        assert exported["messages"][1]["engine"] == "lcp"
        assert "lcp / smollm2-135m" in as_text(store, conversation.id, ExportFormat.MARKDOWN)


def test_stop_ends_the_reply_within_a_token(proxy: FaultProxy) -> None:
    proxy.always("slow:0.2")  # a token every 200 ms, as from a busy GPU box
    stop, seen, on_text = stop_after(2)
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_text=on_text, stop=stop)
        stopped_at = time.monotonic()
    assert completion.finish_reason == "cancelled"
    assert len(seen) <= 3  # the token in flight at most
    assert stopped_at - seen[1] < 0.2


def test_stop_works_while_the_server_has_not_answered_yet(proxy: FaultProxy) -> None:
    proxy.fail_next("delay:30")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", stop=stop)
    assert completion.finish_reason == "cancelled" and time.monotonic() - started < 2


def test_a_server_without_include_usage_gets_its_chunks_counted(proxy: FaultProxy) -> None:
    proxy.fail_next("no_usage")
    pieces: list[str] = []
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_text=pieces.append)
    assert "stream_options" not in proxy.chat_requests()[-1].body
    assert len(pieces) <= completion.completion_tokens <= len(pieces) + 1 and pieces


def test_reasoning_content_is_kept_apart_from_the_answer(proxy: FaultProxy) -> None:
    proxy.fail_next("reasoning")
    thoughts: list[str] = []
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_reasoning=thoughts.append)
    assert completion.reasoning == "Let me think. The user greets me." == "".join(thoughts)
    assert "think" not in completion.text


def test_think_tags_in_the_content_are_kept_apart_too(proxy: FaultProxy) -> None:
    proxy.fail_next("think_tags")
    thoughts: list[str] = []
    pieces: list[str] = []
    with _client(proxy.url) as client:
        completion = client.chat(
            HELLO, PARAMS, model="smollm2-135m", on_text=pieces.append, on_reasoning=thoughts.append
        )
    assert completion.reasoning == "Let me think. The user greets me."
    assert "".join(thoughts).strip() == completion.reasoning
    assert completion.text == "".join(pieces) and completion.text
    assert "think" not in completion.text and not completion.text[0].isspace()
    assert completion.reasoning_s >= 0


def test_only_standard_fields_reach_an_unknown_server(proxy: FaultProxy) -> None:
    with _client(proxy.url) as client:
        client.chat(HELLO, PARAMS, model="smollm2-135m")
    body = proxy.chat_requests()[-1].body
    assert "top_k" not in body and "repeat_penalty" not in body and "assistant" not in body
    assert body["max_tokens"] == 24 and body["seed"] == 1


def test_no_key_means_no_authorization_header(proxy: FaultProxy) -> None:
    with _client(proxy.url) as client:
        client.models()
    assert "Authorization" not in proxy.requests[-1].headers
    with _client(proxy.url, api_key="sk-x") as client:
        client.models()
    assert proxy.requests[-1].headers["Authorization"] == "Bearer sk-x"


# -- faults: one clear sentence each, the partial reply kept -----------------------------------


def test_an_unreachable_host_says_so() -> None:
    with _client(f"http://127.0.0.1:{free_port()}/v1") as client:
        with pytest.raises(EngineUnavailable, match="Can't reach gpu-box .* refused"):
            client.chat(HELLO, PARAMS, model="m")


def test_a_connection_closed_without_an_answer_says_so(proxy: FaultProxy) -> None:
    proxy.fail_next("refuse")
    with _client(proxy.url) as client:
        with pytest.raises(
            EngineUnavailable, match="gpu-box at .* closed the connection without answering"
        ):
            client.chat(HELLO, PARAMS, model="smollm2-135m")


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, AssistantError, "gpu-box refused the API key \\(HTTP 401: Invalid API key\\)"),
        (404, GenerationError, "404 Not Found \\(The model does not exist\\)"),
    ],
)
def test_refusals_say_what_to_fix(proxy: FaultProxy, status: int, error: type, says: str) -> None:
    proxy.fail_next(f"status:{status}")
    with _client(proxy.url) as client:
        with pytest.raises(error, match=says):
            client.chat(HELLO, PARAMS, model="smollm2-135m")
    assert len(proxy.chat_requests()) == 1  # not retried


def test_a_redirect_says_where_the_api_went(proxy: FaultProxy) -> None:
    proxy.fail_next("status:307")
    with _client(proxy.url) as client:
        with pytest.raises(GenerationError, match="redirects its API to https://gpu-box.example"):
            client.chat(HELLO, PARAMS, model="smollm2-135m")


def test_429_and_500_are_retried_honouring_retry_after(proxy: FaultProxy) -> None:
    proxy.fail_next("status:429", "status:500")
    retries: list[str] = []
    started = time.monotonic()
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_retry=retries.append)
    assert completion.finish_reason in ("stop", "length") and completion.text
    assert len(proxy.chat_requests()) == 3
    assert "busy (HTTP 429" in retries[0] and "failed (HTTP 500" in retries[1]
    assert time.monotonic() - started >= 1.0  # the Retry-After: 1 of the 429


def test_429_that_persists_ends_with_one_sentence(proxy: FaultProxy) -> None:
    proxy.always("status:429")
    with _client(proxy.url) as client:
        with pytest.raises(EngineBusy, match="gpu-box is busy \\(HTTP 429: Rate limit reached\\)"):
            client.chat(HELLO, PARAMS, model="smollm2-135m")
    assert len(proxy.chat_requests()) == 3


def test_a_stream_cut_midway_keeps_the_text_so_far(proxy: FaultProxy) -> None:
    proxy.fail_next("cut:3")
    pieces: list[str] = []
    with _client(proxy.url) as client:
        with pytest.raises(EngineUnavailable, match="gpu-box") as caught:
            client.chat(HELLO, PARAMS, model="smollm2-135m", on_text=pieces.append)
    assert pieces and caught.value.partial_text == "".join(pieces)


def test_an_error_chunk_midway_ends_the_reply_with_its_message(proxy: FaultProxy) -> None:
    proxy.fail_next("error_chunk:3")
    pieces: list[str] = []
    with _client(proxy.url) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_text=pieces.append)
    assert completion.finish_reason == "error"
    assert completion.error == "gpu-box stopped the reply with an error: out of memory"
    assert pieces and completion.text == "".join(pieces)


def test_tls_is_verified_and_a_ca_bundle_can_be_named(
    llama_cpp_python_server, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with fault_proxy(_root(llama_cpp_python_server.url), tls=(cert, key)) as tls_proxy:
        assert tls_proxy.url.startswith("https://")
        with _client(tls_proxy.url) as client:
            with pytest.raises(EngineUnavailable, match="TLS.*certificate.*CA bundle"):
                client.models()
        with _client(tls_proxy.url, ca_bundle=str(cert)) as client:
            assert client.models() == ["smollm2-135m"]


# -- another Assistant's `assistant serve`, as a remote engine ---------------------------------


@pytest.fixture(scope="module")
def other_assistant(starter_model_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """`assistant serve` of another profile (another machine, as far as it knows), with a key."""
    import os
    import subprocess
    import sys

    from tests.conftest import install_model
    from tests.remote_servers import wait_http

    home = tmp_path_factory.mktemp("other-machine")
    install_model(starter_model_file, home)
    port = free_port()
    env = dict(os.environ, ASSISTANT_HOME=str(home))
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--api-key", "sk-other",
         "--model", starter_model_file.name, "--ctx", "2048", "--slots", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process=process)
        yield RemoteEngine("other", f"http://127.0.0.1:{port}/v1", api_key="sk-other")
    finally:
        process.terminate()
        process.wait(20)


def test_another_assistant_lists_its_models_and_is_recognised(other_assistant) -> None:
    from assistant.clients.openai_client import probe

    status = probe(other_assistant)
    assert status.reachable, status.problem
    assert status.engine.kind is ServerKind.ASSISTANT
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in status.models
    wrong_key = probe(RemoteEngine("other", other_assistant.url, api_key="sk-wrong"))
    assert wrong_key.problem is not None and "refused the API key (HTTP 401" in wrong_key.problem


def test_another_assistant_streams_a_reply_with_its_own_figures(
    other_assistant, assistant_home: Path
) -> None:
    engine = RemoteEngine("other", other_assistant.url, "sk-other", kind=ServerKind.ASSISTANT)
    model = "SmolLM2-135M-Instruct.Q4_1.gguf"
    choice = turn.ModelChoice(model, engine="other")
    with Store() as store:
        conversation, _ = turn.begin_turn(store, None, HELLO[1]["content"], model=choice)
        reply = turn.Reply(store, conversation.id, choice)
        with OpenAIClient.for_engine(engine) as client:
            completion = client.chat(
                store.chat_history(conversation.id, HELLO[0]["content"]), PARAMS, model=model
            )
        message = reply.finish(completion)
        assert message is not None and message.writer == f"other / {model}"
    assert completion.finish_reason in ("stop", "length") and completion.text
    assert completion.prompt_tokens > 10 and completion.completion_tokens > 0


def test_stop_ends_another_assistants_reply_within_a_token(other_assistant) -> None:
    engine = RemoteEngine("other", other_assistant.url, "sk-other", kind=ServerKind.ASSISTANT)
    stop, seen, on_text = stop_after(2)
    params = GenerationParams(max_tokens=200, temperature=0.0, seed=1, ignore_eos=True)
    with OpenAIClient.for_engine(engine) as client:
        completion = client.chat(
            HELLO, params, model="SmolLM2-135M-Instruct.Q4_1.gguf", on_text=on_text, stop=stop
        )
    assert completion.finish_reason == "cancelled"
    assert len(seen) <= 3


# -- llama.cpp's own llama-server, when one is built (LLAMA_SERVER=path/to/llama-server) --------


@pytest.fixture(scope="module")
def llama_server(starter_model_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """llama-server from the vendored llama.cpp (see tests/benchmarks/bench_server.py for the
    build); opt-in, since CI does not build it."""
    import os
    import subprocess

    from tests.remote_servers import wait_http

    binary = os.environ.get("LLAMA_SERVER")
    if not binary:
        pytest.skip("set LLAMA_SERVER to a llama-server binary to test against it")
    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("wb")
    process = subprocess.Popen(
        [binary, "-m", str(starter_model_file), "--host", "127.0.0.1", "--port", str(port),
         "-c", "2048", "-np", "1", "-t", "2", "-a", "smollm2-135m"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process=process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(20)


def test_llama_server_is_recognised_and_streams_with_usage(llama_server: str) -> None:
    from assistant.clients.openai_client import probe

    status = probe(RemoteEngine("ls", llama_server))
    assert status.reachable and status.engine.kind is ServerKind.LLAMA_CPP
    assert status.models == ("smollm2-135m",)
    pieces: list[str] = []
    with OpenAIClient.for_engine(status.engine) as client:
        completion = client.chat(HELLO, PARAMS, model="smollm2-135m", on_text=pieces.append)
    assert completion.text == "".join(pieces) and completion.completion_tokens > 0
    assert completion.prompt_tokens > 10  # llama-server sends its usage chunk


def test_stop_ends_a_llama_server_reply_within_a_token(llama_server: str) -> None:
    stop, seen, on_text = stop_after(2)
    params = GenerationParams(max_tokens=300, temperature=0.9, seed=1)
    with _client(llama_server, kind=ServerKind.LLAMA_CPP) as client:
        completion = client.chat(HELLO, params, model="smollm2-135m", on_text=on_text, stop=stop)
    assert completion.finish_reason == "cancelled" and len(seen) <= 3
