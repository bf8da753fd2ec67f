"""The engine against real llama.cpp: tiny GGUF models written by tests/tinymodel.py, and the
starter model where the real thing matters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.engine.chat_format import PLAIN_TEMPLATE_NOTE, ChatFormat, fit_messages
from assistant.engine.llama import Completion, Engine, GenerationParams
from assistant.engine.text_stream import TextStream
from assistant.errors import InvalidModelFile, ModelError, ModelNotLoaded
from tests.tinymodel import CHATML_TEMPLATE, NO_SYSTEM_TEMPLATE, THINKING_TEMPLATE, write_tiny_model

FAST = GenerationParams(max_tokens=40, seed=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "chatml": write_tiny_model(folder / "chatml.gguf", chat_template=CHATML_TEMPLATE),
        "plain": write_tiny_model(folder / "plain.gguf"),
        "thinking": write_tiny_model(folder / "thinking.gguf", chat_template=THINKING_TEMPLATE),
        "nosystem": write_tiny_model(folder / "nosystem.gguf", chat_template=NO_SYSTEM_TEMPLATE),
        "eos": write_tiny_model(folder / "eos.gguf", chat_template=CHATML_TEMPLATE, eos_first=True),
        "strict": write_tiny_model(
            folder / "strict.gguf",
            chat_template="{{ raise_exception('Conversation roles must alternate') }}",
        ),
        # Big enough that a long prompt takes a noticeable time to evaluate.
        "wide": write_tiny_model(
            folder / "wide.gguf",
            chat_template=CHATML_TEMPLATE,
            n_embd=512,
            n_head=8,
            n_head_kv=4,
            n_ff=2048,
            n_layers=4,
            context_length=4096,
        ),
    }


@pytest.fixture(scope="module")
def engine(models: dict[str, Path]) -> Iterator[Engine]:
    """A loaded ChatML engine shared by the tests that only generate."""
    e = Engine()
    e.load(models["chatml"], n_ctx=2048)
    yield e
    e.close()


def chat(*turns: str, system: str | None = "Be brief.") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


def test_load_describes_model(models: dict[str, Path]) -> None:
    e = Engine()
    seen: list[float] = []
    loaded = e.load(models["chatml"], n_ctx=1024, progress=seen.append)
    try:
        assert e.model is loaded
        assert loaded.path == models["chatml"]
        assert e.info.architecture == "llama"
        assert loaded.n_ctx == e.n_ctx == 1024
        assert loaded.template_note is None
        assert loaded.backend and loaded.backend_note
        if loaded.backend == "CPU":
            assert loaded.n_gpu_layers == 0
        assert seen and seen[-1] == 1.0
        # n_ctx never exceeds what the model was trained for.
        assert e.load(models["chatml"], n_ctx=100_000).n_ctx == 2048
    finally:
        e.close()
    assert e.model is None


def test_generate_streams_the_reply(engine: Engine) -> None:
    pieces: list[str] = []
    c = engine.generate(chat("Hello there"), FAST, on_text=pieces.append)
    assert c.finish_reason == "length"
    assert c.error is None
    assert len(pieces) > 1
    assert "".join(pieces) == c.text
    assert c.text and c.text == c.text.strip()
    assert c.completion_tokens == 40
    assert c.prompt_tokens > 5
    # The last sampled token is not evaluated: nothing will need it unless the chat goes on.
    assert c.context_tokens == c.prompt_tokens + c.completion_tokens - 1
    assert c.model_file == "chatml.gguf"
    assert 0 < c.ttft_s <= c.duration_s
    assert c.tokens_per_s > 0
    assert c.trimmed_messages == 0


def test_same_seed_same_reply(engine: Engine) -> None:
    first = engine.generate(chat("Same"), FAST)
    engine.generate(chat("Something else"), FAST)
    assert engine.generate(chat("Same"), FAST).text == first.text


def test_count_tokens(engine: Engine) -> None:
    assert engine.count_tokens("") == 0
    # Byte-level BPE with a merge for "he": h+e, l, l, o.
    assert engine.count_tokens("hello") == 4
    assert engine.count_tokens("<|im_end|>") > 1  # user text is never parsed as special tokens


def test_not_loaded() -> None:
    e = Engine()
    with pytest.raises(ModelNotLoaded):
        e.generate(chat("Hi"))
    with pytest.raises(ModelNotLoaded):
        e.count_tokens("Hi")
    assert e.model is None and e.n_ctx == 0


def test_end_of_generation_token_stops(models: dict[str, Path]) -> None:
    e = Engine()
    e.load(models["eos"], n_ctx=512)
    try:
        c = e.generate(chat("Hi"), FAST)
    finally:
        e.close()
    assert (c.finish_reason, c.text, c.completion_tokens) == ("stop", "", 0)


def test_stop_during_generation_keeps_text(engine: Engine) -> None:
    stop = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 5:
            stop.set()

    c = engine.generate(
        chat("Tell me a story"), GenerationParams(max_tokens=500), on_text=on_text, stop=stop
    )
    assert c.finish_reason == "cancelled"
    assert c.text == "".join(pieces) and len(pieces) >= 5
    assert c.completion_tokens < 50
    # Still usable, and the cache still matches what the engine believes it holds.
    again = engine.generate(chat("Tell me a story"), FAST)
    assert again.finish_reason == "length"
    assert again.cached_tokens == again.prompt_tokens - 1


def test_stop_before_start(engine: Engine) -> None:
    stop = threading.Event()
    stop.set()
    c = engine.generate(chat("Never answered"), FAST, on_text=pytest.fail, stop=stop)
    assert (c.finish_reason, c.text, c.completion_tokens) == ("cancelled", "", 0)
    assert c.duration_s < 1


def test_stop_during_prompt_processing(models: dict[str, Path]) -> None:
    e = Engine()
    e.load(models["wide"], n_ctx=4096)
    try:
        text = " ".join(f"w{i}" for i in range(400))  # about 1900 tokens
        full = e.generate(chat(text), GenerationParams(max_tokens=1))
        assert full.finish_reason == "length" and full.prompt_tokens > 1500

        # A different first message, so nothing but the system prompt is cached.
        stop = threading.Event()
        timer = threading.Timer(full.duration_s / 10, stop.set)
        timer.start()
        c = e.generate(chat("x" + text), GenerationParams(max_tokens=1), stop=stop)
        timer.join()
        assert c.finish_reason == "cancelled"
        assert c.completion_tokens == 0
        assert c.duration_s < full.duration_s / 2
        # Only whole, evaluated batches stay in the cache; the engine carries on from there.
        assert c.context_tokens < c.prompt_tokens
        after = e.generate(chat("x" + text), GenerationParams(max_tokens=3))
        assert after.finish_reason == "length"
        assert after.cached_tokens == c.context_tokens
        assert after.context_tokens == after.prompt_tokens + 2
    finally:
        e.close()


def test_second_turn_reuses_the_prefix(engine: Engine) -> None:
    long_question = " ".join(f"q{i}" for i in range(200))  # about 800 tokens
    first = engine.generate(chat(long_question, system="Turn test."), FAST)
    second = engine.generate(
        chat(long_question, first.text, "And then?", system="Turn test."), FAST
    )
    assert second.error is None
    # Everything up to the first reply is reused (its text tokenizes back almost the same way).
    assert second.cached_tokens >= first.prompt_tokens
    assert second.prompt_tokens - second.cached_tokens < 60
    # (What the reuse saves in time to first token is measured by tests/benchmarks/bench_engine.py.)


def test_history_is_trimmed_to_fit(models: dict[str, Path]) -> None:
    e = Engine()
    e.load(models["chatml"], n_ctx=512)
    try:
        turns = [f"turn {i} " + "blah " * 20 for i in range(30)] + ["last question"]
        params = GenerationParams(max_tokens=64, seed=1)
        c = e.generate(chat(*turns), params)
        assert c.error is None and c.finish_reason == "length"
        assert c.trimmed_messages > 0 and c.trimmed_messages % 2 == 0  # whole exchanges
        assert c.prompt_tokens <= e.n_ctx - 64

        # A single message longer than the context: its beginning goes, no exception.
        c = e.generate(chat("x " * 2000), params)
        assert c.error is None and c.finish_reason == "length"
        assert c.trimmed_messages == 0
        assert c.prompt_tokens <= e.n_ctx - 64

        # max_tokens past the context: half the context stays for the prompt; the reply ends
        # with "length" when the context is full.
        c = e.generate(chat(*turns), GenerationParams(max_tokens=100_000, seed=1))
        assert c.finish_reason == "length"
        assert c.prompt_tokens <= e.n_ctx // 2
        assert c.context_tokens == e.n_ctx
    finally:
        e.close()


def test_model_without_template_uses_plain_format(models: dict[str, Path]) -> None:
    e = Engine()
    loaded = e.load(models["plain"], n_ctx=512)
    try:
        assert loaded.template_note == PLAIN_TEMPLATE_NOTE
        c = e.generate(chat("Hi"), FAST)
        assert c.error is None and c.text
        # A base model goes on to write the next turn, its own included: the reply ends there.
        assert {"\nUser:", "\nAssistant:"} <= set(ChatFormat(None).stop_strings)
    finally:
        e.close()


def test_a_template_that_opens_think_makes_the_reply_reasoning(models: dict[str, Path]) -> None:
    # The tiny model never writes </think>: all it writes is thinking, streamed apart.
    e = Engine()
    e.load(models["thinking"], n_ctx=512)
    try:
        assert e.opens_thinking
        texts: list[str] = []
        c = e.generate(chat("Hi"), FAST, on_text=texts.append)
        assert c.error is None and c.reasoning and c.completion_tokens > 0
        assert c.text == "" and texts == []
    finally:
        e.close()


def test_template_without_system_role_gets_it_folded_in(models: dict[str, Path]) -> None:
    e = Engine()
    e.load(models["nosystem"], n_ctx=512)
    try:
        with_system = e.generate(chat("Hi", system="Be brief."), FAST)
        without = e.generate(chat("Hi", system=None), FAST)
    finally:
        e.close()
    assert with_system.error is None and with_system.finish_reason == "length"
    assert with_system.prompt_tokens > without.prompt_tokens

    fmt = ChatFormat(NO_SYSTEM_TEMPLATE, bos_token="<s>")
    assert fmt.render(chat("Hi", system="Be brief.")) == (
        "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
    assert fmt.folds_system


def test_template_errors_end_the_reply_with_an_error(models: dict[str, Path]) -> None:
    e = Engine()
    e.load(models["strict"], n_ctx=512)
    try:
        c = e.generate(chat("Hi"), FAST, on_text=pytest.fail)
    finally:
        e.close()
    assert c.finish_reason == "error"
    assert c.error == "The model's chat template failed: Conversation roles must alternate"
    assert c.text == ""


def test_bad_files_leave_the_engine_usable(models: dict[str, Path], tmp_path: Path) -> None:
    e = Engine()
    e.load(models["chatml"], n_ctx=512)
    try:
        text_file = tmp_path / "fake.gguf"
        text_file.write_text("Entry not found")
        with pytest.raises(InvalidModelFile, match="not a GGUF"):
            e.load(text_file)
        truncated = tmp_path / "cut.gguf"
        truncated.write_bytes(models["chatml"].read_bytes()[:-4096])
        with pytest.raises(InvalidModelFile, match="incomplete"):
            e.load(truncated)
        # Validation failed before anything was unloaded.
        assert e.model is not None and e.generate(chat("Hi"), FAST).error is None

        # A valid GGUF that llama.cpp refuses: a clear ModelError, quoting llama.cpp's reason.
        data = bytearray(models["chatml"].read_bytes())
        at = data.index(b"llama")
        data[at : at + 5] = b"llxma"
        unknown = tmp_path / "unknown.gguf"
        unknown.write_bytes(bytes(data))
        with pytest.raises(ModelError, match="could not load unknown.gguf: unknown model arch"):
            e.load(unknown)
        assert e.model is None
        e.load(models["chatml"], n_ctx=512)
        assert e.generate(chat("Hi"), FAST).finish_reason == "length"
    finally:
        e.close()


def test_llama_log_goes_to_logging(
    models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    e = Engine()
    with caplog.at_level(logging.DEBUG, logger="llama_cpp"):
        e.load(models["chatml"], n_ctx=512)
    e.close()
    records = [r for r in caplog.records if r.name == "llama_cpp"]
    assert any("llama_model_loader" in r.getMessage() for r in records)
    assert all(not r.getMessage().endswith("\n") for r in records)


def test_text_stream_stop_strings_and_utf8() -> None:
    out: list[str] = []
    stream = TextStream(["\nUser:", "<|im_end|>"], out.append)
    for piece in [b"  Hello", b" w\xc3", b"\xa9rld", b"\n", b"\nUs", b"er", b": more"]:
        if stream.feed(piece):
            break
    else:
        pytest.fail("stop string missed")
    assert stream.text == "".join(out) == "Hello wérld"
    assert all("\ufffd" not in piece for piece in out)

    # A partial stop string that never completes is text after all.
    stream = TextStream(["<|im_end|>"], None)
    assert not stream.feed(b"a <|im")
    assert not stream.feed(b"_start")
    stream.finish()
    assert stream.text == "a <|im_start"


def test_fit_messages_cuts_only_before_user_turns() -> None:
    msgs = chat("u1", "a1", "u2", "a2", "u3")
    fitted, dropped = fit_messages(msgs, lambda m: len(m), budget=4)
    assert dropped == 2
    assert [m["content"] for m in fitted] == ["Be brief.", "u2", "a2", "u3"]
    fitted, dropped = fit_messages(msgs, lambda m: len(m), budget=1)
    assert dropped == 4 and [m["content"] for m in fitted] == ["Be brief.", "u3"]


@pytest.mark.starter
def test_starter_model_answers_with_its_chat_template(starter_model: Path) -> None:
    """The starter is an instruct model: asked for code, it writes a function."""
    e = Engine()
    loaded = e.load(starter_model, n_ctx=1024)
    try:
        assert e.info.architecture == "llama" and e.info.chat_template
        assert not loaded.template_note  # its own template, not the plain format
        c: Completion = e.generate(
            chat("Write a Python function that reverses a string."),
            GenerationParams(max_tokens=96, temperature=0.0, seed=1),
        )
        assert c.error is None and not c.is_empty
        assert "def " in c.text, c.text
    finally:
        e.close()


@pytest.mark.starter
def test_gemma_base_model_generates(gemma_model: Path) -> None:
    e = Engine()
    loaded = e.load(gemma_model, n_ctx=1024)
    try:
        assert e.info.architecture == "gemma3"
        assert loaded.template_note == PLAIN_TEMPLATE_NOTE
        c: Completion = e.generate(
            chat("What is the capital of France?", system="You are helpful."),
            GenerationParams(max_tokens=8, seed=1),
        )
        assert c.error is None
        assert c.finish_reason in ("length", "stop")
        assert c.text
        assert e.count_tokens("Hello world") == 2
    finally:
        e.close()


@pytest.mark.starter
def test_ignore_eos_runs_a_plain_format_reply_to_max_tokens(gemma_model: Path) -> None:
    """The plain format (a base model, no template) ends a turn at its own markers ("User:");
    ignore_eos sets them aside as it does the end token, as llama-server runs to n_predict."""
    e = Engine()
    loaded = e.load(gemma_model, n_ctx=1024)
    try:
        assert loaded.template_note == PLAIN_TEMPLATE_NOTE
        params = GenerationParams(max_tokens=64, temperature=0.0, seed=1, ignore_eos=True)
        c = e.generate(chat("Once upon a time"), params)
        assert c.completion_tokens == 64 and c.finish_reason == "length"
    finally:
        e.close()


def test_two_user_turns_in_a_row_still_render_for_strict_templates(models: dict[str, Path]) -> None:
    """A stopped, empty reply leaves two user messages in a row: Gemma-like templates that
    insist on alternating roles must still get a valid conversation."""
    from assistant.engine.chat_format import merge_turns

    strict = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
        "{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}assistant:"
    )
    path = write_tiny_model(models["chatml"].parent / "alternating.gguf", chat_template=strict)
    e = Engine()
    e.load(path, n_ctx=512)
    try:
        turns = [{"role": "user", "content": "first"}, {"role": "user", "content": "again"}]
        c = e.generate(turns, GenerationParams(max_tokens=3))
        assert c.error is None and c.finish_reason == "length"
    finally:
        e.close()
    assert merge_turns(turns) == [{"role": "user", "content": "first\n\nagain"}]
