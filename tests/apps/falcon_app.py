"""A Falcon (WSGI) app for the end-to-end tests: a resource with GET and a JSON POST, and an error."""

from __future__ import annotations

import falcon


class Things:
    def __init__(self) -> None:
        self.things: list[dict[str, object]] = []

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"things": self.things, "limit": req.get_param_as_int("limit")}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        thing = req.get_media()
        if not isinstance(thing, dict) or "name" not in thing:
            raise falcon.HTTPBadRequest(title="a thing needs a name")
        self.things.append(thing)
        resp.status = falcon.HTTP_201
        resp.media = thing


class Thing:
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.text = f"thing {name}"
        resp.content_type = falcon.MEDIA_TEXT


app = falcon.App()
app.add_route("/things", Things())
app.add_route("/things/{name}", Thing())
