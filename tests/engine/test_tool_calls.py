"""Tool calls through ``/v1/chat/completions``: the real ``openai`` client's round trip against
a real instruct model (SmolLM2, whose template knows no tools: the Hermes-format fallback), and
the formats read back, and a template that renders tools itself."""

from __future__ import annotations

import json
import re

import openai
import pytest

from assistant.engine.chat_format import ChatFormat, merge_turns
from assistant.tools import calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1},  # not enforceable: left out
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "maxLength": 30}},
    "required": ["zone"]}}}  # fmt: skip
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def served(starter_engine) -> tuple[openai.OpenAI, str]:
    supervisor, model = starter_engine
    return openai.OpenAI(base_url=supervisor.url + "/v1", api_key=supervisor.api_key,
                         max_retries=0, timeout=120), model.name  # fmt: skip


def valid_weather_args(arguments: str) -> bool:
    args = json.loads(arguments)
    return set(args) <= {"city", "unit", "days"} and {"city", "unit"} <= set(args) and (
        args["unit"] in ("celsius", "fahrenheit") and len(args["city"]) <= 40)  # fmt: skip


@pytest.mark.starter
@pytest.mark.parametrize("seed", range(3))
def test_required_and_named_calls_always_follow_the_schema(served, seed: int) -> None:
    client, model = served
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        r = client.chat.completions.create(
            model=model, messages=ASK, tools=[WEATHER, TIME], tool_choice=choice,
            max_tokens=120, temperature=1.0, seed=seed,
        )  # fmt: skip
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c.message.content
        assert c.message.tool_calls and all(t.id.startswith("call_") for t in c.message.tool_calls)
        for call in c.message.tool_calls:
            if call.function.name == "get_weather":
                assert valid_weather_args(call.function.arguments)
            else:
                assert isinstance(json.loads(call.function.arguments)["zone"], str)
        if isinstance(choice, dict):
            assert {t.function.name for t in c.message.tool_calls} == {"get_weather"}


@pytest.mark.starter
def test_the_round_trip_and_streaming(served) -> None:
    client, model = served
    r = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], tool_choice="required",
        parallel_tool_calls=False, max_tokens=120, temperature=0, stream=True,
    )  # fmt: skip
    chunks = list(r)
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].function.name == "get_weather"
    assert valid_weather_args(deltas[0].function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The result goes back; the model answers (SmolLM2 answers in words or calls again).
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [{
        "id": deltas[0].id, "type": "function", "function": {
            "name": "get_weather", "arguments": deltas[0].function.arguments}}]},
        {"role": "tool", "tool_call_id": deltas[0].id, "content": '{"temp": 18}'}]  # fmt: skip
    after = client.chat.completions.create(model=model, messages=history, tools=[WEATHER],
                                           max_tokens=40, temperature=0)  # fmt: skip
    assert after.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # tool_choice "none": no call, plain text.
    plain = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER],
                                           tool_choice="none", max_tokens=20)  # fmt: skip
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].message.content


@pytest.mark.starter
@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "function.name"),
        ({"tools": [{"type": "retrieval"}]}, "must be a function"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "names no function"),
        ({"tool_choice": "required"}, "needs 'tools'"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": "complex"}}}}}]}, "unknown type"),
    ],
)  # fmt: skip
def test_bad_tools_are_a_400_that_says_why(served, extra, says) -> None:
    client, model = served
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ASK, max_tokens=4, **extra)
    assert says in caught.value.message


# -- formats, without a model ------------------------------------------------------------------

QWEN_TEMPLATE = (  # the tool part of Qwen2.5's template, as its GGUF carries it
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>\n{%- for tool in tools %}\n"
    "{{ tool | tojson }}{%- endfor %}\n</tools><|im_end|>\n{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n"
    "{%- for tool_call in message.tool_calls %}<tool_call>\n{\"name\": \""
    "{{ tool_call.function.name }}\", \"arguments\": {{ tool_call.function.arguments | tojson }}}"
    "\n</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}"
    "\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}<|im_start|>assistant\n"
)  # fmt: skip


def test_a_template_that_knows_tools_renders_them() -> None:
    fmt = ChatFormat(QWEN_TEMPLATE)
    assert fmt.knows_tools
    request = calls.ToolRequest((WEATHER,), "auto", True)
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1",
        "type": "function", "function": {"name": "get_weather",
        "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]  # fmt: skip
    shown, tools = calls.for_template(history, request, calls.dialect_of(fmt.template_source))
    text = fmt.render(merge_turns(shown), tools)
    assert '"name": "get_weather"' in text.split("</tools>")[0]
    # Arguments as an object, not a JSON string inside JSON.
    assert '"arguments": {"city": "Paris", "unit": "celsius"}' in text
    assert "<tool_response>\n18 C\n</tool_response>" in text


def test_the_fallback_describes_the_tools_in_the_system_message() -> None:
    request = calls.ToolRequest((WEATHER,), "auto", False)
    shown, tools = calls.for_template([{"role": "system", "content": "Be brief."}, *ASK],
                                      request, None)  # fmt: skip
    assert tools is None and shown[0]["content"].startswith("Be brief.\n\nYou can call")
    assert "at most one function" in shown[0]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", '
        '"unit": "celsius"}}\n</tool_call>',  # Hermes, Qwen
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", '
        '"unit": "celsius"}}]',  # Mistral
        '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',  # Llama 3
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", '
        '"unit": "celsius"}}',  # Llama 3.1, with its tag
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "unit": "celsius"}',  # Mistral Small 3.2
        '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris", "unit": "celsius"}',
    ],
)
def test_calls_are_read_back_in_each_format(reply: str) -> None:
    content, found = calls.parse_reply(reply, calls.ToolRequest((WEATHER,), "auto", True))
    assert [(c.name, json.loads(c.arguments)) for c in found] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"})
    ]
    assert content in ("", "Let me check.")


