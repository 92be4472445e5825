"""Tool and response schemas between JSON Schema (the IR's) and what Gemini takes (gemini.md §6.5, §9.9).

Toward Gemini the bridge sends ``parametersJsonSchema`` / ``responseJsonSchema``: plain JSON Schema,
which Gemini CLI itself sends with ``$schema`` and ``additionalProperties`` inside. ``parameters`` (the
OpenAPI-subset proto) would reject most of what Claude Code's and Codex's schemas carry ("Unknown name
"$schema"… Cannot find field", union types, numeric enums). The one thing the API is known to refuse in
JSON Schema is a draft-04 leftover, a boolean ``exclusiveMinimum``/``exclusiveMaximum`` (gemini-cli
#4920): it becomes the number form. ``$schema`` at the root, an annotation, is left out so no meta-schema
URI can trouble the validator.

From a Gemini client both fields are read: ``parametersJsonSchema`` with the CLI's upper-case OpenAPI
type names lowered (its router sends ``"type": "OBJECT"``), ``parameters`` turned into JSON Schema
(types lowered, ``nullable`` into a ``"null"`` type, ``ref``/``defs`` into ``$ref``/``$defs``, numbers
given as strings into numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..common import JSON

__all__ = ["for_gemini", "from_gemini"]

_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
# Keywords whose value is a schema, a list of schemas, or a map of name → schema.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "additional_properties", "property_names")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems", "any_of", "one_of", "all_of", "prefix_items")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "defs", "dependentSchemas",
        "pattern_properties", "dependent_schemas")
# The OpenAPI Schema proto's integer fields, which proto3 JSON may write as strings.
_INTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties",
         "min_items", "max_items", "min_length", "max_length", "min_properties", "max_properties")
# Proto names of the OpenAPI Schema → JSON Schema keyword (the Python SDK sends snake_case, §2.2).
_RENAME = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
           "max_length": "maxLength", "min_properties": "minProperties", "max_properties": "maxProperties",
           "ref": "$ref", "defs": "$defs", "additional_properties": "additionalProperties"}
_OPENAPI_ONLY = ("nullable", "propertyOrdering", "property_ordering", "example")


def _walk(schema: Any, node: Callable[[JSON], JSON]) -> Any:
    """``node`` applied to every subschema, innermost first; anything that is not an object is kept."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _ONE:
        if isinstance(out.get(key), dict):
            out[key] = _walk(out[key], node)
    for key in _MANY:
        if isinstance(out.get(key), list):
            out[key] = [_walk(s, node) for s in out[key]]
    if isinstance(out.get("items"), list):  # draft-04 tuple form
        out["items"] = [_walk(s, node) for s in out["items"]]
    for key in _MAP:
        if isinstance(out.get(key), dict):
            out[key] = {name: _walk(s, node) for name, s in out[key].items()}
    return node(out)


def _draft04_bounds(schema: JSON) -> JSON:
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = schema.get(key)
        if isinstance(flag, bool):
            del schema[key]
            if flag and isinstance(schema.get(bound), int | float):
                schema[key] = schema.pop(bound)
    return schema


def for_gemini(schema: JSON) -> JSON:
    """A client's JSON Schema as Gemini's ``parametersJsonSchema`` takes it."""
    out = _walk(schema, _draft04_bounds)
    if isinstance(out, dict):
        out.pop("$schema", None)
    return out  # type: ignore[no-any-return]


def _lower_types(schema: JSON) -> JSON:
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _TYPES:
        schema["type"] = kind.lower()
    elif isinstance(kind, list):
        schema["type"] = [t.lower() if isinstance(t, str) and t in _TYPES else t for t in kind]
    return schema


def _openapi_node(schema: JSON) -> JSON:
    schema = _lower_types({_RENAME.get(k, k): v for k, v in schema.items()})
    for key in _INTS:
        value = schema.get(_RENAME.get(key, key))
        if isinstance(value, str) and value.isdigit():
            schema[_RENAME.get(key, key)] = int(value)
    if isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/defs/"):
        schema["$ref"] = "#/$defs/" + schema["$ref"][len("#/defs/"):]
    if schema.get("nullable") is True and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    if "example" in schema:
        schema.setdefault("examples", [schema["example"]])
    for key in _OPENAPI_ONLY:
        schema.pop(key, None)
    return schema


def from_gemini(schema: JSON, openapi: bool) -> JSON:
    """A Gemini client's schema as JSON Schema: ``openapi`` for the ``parameters``/``responseSchema``
    proto, else ``parametersJsonSchema``/``responseJsonSchema`` (only its type names are normalised)."""
    return _walk(schema, _openapi_node if openapi else _lower_types)  # type: ignore[no-any-return]
