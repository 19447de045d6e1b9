"""Autobahn|Testsuite's fuzzing-client cases against tricorn's WebSocket, driven by ``kosoku`` (PyPI).

kosoku runs the Autobahn case files from Python 3 and writes Autobahn-style reports (an ``index.html``
and one page per case) to ``test-artifacts/autobahn/``.

The default suite runs every case except the big permessage-deflate ones: 12.* and 13.* send 1000
compressed messages per case, up to 128 KiB each, and compressing Autobahn's random payloads costs about
1 ms per 16 KiB on each side, so those 168 cases take close to ten minutes on two cores. The default runs
their first four sizes (16 to 1024 bytes) under every parameter set, 48 cases; 349 cases in all, well under
a minute (9.*, the large-message and many-frame cases, are in it: they take seconds).

All 517 cases (several minutes on two cores) run with::

    TRICORN_AUTOBAHN=all .venv/bin/python -m pytest tests/e2e/test_autobahn.py -o faulthandler_timeout=0

(``faulthandler_timeout=0``: the suite's 120 s stack dump would fire during the long run; it only prints.)

Every case must pass (OK, NON-STRICT or INFORMATIONAL for both the exchange and the close), except the
cases listed in ``EXPECTED_FAILURES`` with the reason. Two cases pass as NON-STRICT rather than OK: 6.4.3
and 6.4.4 send invalid UTF-8 in the middle of one frame, in pieces, and prefer the server to fail at the
bad piece; the framing library hands over a frame once it is whole, so tricorn fails the connection (1007)
at the frame's end, as the RFC allows (as uvicorn does).
The server runs without keepalive pings: a case that outlasts the ping interval would see an unexpected
ping frame and fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TricornProcess

pytestmark = [pytest.mark.e2e, pytest.mark.autobahn]

ARTIFACTS = ROOT / "test-artifacts" / "autobahn"

SLOW_GROUPS = ["12.*", "13.*"]
# 12.1-12.5 and 13.1-13.7 are parameter sets; .1 to .4 are the sizes 16, 64, 256 and 1024 bytes.
SAMPLE = [f"12.{g}.{i}" for g in range(1, 6) for i in range(1, 5)] + [
    f"13.{g}.{i}" for g in range(1, 8) for i in range(1, 5)
]
# case id -> why it does not pass. Empty: every case passes.
EXPECTED_FAILURES: dict[str, str] = {}
_ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}


def run_cases(
    server: TricornProcess, out: Path, include: list[str], exclude: list[str]
) -> dict[str, dict[str, object]]:
    args = ["-o", str(out), "-p", "2"]
    for case in include:
        args += ["-i", case]
    for case in exclude:
        args += ["-x", case]
    args.append(f"{server.host}:{server.port}")
    # A child process: kosoku's runtime is its own (a Rust core), kept out of the test process.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kosoku._cli import main; sys.argv[0] = 'kosoku'; main()",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    index = out / "index.json"
    assert index.exists(), f"kosoku wrote no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    agents = json.loads(index.read_text())
    assert len(agents) == 1
    return next(iter(agents.values()))  # type: ignore[no-any-return]


def check(results: dict[str, dict[str, object]]) -> None:
    failed = {
        case: f"{r['behavior']} / {r['behaviorClose']} (close code {r['remoteCloseCode']})"
        for case, r in results.items()
        if r["behavior"] not in _ACCEPTABLE or r["behaviorClose"] not in _ACCEPTABLE
    }
    unexpected = {case: why for case, why in failed.items() if case not in EXPECTED_FAILURES}
    assert not unexpected, f"autobahn cases failed (reports in {ARTIFACTS}): {unexpected}"


@pytest.mark.timeout(3600)  # the whole suite (TRICORN_AUTOBAHN=all) takes minutes
def test_autobahn(tricorn: type[TricornProcess]) -> None:
    # No keepalive pings: the cases do not expect frames the echo server was not asked for (a case that
    # outlasts the ping interval would see one).
    server = tricorn(
        ["--no-access-log", "--log-level", "warning", "--ws-ping-interval", "none", "tests.apps.ws_apps:echo"]
    ).wait_ready()
    everything = os.environ.get("TRICORN_AUTOBAHN") == "all"
    if everything:
        results = run_cases(server, ARTIFACTS, [], [])
        assert len(results) == 517
    else:
        results = run_cases(server, ARTIFACTS, ["*"], SLOW_GROUPS)
        results |= run_cases(server, ARTIFACTS / "sample", SAMPLE, [])
        assert len(results) == 517 - 216 + len(SAMPLE) == 349  # 12.* and 13.*: 216 cases
    check(results)
    assert "Traceback" not in server.output()
