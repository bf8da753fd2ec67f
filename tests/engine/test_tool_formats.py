"""Tool calls in each model family's own form, with the real chat templates of Qwen 2.5 and 3,
Hermes 3, Mistral Nemo, Mistral Small 3.2 and Llama 3.1/3.2 (tests/engine/templates): the
template renders the tools and a history of calls, and a tiny model whose vocabulary has that
family's markers as control tokens writes calls that come back as calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.engine.chat_format import ChatFormat, merge_turns
from assistant.engine.llama import Engine, GenerationParams
from assistant.tools import calls
from assistant.tools.json_schema import grammar
from tests.tinymodel import THINKING_TEMPLATE, write_tiny_model

TEMPLATES = Path(__file__).parent / "templates"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}  # fmt: skip
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "maxLength": 12}},
    "required": ["zone"]}}}  # fmt: skip
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HISTORY = [
    *ASK,
    {"role": "assistant", "content": "", "tool_calls": [{
        "id": "call_8f2a61c0d3b94e7a", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
    }]},
    {"role": "tool", "tool_call_id": "call_8f2a61c0d3b94e7a", "content": "18 degrees, sunny"},
]  # fmt: skip

# (template, the form its model writes calls in, its markers that are control tokens)
FAMILIES = [
    ("Qwen-Qwen2.5-7B-Instruct", calls.HERMES, ()),
    ("Qwen-Qwen3-0.6B", calls.HERMES, ()),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", calls.HERMES, ()),
    ("mistralai-Mistral-Nemo-Instruct-2407", calls.MISTRAL, ("[TOOL_CALLS]",)),
    ("Mistral-Small-3.2-24B-Instruct-2506", calls.MISTRAL_ARGS,
     ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]")),
    ("meta-llama-Llama-3.1-8B-Instruct", calls.LLAMA3, ("<|python_tag|>",)),
    ("meta-llama-Llama-3.2-3B-Instruct", calls.LLAMA3, ()),
]  # fmt: skip


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "dialect", "markers"), FAMILIES)
def test_each_template_renders_tools_and_a_history_of_calls(name, dialect, markers) -> None:
    source = template(name)
    fmt = ChatFormat(source, bos_token="<s>", eos_token="</s>")
    assert fmt.knows_tools and calls.dialect_of(source) == dialect
    request = calls.ToolRequest((WEATHER,), "auto", False)
    shown, tools = calls.for_template(HISTORY, request, dialect)
    text = fmt.render(merge_turns(shown), tools)  # Mistral's raise unless ids are 9 characters
    assert "get_weather" in text and "18 degrees, sunny" in text
    assert '"city": "Paris"' in text  # the arguments as an object, not a string in a string


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("families")
    return {
        name: write_tiny_model(
            folder / f"{name}.gguf", chat_template=template(name), special_tokens=markers, seed=3
        )  # fmt: skip
        for name, _, markers in FAMILIES
    }


@pytest.mark.parametrize(("name", "dialect", "markers"), FAMILIES)
@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_a_model_writes_calls_in_its_own_form_and_they_come_back(
    tiny_models, name, dialect, markers, choice
) -> None:
    engine = Engine()
    engine.load(tiny_models[name], n_ctx=2048)
    try:
        # One call: the tiny model never ends a run of parallel calls itself.
        request = calls.ToolRequest((WEATHER, TIME), choice, False)
        params = GenerationParams(max_tokens=400, seed=7, tools=request.to_json())
        done = engine.generate(ASK, params)
        assert done.error is None, done.error
        content, found = calls.parse_reply(done.text, request)
        assert found, done.text
        for call in found:
            args = json.loads(call.arguments)
            assert call.name in ("get_weather", "get_time"), done.text
            if call.name == "get_weather":
                assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")
        if choice == "get_weather":
            assert {c.name for c in found} == {"get_weather"}
        opener = {calls.MISTRAL: "[TOOL_CALLS]", calls.MISTRAL_ARGS: "[TOOL_CALLS]",
                  calls.HERMES: "<tool_call>"}.get(dialect)  # fmt: skip
        if opener:
            assert done.text.lstrip().startswith(opener), done.text
        # A marker that is a control token: in a tools reply's text, and in no other.
        for marker in markers:
            (token,) = engine._tokenize(marker.encode(), special=True)
            assert engine.piece(token) == b""
            assert engine.piece(token, tools=True) == marker.encode()
    finally:
        engine.close()


@pytest.mark.parametrize(
    "name",
    ["mistralai-Mistral-Nemo-Instruct-2407", "Mistral-Small-3.2-24B-Instruct-2506",
     "meta-llama-Llama-3.1-8B-Instruct"],
)  # fmt: skip
def test_under_auto_the_grammar_starts_at_the_call_token(tmp_path: Path, name: str) -> None:
    # The model favours its call token: sampling it starts the lazy grammar (a token trigger),
    # which then holds the call to the tool's schema.
    markers = next(m for n, _, m in FAMILIES if n == name)
    model = write_tiny_model(tmp_path / "m.gguf", chat_template=template(name),
                             special_tokens=markers, favour=markers[:1], seed=3)  # fmt: skip
    engine = Engine()
    engine.load(model, n_ctx=2048)
    try:
        request = calls.ToolRequest((WEATHER,), "auto", False)
        done = engine.generate(ASK, GenerationParams(max_tokens=300, seed=2,
                                                     tools=request.to_json()))  # fmt: skip
        assert done.error is None, done.error
        _, found = calls.parse_reply(done.text, request)
        assert [c.name for c in found] == ["get_weather"], done.text
        assert set(json.loads(found[0].arguments)) == {"city", "unit"}
    finally:
        engine.close()


def test_a_structured_reply_after_a_think_the_template_opened(tmp_path: Path) -> None:
    # The grammar closes the thinking first: the reply is the JSON, not reasoning.
    engine = Engine()
    engine.load(write_tiny_model(tmp_path / "t.gguf", chat_template=THINKING_TEMPLATE), n_ctx=512)
    try:
        assert engine.opens_thinking
        # Rules named "answer" and "node-root": the close is a rule of its own, over "root".
        schema = {"type": "object", "properties": {
            "ok": {"type": "boolean"}, "answer": {"enum": ["yes", "no"]},
            "node": {"type": "object", "properties": {"root": {"enum": [1]}},
                     "required": ["root"]}},
            "required": ["ok", "answer", "node"]}  # fmt: skip
        done = engine.generate(
            ASK, GenerationParams(max_tokens=100, seed=1, grammar=grammar(schema))
        )
        assert done.error is None, done.error
        reply = json.loads(done.text)
        assert reply["answer"] in ("yes", "no") and reply["node"] == {"root": 1}, done.text
        assert not done.reasoning.strip()
    finally:
        engine.close()
