"""The data directory: only the engine's user may read it or write it.

The audit log, the kill switch's state, the logs and the development key live there. Before
anything (logging included) creates a file in it, the engine refuses a directory that group or
others can write (someone else could have replaced what is in it), then sets 0700 on it and
every directory below and 0600 on every file, whoever created them; the ``run`` command also
sets the umask 0o077, so what it creates later is born 0600 (docs/SECURITY.md).

Checks read mode bits, never ``access()``: run as root, ``access()`` allows everything.

Below every layer (the engine and ``xorj-actors check`` use it): it imports nothing from
``xorj_actors``.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "LOCK_FILE",
    "UMASK",
    "DataDirError",
    "DataDirInUse",
    "data_dir_problem",
    "lock_data_dir",
    "readable_by_others",
    "secure_data_dir",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
#: The ``run`` command's umask: nothing it creates is group- or world-accessible.
UMASK = 0o077
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
#: The engine's lock in the data directory: held (``flock``) by the running engine, and by
#: whatever must not run beside it (``keys rotate``).
LOCK_FILE = "engine.lock"


class DataDirError(RuntimeError):
    """The data directory cannot be made private (others can write it, or a mode cannot be set)."""


class DataDirInUse(DataDirError):
    """Another process (an engine, or a command that excludes it) holds the data directory's lock."""


def _tree(path: Path) -> list[tuple[Path, os.stat_result]]:
    """``path`` and everything below it, with ``lstat`` (symbolic links are not followed)."""
    out = [(path, path.lstat())]
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            p = Path(root, name)
            try:
                out.append((p, p.lstat()))
            except FileNotFoundError:
                continue  # gone meanwhile (a temporary file renamed into place)
    return out


def data_dir_problem(path: Path) -> str | None:
    """Why ``path`` may not be used as a data directory (group or others can write it or a
    directory below it), or None. A directory that does not exist yet is no problem."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_dir():
        return f"data directory {path} is not a directory"
    for p, st in _tree(path):
        if stat.S_ISDIR(st.st_mode) and st.st_mode & _OTHERS_WRITE:
            return (
                f"{'data directory' if p == path else 'directory'} {p} is mode {stat.S_IMODE(st.st_mode):04o}: "
                "group or others can write it; refusing to start (chmod 0700 it and check what is in it)"
            )
    return None


def readable_by_others(path: Path) -> list[str]:
    """Entries under ``path`` (itself included) that group or others may read or enter, as
    ``"<path> <mode>"``; symbolic links are not counted (their mode means nothing)."""
    return [
        f"{p} {stat.S_IMODE(st.st_mode):04o}"
        for p, st in _tree(Path(path))
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077
    ]


def secure_data_dir(path: Path) -> list[str]:
    """Create ``path`` (0700) if missing, refuse it if group or others can write it, then set
    0700 on every directory and 0600 on every other entry in it (symbolic links are left alone).

    Returns:
        ``"<path> <old mode> -> <new mode>"`` for every mode changed, for a log line.

    Raises:
        DataDirError: group or others can write a directory, or a mode cannot be set.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    except OSError as exc:
        raise DataDirError(f"cannot create data directory {path}: {exc.strerror}") from None
    problem = data_dir_problem(path)
    if problem is not None:
        raise DataDirError(problem)
    changed = []
    for p, st in _tree(path):
        if stat.S_ISLNK(st.st_mode):
            continue  # chmod would follow it out of the directory
        want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        have = stat.S_IMODE(st.st_mode)
        if have == want:
            continue
        try:
            os.chmod(p, want)  # not a link at lstat; only the engine's user can write here
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DataDirError(f"cannot set mode {want:04o} on {p} (mode {have:04o}): {exc.strerror}") from None
        changed.append(f"{p} {have:04o} -> {want:04o}")
    return changed


def lock_data_dir(path: Path) -> int:
    """Take the data directory's lock (:data:`LOCK_FILE`, created 0600) and write our pid in it.

    The lock lasts until the returned descriptor is closed (or the process ends, however it ends).

    Raises:
        DataDirInUse: another process holds it.
    """
    fd = os.open(Path(path) / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(f"data directory {path} is in use by another engine process") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
