"""Tool calls in ``/v1/chat/completions``: the tools a request offers, put before the model (in
its own chat template when that knows tools, else in a system message in Hermes' format), a
grammar that holds each call to its tool's parameters, and the calls read back from the reply.

Each family writes calls its own way, and the grammar writes the one the template's model was
trained on (``dialect_of``): Hermes and Qwen (``<tool_call>{"name": ..., "arguments": ...}
</tool_call>``, also our fallback's), Mistral v3 (``[TOOL_CALLS][{...}]``), newer Mistral
(``[TOOL_CALLS]name[ARGS]{...}``) and Llama 3.x (the reply a JSON object ``{"name": ...,
"parameters": ...}``, after an optional ``<|python_tag|>``). Where a marker is a control token
of the vocabulary the grammar asks for that token, and the engine keeps it in the reply's text
(it leaves control tokens out of other replies). With ``tool_choice`` "required" or a named
function the grammar holds the whole reply; with "auto" it is lazy and holds the reply from the
moment a call opens (llama.cpp's lazy grammar sampler).

Parameters are held to their schema as far as tools/json_schema.py can; keywords it cannot
enforce (``minimum``, ``format: email``...) are left out of the grammar, not refused: a tool
whose schema says more than a grammar can still gets well-formed arguments of the right shape.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from assistant.tools.json_schema import ANNOTATIONS, ENFORCED, SchemaError, grammar
from assistant.tools.json_schema import rules as schema_rules

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MISTRAL_OPEN, MISTRAL_ARGS_MARK, MISTRAL_ID_MARK = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"
PYTHON_TAG = "<|python_tag|>"
# Tokens a tools reply keeps in its text: in many vocabularies these are control tokens, which
# a reply's text otherwise leaves out (as llama-server's "preserved tokens").
MARKERS = (OPEN, CLOSE, MISTRAL_OPEN, MISTRAL_ARGS_MARK, MISTRAL_ID_MARK, PYTHON_TAG)

# How a model writes its calls, from its chat template: the grammar writes that form.
HERMES = "hermes"  # <tool_call>{"name": ..., "arguments": ...}</tool_call> (Qwen, Hermes, ours)
MISTRAL = "mistral"  # [TOOL_CALLS][{"name": ..., "arguments": ...}] (Mistral v3, Nemo)
MISTRAL_ARGS = "mistral-args"  # [TOOL_CALLS]name[ARGS]{...} (Mistral Small 3.2, Devstral)
LLAMA3 = "llama3"  # {"name": ..., "parameters": ...} as the whole reply (Llama 3.1-3.3)

# A lazy grammar starts where a call does. llama.cpp feeds it the text from the trigger's group
# on, all of the token that completed the match included, and a character the grammar cannot
# take there ends the engine (std::runtime_error, "Unexpected empty grammar stack"). So each
# text trigger matches only what its grammar takes, and the grammar takes what may follow it in
# the same token: a few characters before a Hermes call's brace (JUNK), spaces after Mistral's.
# The converter's objects open with "{" and one space at most.
LLAMA3_TRIGGER = r'^\s*(\{ ?"name")[\s\S]*$'
JUNK = "[^{]{0,16}"
WS = "[ \\n]*"


def trigger(marker: str, thinking_opened: bool = False) -> str:
    """The lazy trigger at ``marker``'s text, but not inside the reply's thinking (a call the
    model thinks about is not one it makes)."""
    at = re.escape(marker)
    if thinking_opened:  # the template opened <think>: the reply's calls come after </think>
        return rf"^[\s\S]*?</think>[\s\S]*?({at})[\s\S]*$"
    return rf"^(?:\s*<think>[\s\S]*?</think>|(?!\s*<think>))[\s\S]*?({at})[\s\S]*$"


def dialect_of(template: str | None) -> str:
    """The form in which a model with this chat template writes tool calls."""
    text = template or ""
    if MISTRAL_OPEN in text:
        return MISTRAL_ARGS if MISTRAL_ARGS_MARK in text else MISTRAL
    if OPEN in text:
        return HERMES
    if PYTHON_TAG in text or ("ipython" in text and '"parameters"' in text):
        return LLAMA3
    return HERMES


@dataclass(frozen=True)
class Grammar:
    """A grammar a reply is sampled under: with ``patterns`` or ``tokens`` it is lazy, and holds
    the reply only from where a pattern's group matches or one of the tokens is sampled;
    ``root`` is the rule it starts from."""

    gbnf: str
    patterns: tuple[str, ...] = ()
    tokens: tuple[int, ...] = ()
    root: str = "root"

    @property
    def lazy(self) -> bool:
        return bool(self.patterns or self.tokens)


FALLBACK_PROMPT = (
    "You can call functions (tools) to help. To call one, answer with only:\n"
    "<tool_call>\n"
    '{{"name": "<function name>", "arguments": {{<its arguments as JSON>}}}}\n'
    "</tool_call>\n"
    "{parallel}The results come back in the next message, inside <tool_response>. The "
    "functions:\n{tools}"
)


class ToolsError(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def to_json(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        if index is not None:
            out["index"] = index
        return out


@dataclass(frozen=True)
class ToolRequest:
    tools: tuple[dict[str, Any], ...]  # OpenAI's {"type": "function", "function": {...}}
    choice: str  # "auto", "required", or the one function's name
    parallel: bool

    def to_json(self) -> str:
        return json.dumps({"tools": self.tools, "choice": self.choice, "parallel": self.parallel})

    @classmethod
    def from_json(cls, text: str) -> ToolRequest:
        data = json.loads(text)
        return cls(tuple(data["tools"]), data["choice"], bool(data["parallel"]))

    @property
    def names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]

    def grammar(
        self,
        dialect: str = HERMES,
        marker_tokens: dict[str, int] | None = None,
        thinking_opened: bool = False,
    ) -> Grammar:
        """The grammar of this request's calls in ``dialect``. ``marker_tokens``: the markers
        that are single control tokens of the model's vocabulary (the grammar asks for the
        token, and a lazy grammar starts at it; a token trigger cannot tell thinking from
        answer). ``thinking_opened``: the template opened a <think> the reply begins in."""
        tokens = marker_tokens or {}
        chosen = [t for t in self.tools if self.choice in ("auto", "required")
                  or t["function"]["name"] == self.choice]  # fmt: skip
        names = [t["function"]["name"] for t in chosen]
        defs: dict[str, Any] = {}
        params = [_hoist_defs(_enforceable(t["function"].get("parameters") or {}), f"t{i}_",
                              defs) for i, t in enumerate(chosen)]  # fmt: skip
        lazy = self.choice == "auto"
        many = self.parallel and not lazy

        def lit(marker: str) -> str:
            return f"<[{tokens[marker]}]>" if marker in tokens else json.dumps(marker)

        def after(opener: str, extra: str = WS) -> str:
            """What may follow ``opener`` in the token a text trigger matched in."""
            return extra if lazy and opener not in tokens else ""

        def held(rules: str, opener: str) -> Grammar:
            if not lazy:
                return Grammar(rules)
            if opener in tokens:  # the token only: the grammar asks for the token, not its text
                return Grammar(rules, tokens=(tokens[opener],))
            return Grammar(rules, patterns=(trigger(opener, thinking_opened),))

        if dialect == MISTRAL_ARGS:
            body, arg_rules = schema_rules({f"args{i}": p for i, p in enumerate(params)}, defs)
            # Some write an id first: name[CALL_ID]a1b2c3d4e[ARGS]{...}.
            call_id = f"({lit(MISTRAL_ID_MARK)} [A-Za-z0-9]{{9}})?"
            call = " | ".join(f"{json.dumps(n)} {call_id} {lit(MISTRAL_ARGS_MARK)} {r}"
                              for n, r in zip(names, arg_rules, strict=True))  # fmt: skip
            top = f"root ::= tool-call{'+' if many else ''}\n"
            opener = f"{lit(MISTRAL_OPEN)} {after(MISTRAL_OPEN)}"
            return held(top + f"tool-call ::= {opener} ({call})\n" + body, MISTRAL_OPEN)
        key = "parameters" if dialect == LLAMA3 else "arguments"
        objects = {
            f"call{i}": {
                "type": "object",
                "properties": {"name": {"const": n}, key: p},
                "required": ["name", key],
                "additionalProperties": False,
            }
            for i, (n, p) in enumerate(zip(names, params, strict=True))
        }
        body, call_rules = schema_rules(objects, defs)
        call = f"call ::= {' | '.join(call_rules)}\n"
        if dialect == MISTRAL:
            more = f' ({WS} "," {WS} call)*' if many else ""
            top = f'root ::= {lit(MISTRAL_OPEN)} {WS} "[" {WS} call{more} {WS} "]"\n'
            return held(top + call + body, MISTRAL_OPEN)
        if dialect == LLAMA3:  # one call, the whole reply, after an optional <|python_tag|>
            rules = f"root ::= ({lit(PYTHON_TAG)} {WS})? call\n" + call + body
            if not lazy:
                return Grammar(rules)
            tag = (tokens[PYTHON_TAG],) if PYTHON_TAG in tokens else ()
            return Grammar(rules, patterns=(LLAMA3_TRIGGER,), tokens=tag)
        repeat = f" ({WS} tool-call)*" if many else ""
        tool_call = f"tool-call ::= {lit(OPEN)} {after(OPEN, JUNK)} call {WS} {lit(CLOSE)}\n"
        return held(f"root ::= tool-call{repeat}\n" + tool_call + call + body, OPEN)


def _hoist_defs(schema: Any, prefix: str, defs: dict[str, Any]) -> Any:
    """``schema`` with its $defs (and definitions) moved into ``defs`` under ``prefix`` and its
    references rewritten: the converter resolves references from the root of the one schema
    that holds every tool."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    for key in ("$defs", "definitions"):
        for name, sub in (schema.pop(key, None) or {}).items():
            defs[prefix + name] = _rewrite_refs(sub, prefix)
    return _rewrite_refs(schema, prefix)


