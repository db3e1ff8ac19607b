"""A real pseudo-terminal for tests of what a command draws on it (progress bars), and the frames drawn."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: One frame of a bar (xorj_actors/_progress.py), escape sequences removed: done, total, rate, time left.
FRAME = re.compile(r"(\d+)/(\d+)\s+([\d,]+) (?:entries|vaults)/s\s+ETA (\d+:\d\d:\d\d)")
#: What a drawn bar leaves on a stream: escape sequences, or the bar's own characters.
BAR_MARKS = re.compile("\x1b|[━╸╺]")
COLUMNS, LINES = 120, 40


def frames(text: str) -> list[tuple[int, int, str]]:
    """Each frame drawn with a rate and an ETA: (done, total, ETA)."""
    return [(int(m[1]), int(m[2]), m[4]) for m in FRAME.finditer(ANSI.sub("", text))]


@contextlib.contextmanager
def _pty() -> Iterator[tuple[int, list[bytes]]]:
    """A pseudo-terminal of :data:`COLUMNS` x :data:`LINES`: its slave's fd, and what reaches the
    master (read as it comes: a full pty would block the writer), complete once the block ends."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed it
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield slave, chunks
    finally:
        with contextlib.suppress(OSError):
            os.close(slave)
        reader.join(30)
        os.close(master)


def run_on_a_terminal(cmd: list[str], env: dict[str, str], *, one_cpu: bool = False) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal and stdout a pipe: (exit code, stdout, stderr).
    ``one_cpu``: pinned to one CPU (its ``os.sched_getaffinity`` says 1)."""
    with _pty() as (slave, chunks):
        pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_cpu else None
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=pin)
        os.close(slave)
        out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


@contextlib.contextmanager
def stderr_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """This process's ``sys.stderr`` on a pseudo-terminal for the block; the list holds what was
    written to it once the block has ended."""
    captured: list[str] = []
    with _pty() as (slave, chunks):
        tty, before = os.fdopen(os.dup(slave), "w", encoding="utf-8"), sys.stderr
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setenv("TERM", "xterm-256color")
        monkeypatch.setenv("COLUMNS", str(COLUMNS))  # rich sizes a console it was given by this
        try:
            yield captured
        finally:
            monkeypatch.setattr(sys, "stderr", before)
            tty.close()
    captured.append(b"".join(chunks).decode(errors="replace"))
