"""Structured output (``response_format``) from ``assistant serve``, with the real ``openai``
client and a real instruct model: every reply parses and validates against its schema."""

from __future__ import annotations

import json

import httpx2 as httpx
import openai
import pydantic
import pytest

pytestmark = pytest.mark.starter


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=30)
    role: str | None = None


class CalendarEvent(pydantic.BaseModel):
    """OpenAI's own example, bounded: a grammar guarantees a reply that parses, not one that
    ends; a 135M model left to write an unbounded list can go on to max_tokens (then
    ``parse()`` raises LengthFinishReasonError, as it should). Limits make it end."""

    name: str = pydantic.Field(max_length=60)
    date: str = pydantic.Field(max_length=20)
    participants: list[Person] = pydantic.Field(max_length=4)


class Colour(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=30)
    hex_code: str = pydantic.Field(pattern=r"^#[0-9a-f]{6}$")
    warm: bool
    kind: str = pydantic.Field(json_schema_extra={"enum": ["primary", "secondary", "other"]})


@pytest.fixture(scope="module")
def served(starter_engine) -> tuple:
    supervisor, model = starter_engine
    return supervisor, model.name


def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0].url + "/v1", api_key=served[0].api_key,
                         max_retries=0, timeout=120)  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_parse_with_a_pydantic_model(served, seed: int) -> None:
    r = client(served).chat.completions.parse(
        model=served[1],
        messages=[{"role": "system", "content": "Extract the event information."},
                  {"role": "user", "content": "Alice and Bob are going to a science fair on "
                                              "Friday."}],
        response_format=CalendarEvent, max_tokens=600, temperature=1.0, seed=seed,
    )  # fmt: skip
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    event = choice.message.parsed
    assert isinstance(event, CalendarEvent) and len(event.participants) <= 4


def test_patterns_enums_and_booleans_hold(served) -> None:
    for seed in range(3):
        r = client(served).chat.completions.parse(
            model=served[1], messages=[{"role": "user", "content": "Describe the colour red."}],
            response_format=Colour, max_tokens=200, temperature=1.2, seed=seed,
        )  # fmt: skip
        colour = r.choices[0].message.parsed
        assert colour is not None and colour.kind in ("primary", "secondary", "other")


def test_json_object_and_streaming(served) -> None:
    stream = client(served).chat.completions.create(
        model=served[1], messages=[{"role": "user", "content": "Give me a JSON about cats."}],
        response_format={"type": "json_object"}, max_tokens=300, stream=True, seed=3,
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert isinstance(json.loads(text), dict)


def test_llama_server_fields_work_too(served) -> None:
    body = {"model": served[1], "messages": [{"role": "user", "content": "Yes or no?"}],
            "max_tokens": 8, "grammar": 'root ::= "yes" | "no"'}  # fmt: skip
    r = httpx.post(served[0].url + "/v1/chat/completions", json=body, timeout=120,
                   headers={"Authorization": f"Bearer {served[0].api_key}"})  # fmt: skip
    assert r.json()["choices"][0]["message"]["content"] in ("yes", "no")
    body = {**body, "grammar": None, "json_schema": {"type": "array", "items": {"type": "integer"},
                                                    "maxItems": 3}, "max_tokens": 60}  # fmt: skip
    r = httpx.post(served[0].url + "/v1/chat/completions", json=body, timeout=120,
                   headers={"Authorization": f"Bearer {served[0].api_key}"})  # fmt: skip
    value = json.loads(r.json()["choices"][0]["message"]["content"])
    assert isinstance(value, list) and len(value) <= 3 and all(isinstance(v, int) for v in value)


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}}},
         "schema.properties.n.minimum: the keyword 'minimum' is not supported"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}},
         "unknown type"),
        ({"type": "json_schema", "json_schema": {"name": "x"}},
         "must be an object with a 'schema'"),
        ({"type": "yaml"}, "'response_format' must be"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "string", "format": "email"}}}, "the format 'email' is not supported"),
    ],
)  # fmt: skip
def test_a_schema_it_cannot_enforce_is_a_400_that_names_it(served, response_format, says):
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).chat.completions.create(
            model=served[1], messages=[{"role": "user", "content": "hi"}],
            response_format=response_format, max_tokens=8,
        )  # fmt: skip
    assert says in caught.value.message
    assert caught.value.body["param"] == "response_format"


def test_a_broken_grammar_is_a_400(served) -> None:
    body = {"model": served[1], "messages": [{"role": "user", "content": "hi"}],
            "grammar": "root ::= (unclosed"}  # fmt: skip
    r = httpx.post(served[0].url + "/v1/chat/completions", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {served[0].api_key}"})  # fmt: skip
    assert r.status_code == 400 and "grammar could not be parsed" in r.json()["error"]["message"]
    # The engine goes on.
    ok = client(served).chat.completions.create(
        model=served[1], messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert ok.choices[0].message.content is not None