def _rewrite_refs(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite_refs(v, prefix) for k, v in value.items()}
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            out["$ref"] = "#/$defs/" + prefix + ref.rsplit("/", 1)[-1]
        return out
    if isinstance(value, list):
        return [_rewrite_refs(v, prefix) for v in value]
    return value


def parse_request(body: dict[str, Any]) -> ToolRequest | None:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls``; None when no tool may be called."""
    tools = body.get("tools")
    choice = body.get("tool_choice", "auto")
    parallel = body.get("parallel_tool_calls", True)
    if tools is None or tools == []:
        if choice not in ("auto", "none", None):
            raise ToolsError("'tool_choice' needs 'tools'.", "tool_choice")
        return None
    if not isinstance(tools, list):
        raise ToolsError("'tools' must be a list of functions.", "tools")
    checked: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise ToolsError(f"tools[{i}] must be a function: type 'function' and its "
                             "'function' object.", "tools")  # fmt: skip
        name = fn.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ToolsError(f"tools[{i}].function.name must be 1-64 letters, digits, _ . or -.",
                             "tools")  # fmt: skip
        params = fn.get("parameters", {"type": "object", "properties": {}})
        try:
            grammar(_enforceable(params))
        except SchemaError as exc:
            raise ToolsError(f"tools[{i}].function.parameters: {exc}", "tools") from None
        checked.append({"type": "function", "function": {**fn, "parameters": params}})
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        wanted = fn.get("name") if isinstance(fn, dict) else None
        if wanted not in [t["function"]["name"] for t in checked]:
            raise ToolsError("'tool_choice' names no function in 'tools'.", "tool_choice")
        choice = wanted
    elif choice is None:
        choice = "auto"
    elif choice not in ("auto", "none", "required"):
        raise ToolsError("'tool_choice' must be auto, none, required or a function.",
                         "tool_choice")  # fmt: skip
    if choice == "none":
        return None
    if not isinstance(parallel, bool):
        raise ToolsError("'parallel_tool_calls' must be true or false.", "parallel_tool_calls")
    request = ToolRequest(tuple(checked), choice, parallel)
    try:
        request.grammar()
    except SchemaError as exc:
        raise ToolsError(f"tools: {exc}", "tools") from None
    return request


def _enforceable(schema: Any) -> Any:
    """``schema`` without the keywords a grammar cannot hold (see the module docstring)."""
    if isinstance(schema, list):
        return [_enforceable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: _enforceable(v) for k, v in value.items()}
        elif key == "format" and value not in ("date", "time", "date-time", "uuid"):
            continue
        elif key in ENFORCED:
            out[key] = _enforceable(value) if key not in ("required", "enum", "const") else value
        elif key in ANNOTATIONS:
            out[key] = value
    return out


# -- the prompt ------------------------------------------------------------------------------


def for_template(
    messages: list[dict[str, Any]], request: ToolRequest | None, dialect: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(messages, tools) to render: as they are, with the tools, for a template that knows
    tools (``dialect``: how it writes calls); else (``dialect`` None) tool calls and results
    written out as text and the tools described in the system message (Hermes' format, which
    the fallback grammar and parser read)."""
    if dialect is not None:
        rendered = []
        for m in messages:
            m = dict(m)
            if m.get("tool_calls"):
                # Templates (Qwen's, Hermes', Llama's) write arguments with tojson: objects.
                m["tool_calls"] = [
                    {**c, "function": {**c["function"], "arguments": _loads(c["function"])}}
                    for c in m["tool_calls"]
                ]
                if dialect in (MISTRAL, MISTRAL_ARGS):
                    m["tool_calls"] = [{**c, "id": _mistral_id(c.get("id"))}
                                       for c in m["tool_calls"]]  # fmt: skip
            if m.get("role") == "tool" and dialect in (MISTRAL, MISTRAL_ARGS):
                m["tool_call_id"] = _mistral_id(m.get("tool_call_id"))
            rendered.append(m)
        if request is None:
            return rendered, None
        # Templates read each tool's description as text (Hermes' adds it to a string).
        tools = [{**t, "function": {"description": "", **t["function"]}} for t in request.tools]
        return rendered, tools
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            text = f"<tool_response>\n{m.get('content', '')}\n</tool_response>"
            out.append({"role": "user", "content": text})
        elif role == "assistant" and m.get("tool_calls"):
            blocks = [
                f"{OPEN}\n"
                + json.dumps({"name": c["function"]["name"], "arguments": _loads(c["function"])})
                + f"\n{CLOSE}"
                for c in m["tool_calls"]
            ]
            text = "\n".join(filter(None, [m.get("content") or "", *blocks]))
            out.append({"role": "assistant", "content": text})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    if request is not None:
        described = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in request.tools)
        parallel = "One block per call; several calls may follow each other.\n" if (
            request.parallel) else "Call at most one function at a time.\n"  # fmt: skip
        note = FALLBACK_PROMPT.format(tools=described, parallel=parallel)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{note}"}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out, None


