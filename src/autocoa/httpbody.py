"""Reading a JSON request body with a size limit: shared by the retrieval server and the
OpenAI-compatible agent server."""

from __future__ import annotations

import json
from typing import Any


class BodyError(Exception):
    """A request body that cannot be taken: ``status`` (413 or 400) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def read_json(request: Any, max_bytes: int, parse_error: str = "malformed JSON") -> Any:
    """The parsed body of a Starlette ``request``; refuses a declared or streamed body over
    ``max_bytes`` (413, without reading the rest) and unparsable JSON (400: ``parse_error: why``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyError(413, f"request body of {declared} bytes; at most {max_bytes}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise BodyError(413, f"request body over {max_bytes} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BodyError(400, f"{parse_error}: {e}") from None
    except RecursionError:
        raise BodyError(400, f"{parse_error}: nested too deeply") from None


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def request_body_schema(model: Any) -> dict[str, Any]:
    """FastAPI ``openapi_extra`` declaring a JSON request body with ``model``'s schema: the
    endpoints read their bodies themselves (size limits, their own error shapes), so FastAPI
    cannot see the schema. Pydantic's ``$defs`` references are inlined (OpenAPI keeps
    components elsewhere).

    >>> from autocoa.serve.schemas import ChatRequest
    >>> body = request_body_schema(ChatRequest)["requestBody"]
    >>> schema = body["content"]["application/json"]["schema"]
    >>> body["required"], "$ref" in str(schema), schema["properties"]["messages"]["items"]["properties"]["role"]["enum"]
    (True, False, ['system', 'developer', 'user', 'assistant', 'tool'])
    """
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }
