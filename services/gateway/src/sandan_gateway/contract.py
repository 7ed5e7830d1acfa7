"""The public event contract, served for subscribers: `/asyncapi.json` and every event's JSON Schema under
`/schemas/<topic>/<Type>.v<version>.json`, the path its `$id` (and the CloudEvents `ce_dataschema`) names.

Both come from the installed sandan_contracts package, the same files the services validate with, so what a
subscriber reads here is what the producers are held to. The AsyncAPI document refers to the schemas by relative
path (`schemas/...`), so it resolves against this same origin. No sign-in: the contract is public, the data is not.
A published schema file never changes (a change is a new version, `contracts/README.md`), so caches may keep it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from sandan_contracts.asyncapi import DOCUMENT
from sandan_contracts.schemas import SCHEMA_DIR

router = APIRouter(include_in_schema=False)
# a day: a schema file is immutable, but a county may re-host under another name and wants a bounded cache
SCHEMA_CACHE = "public, max-age=86400"
DOCUMENT_CACHE = "public, max-age=300"  # grows when a topic or event type is added


class SchemaFiles(StaticFiles):
    """The schema folder, JSON files only, with caching and CORS headers (AsyncAPI Studio and other browser tools
    fetch `$ref`s cross-origin); a directory or another file type is a 404."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not path.endswith(".json"):
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = SCHEMA_CACHE
            response.headers["access-control-allow-origin"] = "*"
        return response


@router.get("/asyncapi.json")
async def asyncapi() -> FileResponse:
    return FileResponse(DOCUMENT, media_type="application/json",
                        headers={"cache-control": DOCUMENT_CACHE, "access-control-allow-origin": "*"})


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/schemas", SchemaFiles(directory=SCHEMA_DIR, follow_symlink=False), name="schemas")
