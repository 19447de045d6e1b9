"""The error log end to end: what a client puts in an application's exception cannot forge log lines."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import TricornProcess
from tests.e2e.test_http import log_lines

pytestmark = pytest.mark.e2e

# A whole error-log line, as a client would like to slip one in, and a terminal escape after it.
FORGED = "[2026-01-01 00:00:00 +0000] [1] [ERROR] forged line"
CLIENT_TEXT = f"\r\n{FORGED}\x1b[31m"
RECORD = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[[A-Z]+\] ")


@pytest.mark.parametrize(
    ("app", "message"),
    [
        pytest.param("tests.apps.basic:app", "exception in asgi application", id="asgi"),
        pytest.param("tests.apps.wsgi_basic:app", "exception in wsgi application", id="wsgi"),
    ],
)
def test_client_text_in_an_app_exception_is_logged_escaped(
    tricorn: type[TricornProcess], app: str, message: str
) -> None:
    server = tricorn([app]).wait_ready()
    response = httpx.get(
        f"{server.url}/error-client-text?text={quote(CLIENT_TEXT)}",
        headers={"x-client-text": "from the header"},
    )
    assert response.status_code == 500
    for leak in ("Traceback", "cannot handle", "forged", "from the header"):
        assert leak not in response.text

    (last,) = log_lines(server, 1, "ValueError: cannot handle")
    assert last == r"ValueError: cannot handle \x0d\x0a" + FORGED + r"\x1b[31m"
    output = server.output()
    assert "\x1b" not in output
    assert "\r" not in output
    lines = output.splitlines()
    assert not [line for line in lines if line.startswith(FORGED)]
    (record,) = [i for i, line in enumerate(lines) if RECORD.match(line) and "[ERROR]" in line]
    assert message in lines[record]
    # One record: its traceback follows it line by line, the chained KeyError first, up to the ValueError.
    traceback = lines[record + 1 : lines.index(last) + 1]
    assert not [line for line in traceback if RECORD.match(line)]
    assert traceback[0] == "Traceback (most recent call last):"
    assert "KeyError: 'from the header'" in traceback
    assert "The above exception was the direct cause of the following exception:" in traceback
    assert traceback.count("Traceback (most recent call last):") == 2
    assert any(line.startswith('  File "') and "/tests/apps/" in line for line in traceback)
