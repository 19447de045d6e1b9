"""An application factory, for --factory and module:factory()."""

from __future__ import annotations

from typing import Any

CALLS: list[int] = []


def create_app() -> Any:
    CALLS.append(1)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b"made by the factory (calls: %d)" % len(CALLS)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
