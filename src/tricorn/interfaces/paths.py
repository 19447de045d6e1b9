"""Where a request's path may lead on disk: the one rule that static files (:mod:`.static`) and CGI
scripts (:mod:`.cgi`) apply before they open or run anything below their directory.

Two steps, because CGI walks its path one segment at a time to the first file (the rest is PATH_INFO,
not a file name) while static files take the whole path:

- :func:`decode_segment`: one path segment, as sent, to the name it is on disk. Nothing that could step
  out of the directory or be read as a separator gets through: ``.`` and ``..`` (encoded or not),
  encoded ``/`` and ``\\``, NUL and other control characters, malformed or double percent-encoding (a
  second decoding anywhere behind us would undo the check), and bytes that are not strict UTF-8 (overlong
  forms of ``.`` and ``/``), and a backslash as sent.
- :func:`inside`: a path built from such names, resolved (symlinks followed): its real path if it is the
  directory itself (only when no name was added) or below it, else None.

What each app does with a refusal (its status, its log line) and its own policy on dotfiles are its own.
"""

from __future__ import annotations

import os
import re

__all__ = ["UnsafePath", "decode_segment", "inside"]

_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class UnsafePath(ValueError):
    """A path segment that is not a plain name below the directory (the message says why)."""


def decode_segment(raw: bytes) -> str:
    """The name ``raw`` (one segment of a path as sent, between slashes) stands for; raises
    :class:`UnsafePath` for anything that is not a plain name (see the module docstring)."""
    if not raw:
        raise UnsafePath("empty path segment")
    if b"\\" in raw:
        raise UnsafePath("backslash in path")
    if b"%" in raw:
        out = bytearray()
        i = 0
        size = len(raw)
        while i < size:
            byte = raw[i]
            if byte == 0x25:  # "%"
                if i + 3 > size:
                    raise UnsafePath("truncated percent escape in path")
                pair = raw[i + 1 : i + 3]
                if pair[0] not in _HEX or pair[1] not in _HEX:
                    raise UnsafePath("invalid percent escape in path")
                value = int(pair, 16)
                if value == 0x2F or value == 0x5C:
                    raise UnsafePath("encoded slash or backslash in path")
                out.append(value)
                i += 3
            else:
                out.append(byte)
                i += 1
        data = bytes(out)
    else:
        data = raw
    try:
        name = data.decode("utf-8")  # strict: overlong forms and surrogates are refused
    except UnicodeDecodeError:
        raise UnsafePath("path is not valid utf-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise UnsafePath("control character in path")
    if name == "." or name == "..":
        raise UnsafePath("dot segment in path")
    if "%" in name and _ESCAPE.search(name):
        raise UnsafePath("double-encoded path")
    return name


def inside(root: str, path: str) -> str | None:
    """The real path of ``path`` if it stays in ``root`` (a real path itself), else None.

    ``path`` is ``root`` joined with names from :func:`decode_segment`; only a symlink can take it
    elsewhere. Below ``root`` is inside; ``root`` itself only when ``path`` is ``root``: a symlink to the
    directory itself is refused too (it makes a loop of names for the same files)."""
    real = os.path.realpath(path)
    if real.startswith(root + os.sep) or (real == root and path == root):
        return real
    return None