def _mistral_id(call_id: Any) -> str:
    """A call id as Mistral's templates demand it (9 letters and digits; they raise on any
    other), the same for a call and its result."""
    text = str(call_id or "")
    if re.fullmatch(r"[A-Za-z0-9]{9}", text):
        return text
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:9]


def _loads(function: dict[str, Any]) -> Any:
    args = function.get("arguments")
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args if args is not None else {}


# -- reading the reply -----------------------------------------------------------------------


def parse_reply(text: str, request: ToolRequest) -> tuple[str, list[ToolCall]]:
    """(the reply's text outside its calls, the calls): Hermes/Qwen, Mistral or Llama 3.x.
    A call to a function that was not offered, or one that is not JSON, stays text."""
    names = set(request.names)
    calls: list[ToolCall] = []
    content = text
    if OPEN in text:
        # Each call read as JSON from its brace on (not up to the first "</tool_call>": an
        # argument may contain that text).
        kept, pos = [], 0
        while (at := text.find(OPEN, pos)) >= 0:
            kept.append(text[pos:at])
            call, end = _call_at(text, at + len(OPEN), names)
            if call is None:
                kept.append(OPEN)
                pos = at + len(OPEN)
                continue
            calls.append(call)
            rest = text[end:]
            stripped = rest.lstrip()
            pos = end + (len(rest) - len(stripped))
            if stripped.startswith(CLOSE):
                pos += len(CLOSE)
        kept.append(text[pos:])
        content = "".join(kept)
    elif MISTRAL_OPEN in text:
        before, _, rest = text.partition(MISTRAL_OPEN)
        found = _mistral_calls(rest, names)
        if found:
            calls, content = found, before
    elif PYTHON_TAG in text:  # Llama 3.x, after words or not
        before, _, rest = text.partition(PYTHON_TAG)
        call = _call(rest, names) if rest.lstrip().startswith("{") else None
        if call is not None:
            calls, content = [call], before
    elif text.lstrip().startswith("{"):  # Llama 3.x: the whole reply is the call
        call = _call(text, names)
        if call is not None:
            calls, content = [call], ""
    if not request.parallel:
        calls = calls[:1]
    return (content if calls else _unmarked(content)).strip(), calls


