"""WebSocket endpoints written with the ecosystem's frameworks: Starlette and FastAPI."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket


async def starlette_echo(websocket: StarletteWebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=offered[0] if offered else None)
    async for text in websocket.iter_text():
        if text == "close":
            await websocket.close(code=4321, reason="asked to")
            return
        await websocket.send_text(text.upper())


starlette_app = Starlette(routes=[WebSocketRoute("/ws", starlette_echo)])

fastapi_app = FastAPI()


@fastapi_app.websocket("/items/{item_id}")
async def item_feed(websocket: WebSocket, item_id: int) -> None:
    if item_id == 0:
        await websocket.close(code=1008)  # before the accept: refused with 403
        return
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"item": item_id, "got": data})
    except WebSocketDisconnect:
        pass
