"""A Flask app for the end-to-end tests: routes, a form post, a file upload, a streamed response."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    return jsonify(item_id=item_id, q=request.args.get("q"), url=request.url, remote=request.remote_addr)


@app.post("/form")
def form() -> Response:
    return jsonify(dict(request.form))


@app.post("/upload")
def upload() -> Response:
    upload = request.files["file"]
    data = upload.read()
    return jsonify(
        filename=upload.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/stream")
def stream() -> Response:
    n = int(request.args.get("n", "5"))

    @stream_with_context
    def lines() -> Iterator[str]:
        for i in range(n):
            yield f"line {i} of {request.path}\n"

    return Response(lines(), mimetype="text/plain")


@app.get("/fail")
def fail() -> str:
    raise RuntimeError("flask handler failed")