def test_a_run_of_calls_cut_off_keeps_the_whole_ones() -> None:
    request = calls.ToolRequest((WEATHER,), "required", True)
    whole = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "unit": "celsius"}'
    _, found = calls.parse_reply(whole * 2 + '[TOOL_CALLS]get_weather[ARGS]{"ci', request)
    assert len(found) == 2
    _, found = calls.parse_reply(whole + "[TOOL_CALLS]nope[ARGS]{}" + whole, request)
    assert found == []


def test_text_that_only_looks_like_a_call_stays_text() -> None:
    request = calls.ToolRequest((WEATHER,), "auto", True)
    for reply in ('{"name": "rm_rf", "arguments": {}}', "<tool_call>not json</tool_call>",
                  "Plain answer."):  # fmt: skip
        content, found = calls.parse_reply(reply, request)
        assert found == [] and content.strip()


def test_streamed_text_is_held_from_where_a_call_begins() -> None:
    stream = calls.CallStream()
    sent = "".join(stream.feed(p) for p in ["Sure", ", checking", " <tool", "_call>\n{\"name\": ",
                                             '"get_weather", "arguments": {"city": "Oslo", ',
                                             '"unit": "celsius"}}\n</tool_call>'])  # fmt: skip
    assert sent == "Sure, checking "
    rest, found = stream.finish(calls.ToolRequest((WEATHER,), "auto", True))
    assert rest == "" and found[0].name == "get_weather"


def test_a_llama_call_after_words_is_read_and_not_streamed_as_text() -> None:
    request = calls.ToolRequest((WEATHER,), "auto", False)
    reply = 'Let me check.<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}}'  # noqa: E501
    content, found = calls.parse_reply(reply, request)
    assert content == "Let me check." and found[0].name == "get_weather"
    stream = calls.CallStream()
    sent = "".join(stream.feed(p) for p in ["Let me ", "check.<|python", '_tag|>{"name"'])
    assert sent == "Let me check."


def test_markers_of_a_call_that_does_not_read_are_not_shown() -> None:
    request = calls.ToolRequest((WEATHER,), "auto", False)
    markers = ("[TOOL_CALLS]", "[ARGS]", "<|python_tag|>")
    for reply in ("<|python_tag|>brave_search.call(query='x')", "[TOOL_CALLS]nope[ARGS]{}"):
        content, found = calls.parse_reply(reply, request)
        assert found == [] and content and not any(m in content for m in markers)
        stream = calls.CallStream()
        assert stream.feed(reply) == ""
        rest, found = stream.finish(request)
        assert found == [] and rest and not any(m in rest for m in markers)


def test_lazy_triggers_match_only_what_their_grammar_takes() -> None:
    # Text that fires a trigger is fed to the grammar: text it cannot take would abort llama.cpp.
    llama = re.compile(calls.LLAMA3_TRIGGER)
    assert llama.match('{"name": "get_weather"') and llama.match(' { "name"')
    assert not llama.match('{\n  "name"') and not llama.match('Sure. {"name"')
    hermes = re.compile(calls.trigger(calls.OPEN))
    assert hermes.match("I will call it. <tool_call>\n{")
    assert not hermes.match("<think>maybe <tool_call> is it")  # not inside the thinking
    assert hermes.match("<think>hm</think>\n<tool_call>{").start(1) == 18
    opened = re.compile(calls.trigger(calls.OPEN, thinking_opened=True))
    assert not opened.match("a <tool_call> inside")
    assert opened.match("thought</think>answer <tool_call>{")


def test_tool_call_deltas_are_put_together() -> None:
    from assistant.clients.openai_client import _add_call_delta, _Reply

    reply = _Reply()
    for i, part in enumerate([
        {"index": 0, "id": "call_a", "function": {"name": "get_weather", "arguments": '{"ci'}},
        {"index": 0, "function": {"arguments": 'ty": "Oslo"}'}},
    ]):  # fmt: skip
        _add_call_delta(reply, part, i)
    # A server that sends no index: a new id is a new call, none continues the latest.
    for part in [
        {"id": "x1", "function": {"name": "get_time", "arguments": "{"}},
        {"function": {"arguments": "}"}},
        {"id": "x2", "function": {"name": "get_time"}},
    ]:
        _add_call_delta(reply, part, 0)
    got = [(c["id"], c["function"]["name"], c["function"]["arguments"])
           for c in reply.tool_calls.values()]  # fmt: skip
    assert got == [("call_a", "get_weather", '{"city": "Oslo"}'), ("x1", "get_time", "{}"),
                   ("x2", "get_time", "")]  # fmt: skip
