"""A JSON Schema as a llama.cpp grammar (GBNF): a reply sampled under it always parses, and
validates against the schema (OpenAI's ``response_format``).

The conversion is llama.cpp's own, in the port llama-cpp-python ships
(``llama_cpp.llama_grammar``). It silently skips what it cannot express, and a reply that then
broke the schema would be a lie, so the schema is checked first: every keyword must be one the
converter honours (or one that only annotates, like ``description``), and anything else is a
SchemaError that names the keyword and where it is.
"""

from __future__ import annotations

import json
from typing import Any

# Honoured by the converter.
ENFORCED = frozenset(
    "type properties required additionalProperties items prefixItems minItems maxItems enum "
    "const anyOf oneOf allOf $ref $defs definitions pattern minLength maxLength format".split()
)
# Annotations: they change nothing a reply must satisfy.
ANNOTATIONS = frozenset(
    "title description default examples $schema $id $comment deprecated readOnly writeOnly "
    "strict".split()
)
TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
FORMATS = frozenset({"date", "time", "date-time", "uuid"})


class SchemaError(ValueError):
    """A schema this engine cannot enforce; the message says what and where."""


def grammar(schema: dict[str, Any] | None) -> str:
    """The GBNF of replies valid under ``schema`` (None: any JSON object)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = {"type": "object"} if schema is None else schema
    check(schema)
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise SchemaError(f"The schema could not be turned into a grammar: {exc}") from None
    # The port's string character lets raw control characters (a newline) into a string,
    # which JSON forbids and strict parsers (pydantic) refuse; llama.cpp's own converter has
    # since excluded them, as here.
    return gbnf.replace(_LOOSE_CHAR, _STRICT_CHAR)


def rules(parts: dict[str, Any], defs: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """GBNF rules for several schemas in one grammar, without a root: (the rules, the name of
    each part's rule, in order). ``defs`` are the ``$defs`` their references point into."""
    from llama_cpp.llama_grammar import SchemaConverter

    for name, schema in parts.items():
        check(schema, name)
    document: dict[str, Any] = {"anyOf": list(parts.values())}
    if defs:
        check({"$defs": defs})
        document["$defs"] = defs
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(document, "stdin")
        names = [
            converter.visit(sub, name) for name, sub in zip(parts, resolved["anyOf"], strict=True)
        ]
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise SchemaError(f"The schema could not be turned into a grammar: {exc}") from None
    return converter.format_grammar().replace(_LOOSE_CHAR, _STRICT_CHAR), names


_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def check(schema: Any, where: str = "schema") -> None:
    """SchemaError unless every part of ``schema`` is enforceable."""
    if isinstance(schema, bool):
        if schema is False:
            raise SchemaError(f"{where} is false: no value could match it.")
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{where} must be an object, not {type(schema).__name__}.")
    for key, value in schema.items():
        at = f"{where}.{key}"
        if key in ANNOTATIONS:
            continue
        if key not in ENFORCED:
            raise SchemaError(
                f"{at}: the keyword '{key}' is not supported (replies could not be held to "
                f"it). Supported: {', '.join(sorted(ENFORCED))}."
            )
        if key == "type":
            kinds = value if isinstance(value, list) else [value]
            bad = [k for k in kinds if k not in TYPES]
            if bad or not kinds:
                raise SchemaError(f"{at}: unknown type {bad or value!r}.")
        elif key == "properties" or key in ("$defs", "definitions"):
            if not isinstance(value, dict):
                raise SchemaError(f"{at} must be an object of schemas.")
            for name, sub in value.items():
                check(sub, f"{at}.{name}")
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SchemaError(f"{at} must be a list of property names.")
        elif key in ("additionalProperties", "items"):
            check(value, at) if not isinstance(value, bool) else None
        elif key in ("prefixItems", "anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise SchemaError(f"{at} must be a non-empty list of schemas.")
            for i, sub in enumerate(value):
                check(sub, f"{at}[{i}]")
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SchemaError(f"{at} must be a non-negative integer.")
        elif key == "enum":
            if not isinstance(value, list) or not value:
                raise SchemaError(f"{at} must be a non-empty list.")
        elif key == "$ref":
            if not isinstance(value, str) or not value.startswith("#/"):
                raise SchemaError(f"{at}: only references inside the schema ('#/...') work.")
        elif key == "format" and value not in FORMATS and not str(value).startswith("uuid"):
            raise SchemaError(
                f"{at}: the format '{value}' is not supported ({', '.join(sorted(FORMATS))})."
            )
        elif key == "pattern" and not isinstance(value, str):
            raise SchemaError(f"{at} must be a string.")
