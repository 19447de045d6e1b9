"""``--reload``: watching source files, with watchfiles when it is installed and by polling otherwise.

The watcher runs in a thread of the master and only reports: ``on_change(paths)`` is called from that
thread, and the arbiter turns it into a reload event in its own loop.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

error_log = logging.getLogger("tricorn.error")

# uvicorn's defaults: *.py is watched; hidden files and directories, editor backups and swap files, and
# byte code are not. __pycache__ and the usual virtualenv names are not worth descending into.
DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE = (".*", "*~", "*.py[cod]", "__pycache__", "venv", "node_modules")
# Polling: how often the tree is scanned (watchfiles' polling default is 300 ms; uvicorn's StatReload
# checks every 250 ms).
POLL_INTERVAL = 0.3


class FileFilter:
    """Which paths under ``roots`` matter: a path is excluded when its path relative to its root, or any
    component of it, matches an ``exclude`` glob; else included when its name or its relative path
    matches an ``include`` glob."""

    def __init__(
        self, roots: Sequence[str], include: Iterable[str] = (), exclude: Iterable[str] = ()
    ) -> None:
        self.roots = [Path(root).resolve() for root in roots]
        self.include = (*DEFAULT_INCLUDE, *include)
        self.exclude = (*DEFAULT_EXCLUDE, *exclude)

    def excluded_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude)

    def __call__(self, path: str) -> bool:
        resolved = Path(path)
        relative: Path | None = None
        for root in self.roots:
            try:
                relative = resolved.relative_to(root)
                break
            except ValueError:
                continue
        if relative is None:
            return False
        if any(self.excluded_name(part) for part in relative.parts) or any(
            fnmatch.fnmatchcase(str(relative), pattern) for pattern in self.exclude
        ):
            return False
        return any(
            fnmatch.fnmatchcase(resolved.name, pattern) or fnmatch.fnmatchcase(str(relative), pattern)
            for pattern in self.include
        )


class Reloader:
    """Watches ``dirs`` (default: the working directory) in a thread and calls ``on_change`` with the
    sorted changed paths. ``backend`` is ``"watchfiles"`` or ``"polling"``."""

    def __init__(
        self,
        dirs: Sequence[str],
        include: Iterable[str],
        exclude: Iterable[str],
        on_change: Callable[[list[str]], None],
        force_polling: bool = False,
    ) -> None:
        self.dirs = [str(Path(d).resolve()) for d in (dirs or [os.getcwd()])]
        self.filter = FileFilter(self.dirs, include, exclude)
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backend = "polling"
        self._watch: Any = None
        if not force_polling:
            try:
                # An optional dependency (the reload extra): imported by name, so type checking does
                # not need it.
                self._watch = importlib.import_module("watchfiles").watch
                self.backend = "watchfiles"
            except ImportError:
                pass

    def start(self) -> None:
        for directory in self.dirs:
            if not os.path.isdir(directory):
                error_log.warning("reload: %s is not a directory; not watching it", directory)
        target = self._run_watchfiles if self._watch is not None else self._run_polling
        # Polling takes its first snapshot here, so a change made right after start() is seen.
        self._snapshot: dict[str, int] = self.scan() if self._watch is None else {}
        self._thread = threading.Thread(target=target, name="tricorn-reloader", daemon=True)
        self._thread.start()
        error_log.info("reload: watching %s (%s)", ", ".join(self.dirs), self.backend)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    # -- watchfiles

    def _run_watchfiles(self) -> None:
        dirs = [d for d in self.dirs if os.path.isdir(d)]
        try:
            for changes in self._watch(
                *dirs,
                watch_filter=lambda _change, path: self.filter(path),
                stop_event=self._stop,
                raise_interrupt=False,
                debounce=400,
            ):
                self.on_change(sorted({path for _, path in changes}))
        except Exception as exc:  # an inotify limit, a vanished directory: fall back rather than stop
            if self._stop.is_set():
                return
            error_log.warning("reload: watchfiles failed (%s); polling instead", exc)
            self.backend = "polling"
            self._snapshot = self.scan()
            self._run_polling()

    # -- polling

    def scan(self) -> dict[str, int]:
        """Modification times (ns) of the wanted files under the watched directories."""
        found: dict[str, int] = {}
        for directory in self.dirs:
            for parent, subdirs, files in os.walk(directory):
                subdirs[:] = [d for d in subdirs if not self.filter.excluded_name(d)]
                for name in files:
                    path = os.path.join(parent, name)
                    if self.filter(path):
                        try:
                            found[path] = os.stat(path).st_mtime_ns
                        except OSError:
                            continue
        return found

    def _run_polling(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            current = self.scan()
            previous = self._snapshot
            changed = sorted(
                {p for p in current if previous.get(p) != current[p]} | (previous.keys() - current.keys())
            )
            self._snapshot = current
            if changed:
                self.on_change(changed)
