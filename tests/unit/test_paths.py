"""The rule static files and CGI share for where a request's path may lead (interfaces/paths.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tricorn.interfaces.paths import UnsafePath, decode_segment, inside


@pytest.mark.parametrize(
    ("raw", "name"),
    [(b"a.css", "a.css"), (b"caf%C3%A9", "café"), (b"100%25.txt", "100%.txt"), (b"a..b", "a..b")],
)
def test_plain_names_decode(raw: bytes, name: str) -> None:
    assert decode_segment(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"..",
        b".",
        b"%2e%2e",
        b"%2E.",
        b"a%2fb",
        b"a%5Cb",
        b"a\\b",
        b"%00",
        b"a%0ab",
        b"%7f",
        b"%c0%ae%c0%ae",  # overlong ".."
        b"%c0%af",  # overlong "/"
        b"%ff",
        b"%",
        b"%4",
        b"%g0",
        b"%252e%252e",  # ".." after a second decoding
        b"%25%32%66",  # "%2f" after one decoding
    ],
)
def test_unsafe_segments_are_refused(raw: bytes) -> None:
    with pytest.raises(UnsafePath):
        decode_segment(raw)


def test_inside_follows_symlinks_only_within_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "file").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"s")
    (root / "link").symlink_to(root / "file")
    (root / "sub-link").symlink_to(root / "sub")
    (root / "out").symlink_to(tmp_path / "secret")
    (root / "out-dir").symlink_to(tmp_path)
    (root / "loop").symlink_to(root)
    top = os.path.realpath(root)
    assert inside(top, top) == top
    assert inside(top, os.path.join(top, "file")) == os.path.join(top, "file")
    assert inside(top, os.path.join(top, "link")) == os.path.join(top, "file")
    assert inside(top, os.path.join(top, "sub-link", "x")) == os.path.join(top, "sub", "x")
    assert inside(top, os.path.join(top, "missing")) == os.path.join(top, "missing")
    assert inside(top, os.path.join(top, "out")) is None
    assert inside(top, os.path.join(top, "out-dir", "secret")) is None
    assert inside(top, os.path.join(top, "loop")) is None  # the directory itself under another name
    assert inside(top, os.path.join(top, "loop", "file")) == os.path.join(top, "file")
