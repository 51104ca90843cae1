"""Replacing an export (JSON files and the images they point at) in one atomic step.

Several names (`ram_finetune.json`, `label_studio_tasks.json`, `images/`) cannot be
renamed together, so each is a symlink through one switch: `<out>/<name>` points at
`.ram-export/current/<name>`, and `.ram-export/current` points at a generation folder
`.ram-export/gen-<id>` that holds a whole export. A new export is written into a fresh
generation, flushed to disk, and made visible by replacing the `current` link (one
`rename`). A kill at any moment therefore leaves the previous export whole or the new one
whole, never a mix; a generation left behind by a crash is removed by the next export.

An export written by earlier versions (real files instead of links) is first adopted as a
generation (hard links, no copy), then each name is swapped for its link with its content
unchanged, so the old export stays readable through the migration too.

Stdlib only (no FiftyOne), so a test can kill a process in the middle of it cheaply.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["STORE", "ExportBusyError", "ExportTransaction", "crash_point"]

STORE = ".ram-export"
_CURRENT = "current"
_GEN_PREFIX = "gen-"
_LOCK = "lock"
_LEGACY_STAGING_PREFIXES = (".ram-export-",)  # staging folders of the version before generations
# Tests set this to a point name (see `crash_point` calls) to SIGKILL the process there.
_KILL_ENV = "RAM_ANNOTATE_TEST_KILL_AT"


class ExportBusyError(RuntimeError):
    """Another process is exporting into the same folder."""


def crash_point(name: str) -> None:
    """Die by SIGKILL here if the test environment asks for it (a real, un-catchable kill)."""
    if os.environ.get(_KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a file or folder tree (copy where hard links are impossible)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link, symlinks=True)
    else:
        link(str(source), str(target))


class ExportTransaction:
    """Write a new export into `self.folder`, then `commit()`; `abort()` (or a crash) leaves
    the previous export as it was."""

    def __init__(self, out: Path, names: Sequence[str], *, optional_names: Sequence[str] = ()) -> None:
        """`names`: what this export writes. `optional_names`: names an earlier export may
        have linked (say, `images` when this one copies none); they are taken over only if
        they are our links, never if they are someone's real files."""
        self.out = out
        self.store = out / STORE
        ours = [n for n in optional_names if n not in names and self._is_our_link(out / n)]
        self.names = tuple(names) + tuple(ours)
        self.folder: Path | None = None
        self._lock_fd: int | None = None

    def _is_our_link(self, path: Path) -> bool:
        return path.is_symlink() and os.readlink(path).startswith(f"{STORE}/")

    # -- start -----------------------------------------------------------------------
    def begin(self) -> Path:
        """Lock the output folder, clear what crashed exports left, and open a new generation."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.store.mkdir(exist_ok=True)
        self._lock()
        self.remove_leftovers()
        self.folder = self.store / f"{_GEN_PREFIX}{time.time_ns():x}-{secrets.token_hex(3)}"
        self.folder.mkdir()
        return self.folder

    def _current_generation(self) -> str | None:
        link = self.store / _CURRENT
        return os.readlink(link) if link.is_symlink() else None

    def remove_leftovers(self) -> None:
        """Generations no link points at, temporary links, and older versions' staging folders."""
        keep = {self._current_generation(), self.folder.name if self.folder else None, _LOCK}
        for entry in self.store.iterdir():
            if entry.name == _CURRENT or entry.name in keep:
                continue
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.out.iterdir():
            if entry.name.startswith(_LEGACY_STAGING_PREFIXES) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".") and entry.name.endswith(".ram-link") and entry.is_symlink():
                entry.unlink()

    # -- finish ----------------------------------------------------------------------
    def abort(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self._unlock()

    def _lock(self) -> None:
        """One export per folder at a time: a second one would take the first's generation for a leftover."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Windows
            return
        fd = os.open(self.store / _LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ExportBusyError(f"another export into {self.out} is running; wait for it to finish") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def commit(self) -> None:
        assert self.folder is not None, "begin() first"
        _fsync_tree(self.folder)
        crash_point("staged")
        self._adopt_legacy_export()
        self._link_names()
        crash_point("linked")
        self._switch(self.folder.name)
        crash_point("switched")
        self.folder = None
        self.remove_leftovers()
        self._unlink_dangling_names()
        self._unlock()

    def _switch(self, generation: str) -> None:
        tmp = self.store / f".{_CURRENT}.{secrets.token_hex(4)}"
        os.symlink(generation, tmp)
        os.replace(tmp, self.store / _CURRENT)
        _fsync_path(self.store)

    def _link_target(self, name: str) -> str:
        return f"{STORE}/{_CURRENT}/{name}"

    def _adopt_legacy_export(self) -> None:
        """Real files from an earlier version become the current generation (hard links)."""
        legacy = [n for n in self.names if (self.out / n).exists() and not (self.out / n).is_symlink()]
        if not legacy or self._current_generation() is not None:
            return
        adopted = self.store / f"{_GEN_PREFIX}adopted-{secrets.token_hex(3)}"
        adopted.mkdir()
        for name in legacy:
            _link_tree(self.out / name, adopted / name)
        _fsync_tree(adopted)
        self._switch(adopted.name)
        crash_point("adopted")

    def _link_names(self) -> None:
        """Make each name a link through `current` (names already linked are left alone)."""
        for name in self.names:
            path = self.out / name
            if path.is_symlink() and os.readlink(path) == self._link_target(name):
                continue
            tmp = self.out / f".{name}.{secrets.token_hex(4)}.ram-link"
            os.symlink(self._link_target(name), tmp)
            if path.is_dir() and not path.is_symlink():
                # A folder cannot be replaced by a rename; swap the two names instead.
                if not _exchange(tmp, path):
                    os.replace(path, self.store / f".old-{name}-{secrets.token_hex(3)}")
                    os.replace(tmp, path)
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, path)
            crash_point(f"linked:{name}")
        _fsync_path(self.out)

    def _unlink_dangling_names(self) -> None:
        """Names this export does not have (say, no images this time) would point at nothing."""
        for name in self.names:
            path = self.out / name
            if path.is_symlink() and not path.exists():
                path.unlink()
