"""RFC 9457 problem details (`application/problem+json`) for the JSON API: type, title, status, detail, the request
path as `instance`, and the request field a refusal is about (`field`, and `errors` for several). Never a stack
trace: an unexpected error is logged with its trace and answered with a plain 500.
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi.responses import JSONResponse

from sandan_gateway.backend import Refused

MEDIA_TYPE = "application/problem+json"

# gRPC code -> (HTTP status, slug, title)
_CODES: dict[grpc.StatusCode, tuple[int, str, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid-argument", "The request has a field that is not acceptable"),
    grpc.StatusCode.NOT_FOUND: (404, "not-found", "Not found"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "not-now", "Not possible in the current state"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already-exists", "Already exists"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden", "Not allowed for you"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "not-signed-in", "Sign in first"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "busy", "The service is busy: try again in a moment"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable", "The service is not reachable just now"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout", "The service did not answer in time"),
}
_HTTP: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"), 401: ("not-signed-in", "Sign in first"),
    403: ("forbidden", "Not allowed"), 404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"), 413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"), 422: ("invalid-input", "The input is not acceptable"),
    429: ("too-many-requests", "Too many requests"), 500: ("internal", "Something went wrong on our side"),
}


def problem_type(slug: str) -> str:
    return f"urn:sandan:problem:{slug}"


def problem(status: int, title: str, detail: str = "", *, slug: str = "", instance: str = "",
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": problem_type(slug or _HTTP.get(status, ("error", ""))[0]), "title": title,
                            "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def http_status(code: grpc.StatusCode) -> int:
    return _CODES.get(code, (502, "", ""))[0]


def from_refusal(error: Refused, instance: str = "") -> JSONResponse:
    status, slug, title = _CODES.get(error.code, (502, "upstream", "A service failed"))
    headers = {"retry-after": "1"} if status == 503 else None
    return problem(status, title, error.message, slug=slug, instance=instance, field=error.field, headers=headers)


def from_http(status: int, detail: str = "", instance: str = "") -> JSONResponse:
    slug, title = _HTTP.get(status, ("error", "Error"))
    return problem(status, title, detail, slug=slug, instance=instance)


def from_validation(errors: list[dict[str, Any]], instance: str = "") -> JSONResponse:
    """FastAPI's validation errors as one problem naming each field (`body.stars` -> `stars`)."""
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        fields.append({"field": ".".join(loc) or "body", "detail": str(e.get("msg", "invalid"))})
    first = fields[0] if fields else {"field": "body", "detail": "invalid"}
    return problem(422, "The input is not acceptable", f"{first['field']}: {first['detail']}", slug="invalid-input",
                   instance=instance, field=first["field"], errors=fields)
