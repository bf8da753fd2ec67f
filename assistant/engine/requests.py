"""What a request to the engine may say: OpenAI request bodies checked and turned into our
records (``parse_params``, ``parse_messages``, our ``assistant`` extension), and ``ApiError``,
the OpenAI-style error object every refusal is answered with."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from assistant.records import GenerationParams

ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param=None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = (
            status,
            message,
            kind,
            code,
            param,
        )
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        headers.update(self.headers)
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", None, param)


def number_field(body: dict[str, Any], name: str, lo: float, hi: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'{name}' must be a number.", name)
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}.", name)
    return float(value)


def integer_field(
    body: dict[str, Any], name: str, lo: int, hi: int, default: int | None
) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer.", name)
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}.", name)
    return value


def parse_params(body: dict[str, Any], default_max_tokens: int) -> GenerationParams:
    max_tokens = integer_field(body, "max_completion_tokens", 1, 1 << 20, None)
    if max_tokens is None:
        max_tokens = integer_field(body, "max_tokens", 1, 1 << 20, default_max_tokens)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        stops = tuple(s for s in stop if s)
    else:
        raise bad_request("'stop' must be a string or a list of up to 16 strings.", "stop")
    n = integer_field(body, "n", 1, 1, 1)
    del n  # only one choice per request
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise bad_request("'ignore_eos' must be true or false.", "ignore_eos")
    seed = integer_field(body, "seed", -(1 << 63), (1 << 64) - 1, None)
    grammar = parse_grammar(body)
    return GenerationParams(
        max_tokens=int(max_tokens or default_max_tokens),
        temperature=number_field(body, "temperature", 0.0, 2.0, 0.7),
        top_p=number_field(body, "top_p", 0.0, 1.0, 0.95),
        top_k=int(integer_field(body, "top_k", 0, 1 << 20, 40) or 0),
        min_p=number_field(body, "min_p", 0.0, 1.0, 0.05),
        repeat_penalty=number_field(body, "repeat_penalty", 0.0, 10.0, 1.1),
        seed=seed if seed is None or seed >= 0 else None,
        ignore_eos=ignore_eos,
        stop=stops,
        grammar=grammar,
    )


def parse_grammar(body: dict[str, Any]) -> str | None:
    """The grammar a reply must follow: OpenAI's ``response_format`` (``json_object``, or
    ``json_schema`` with its schema), or llama-server's ``json_schema`` and raw ``grammar``."""
    from assistant.tools.json_schema import SchemaError, grammar

    form = body.get("response_format")
    raw = body.get("grammar")
    schema_field = body.get("json_schema")  # llama-server's own
    where = "response_format"
    try:
        if form is not None:
            if not isinstance(form, dict) or form.get("type") not in (
                "text",
                "json_object",
                "json_schema",
            ):
                raise bad_request(
                    '\'response_format\' must be {"type": "text" | "json_object" | "json_schema"}.',
                    where,
                )
            if form["type"] == "json_object":
                return grammar(form.get("schema"))  # llama-server also takes a schema here
            if form["type"] == "json_schema":
                spec = form.get("json_schema")
                if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                    raise bad_request(
                        "'response_format.json_schema' must be an object with a 'schema'.", where
                    )
                return grammar(spec["schema"])
        if schema_field is not None:
            where = "json_schema"
            if not isinstance(schema_field, dict):
                raise bad_request("'json_schema' must be a JSON schema object.", where)
            return grammar(schema_field)
    except SchemaError as exc:
        raise bad_request(f"{where}: {exc}", where) from None
    if raw is not None:
        if not isinstance(raw, str) or not raw.strip():
            raise bad_request("'grammar' must be a GBNF grammar (a string).", "grammar")
        return raw
    return None


def parse_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list.", "messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{i}] must be an object.", "messages")
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(
                f"messages[{i}].role must be one of system, developer, user, assistant, tool.",
                "messages",
            )
        content = message.get("content", "")
        if content is None:
            content = ""
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise bad_request(
                        f"messages[{i}].content: only text parts are supported.", "messages"
                    )
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        if not isinstance(content, str):
            raise bad_request(f"messages[{i}].content must be a string.", "messages")
        entry: dict[str, Any] = {"role": "system" if role == "developer" else role,
                                 "content": content}  # fmt: skip
        calls = message.get("tool_calls")
        if role == "assistant" and calls:
            if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls
            ):
                raise bad_request(f"messages[{i}].tool_calls must be a list of calls.", "messages")
            entry["tool_calls"] = calls
        if role == "tool":
            entry["tool_call_id"] = str(message.get("tool_call_id") or "")
            if message.get("name"):
                entry["name"] = str(message["name"])
        out.append(entry)
    return out


def parse_extension(body: dict[str, Any]) -> dict[str, Any]:
    ext = body.get("assistant") or {}
    if not isinstance(ext, dict):
        raise bad_request("'assistant' must be an object.", "assistant")
    key = ext.get("kv_state")
    if key is not None and not (
        isinstance(key, str) and key and len(key) < 80 and all(c.isalnum() or c == "-" for c in key)
    ):
        raise bad_request("'assistant.kv_state' must be letters, digits and dashes.", "assistant")
    return ext


def parse_embedding_input(body: dict[str, Any]) -> list[str] | list[list[int]]:
    """``input`` of /v1/embeddings: a string, a list of strings, a list of token ids, or a list
    of those lists (as OpenAI takes it)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]
        if all(
            isinstance(v, list)
            and v
            and all(isinstance(t, int) and not isinstance(t, bool) for t in v)  # fmt: skip
            for v in value
        ):
            return value
    raise bad_request(
        "'input' must be a non-empty string, a list of strings, or token ids.", "input"
    )


def parse_tools(body: dict[str, Any]) -> Any:
    """The tools a chat request offers (tools/calls.py ToolRequest), or None."""
    from assistant.tools.calls import ToolsError, parse_request

    try:
        return parse_request(body)
    except ToolsError as exc:
        raise bad_request(str(exc), exc.param) from None
