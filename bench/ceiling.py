"""The ceiling of our own stack: the same uvicorn answering prepared bytes from a bare ``async``
endpoint on the event loop (no routing beyond one catch-all, no middleware, no database).

    CEILING_BODY=FILE uvicorn bench.ceiling:app   (bench/http_scale.py starts it)
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ["CEILING_BODY"]).read_bytes()
CREATED = b""


async def answer(request: Request) -> Response:
    if request.method in ("PUT", "POST", "DELETE"):
        await request.body()
        return Response(status_code=204)
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "PUT", "POST", "DELETE"])])