def _unmarked(text: str) -> str:
    """``text`` without the markers that are control tokens in their vocabularies: kept in a
    tools reply's text to read its calls, they are no words for the person when none was."""
    for marker in (MISTRAL_OPEN, MISTRAL_ARGS_MARK, MISTRAL_ID_MARK, PYTHON_TAG):
        text = text.replace(marker, "")
    return text


def _mistral_calls(rest: str, names: set[str]) -> list[ToolCall]:
    """The calls after ``[TOOL_CALLS]``: a JSON list of calls (Mistral v3), or one or more
    ``name[ARGS]{...}`` (newer Mistral templates, with an optional ``[CALL_ID]id``); none
    unless all of them read, but for a last one cut off."""
    rest = rest.strip()
    if rest.startswith("["):
        try:
            items = json.loads(rest)
        except ValueError:
            return []
        found = [_call(json.dumps(i), names) for i in items] if isinstance(items, list) else []
        return [c for c in found if c] if found and all(found) else []
    # Read in order, each call's arguments as JSON from their brace (a string in them may hold
    # "[TOOL_CALLS]": a grammar takes a control token by its text).
    out: list[ToolCall] = []
    pos = 0
    while True:
        args_at = rest.find(MISTRAL_ARGS_MARK, pos)
        name = rest[pos : max(args_at, pos)].partition(MISTRAL_ID_MARK)[0].strip()
        call, end = None, pos
        if args_at >= 0:
            start = args_at + len(MISTRAL_ARGS_MARK)
            start += len(rest[start:]) - len(rest[start:].lstrip())
            try:
                value, end = json.JSONDecoder().raw_decode(rest, start)
                call = _call(json.dumps({"name": name, "arguments": value}), names)
            except ValueError:
                pass
        if call is None:
            # The last call cut off (the reply ran out of tokens) is left; any other: none.
            return out if out and MISTRAL_OPEN not in rest[pos:] else []
        out.append(call)
        following = rest[end:].lstrip()
        if not following.startswith(MISTRAL_OPEN):
            return out
        pos = len(rest) - len(following) + len(MISTRAL_OPEN)


