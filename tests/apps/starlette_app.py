"""A Starlette application for the ecosystem tests."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

BACKGROUND_DONE: list[str] = []


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    print("starlette app: startup", file=sys.stderr, flush=True)
    yield {"db": "connected", "visits": []}
    print("starlette app: shutdown", file=sys.stderr, flush=True)


async def home(request: Request) -> Response:
    return PlainTextResponse("hello from starlette")


async def as_json(request: Request) -> Response:
    request.state.visits.append(request.url.path)
    return JSONResponse(
        {
            "db": request.state.db,
            "visits": len(request.state.visits),
            "query": dict(request.query_params),
            "client_host": request.client.host if request.client else None,
            "root_path": request.scope["root_path"],
            "url": str(request.url),
        }
    )


async def item(request: Request) -> Response:
    return JSONResponse({"item_id": request.path_params["item_id"]})


async def stream(request: Request) -> Response:
    n = int(request.query_params.get("n", "5"))

    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"line {i}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


async def body(request: Request) -> Response:
    data = await request.body()
    return JSONResponse({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})


async def form(request: Request) -> Response:
    async with request.form() as fields:
        return JSONResponse({k: str(v) for k, v in fields.items()})


def record(name: str) -> None:
    BACKGROUND_DONE.append(name)


async def background(request: Request) -> Response:
    name = request.query_params["name"]
    return PlainTextResponse("accepted", background=BackgroundTask(record, name))


async def background_done(request: Request) -> Response:
    return JSONResponse(BACKGROUND_DONE)


async def fail(request: Request) -> Response:
    raise RuntimeError("starlette handler failed")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/json", as_json),
        Route("/items/{item_id:int}", item),
        Route("/stream", stream),
        Route("/body", body, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/background", background),
        Route("/background-done", background_done),
        Route("/fail", fail),
    ],
    lifespan=lifespan,
)
