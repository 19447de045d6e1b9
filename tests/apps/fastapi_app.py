"""A FastAPI application for the ecosystem tests."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, Field

MAIN_THREAD = threading.get_ident()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    print("fastapi app: startup", file=sys.stderr, flush=True)
    yield {"greeting": "hello from lifespan"}
    print("fastapi app: shutdown", file=sys.stderr, flush=True)


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    quantity: int = 1
    tags: list[str] = []


def pagination(offset: int = 0, limit: int = 10) -> dict[str, int]:
    return {"offset": offset, "limit": limit}


def token(x_token: Annotated[str | None, Header()] = None) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return x_token


@app.get("/sync")
def sync_endpoint() -> dict[str, Any]:
    # A plain def endpoint: FastAPI runs it in a worker thread, not on the event loop.
    return {"in_main_thread": threading.get_ident() == MAIN_THREAD, "thread": threading.current_thread().name}


@app.get("/async")
async def async_endpoint(request: Request) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"in_main_thread": threading.get_ident() == MAIN_THREAD, "greeting": request.state.greeting}


@app.post("/items", status_code=201)
async def create_item(item: Item, token: Annotated[str, Depends(token)]) -> dict[str, Any]:
    return {"item": item.model_dump(), "total": item.price * item.quantity}


@app.get("/items")
async def list_items(page: Annotated[dict[str, int], Depends(pagination)]) -> dict[str, Any]:
    return {
        "page": page,
        "items": [f"item-{i}" for i in range(page["offset"], page["offset"] + page["limit"])],
    }


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}