def _call_at(text: str, start: int, names: set[str]) -> tuple[ToolCall | None, int]:
    """The call whose JSON begins within a few characters of ``start`` (see JUNK), and
    where it ends."""
    brace = text.find("{", start)
    if brace < 0 or brace - start > 32:
        return None, start
    try:
        data, end = json.JSONDecoder().raw_decode(text, brace)
    except ValueError:
        return None, start
    call = _call(json.dumps(data), names)
    return call, (end if call is not None else start)


def _call(raw: str, names: set[str]) -> ToolCall | None:
    """The call in ``raw``: a JSON object, after whatever few characters the grammar let
    through between the opener and the call (see JUNK)."""
    start = raw.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(raw[start:])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", data["name"], json.dumps(args))


class CallStream:
    """A streaming reply's text, held back from where a tool call may begin: what streams as
    ``content`` is text before any call; the calls come out whole at the end."""

    def __init__(self) -> None:
        self.text = ""
        self._sent = 0
        self._holding = False

    def feed(self, piece: str) -> str:
        """The part of the text so far that can go out as content now."""
        self.text += piece
        if self._holding:
            return ""
        if self._sent == 0:  # nothing out yet: the reply's start decides (no copy after that)
            start = self.text.lstrip()
            if not start:
                return ""
            if start.startswith(("{", PYTHON_TAG)):
                self._holding = True  # a Llama 3.x call may be the whole reply
                return ""
        for marker in (OPEN, MISTRAL_OPEN, PYTHON_TAG):
            at = self.text.find(marker, self._sent)
            if at >= 0:
                self._holding = True
                out, self._sent = self.text[self._sent : at], at
                return out
        # Keep back an end that could be the beginning of a marker.
        keep = max((k for m in (OPEN, MISTRAL_OPEN, PYTHON_TAG) for k in range(1, len(m))
                    if self.text.endswith(m[:k])), default=0)  # fmt: skip
        end = len(self.text) - keep
        out, self._sent = self.text[self._sent : end], max(self._sent, end)
        return out

    def finish(self, request: ToolRequest) -> tuple[str, list[ToolCall]]:
        """(content not yet sent, the calls)."""
        content, calls = parse_reply(self.text, request)
        if not calls:
            return _unmarked(self.text[self._sent :]), []
        sent = self.text[: self._sent].strip()
        rest = content[len(sent) :] if content.startswith(sent) else ""
        return rest, calls
