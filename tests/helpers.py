"""Small helpers shared by the suite."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from supervisors import Actor, Terminated

#: An engine process that trades nothing: no localnet, no execution, a strategy nobody serves.
QUIET_ENGINE_TOML = """
[vaults]
count = 2
[kill_switch]
cooldown_s = 0
ack_deadline_s = 1.0
restart_step_s = 0.05
[localnet]
enabled = false
[execution]
enabled = false
[strategy]
url = "http://127.0.0.1:9"  # nothing listens: the feed stays empty, vaults hold
"""


def cli(*args: str) -> list[str]:
    """The ``xorj-actors`` command line, run by this interpreter."""
    return [sys.executable, "-m", "xorj_actors.cli", *args]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class Watcher(Actor):
    """Collects the Terminated notes of the actors it is told to watch; answers "notes" with them."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[Terminated] = []

    def on_receive(self, message: object) -> object:
        if isinstance(message, Terminated):
            self.notes.append(message)
        elif message == "notes":
            return tuple(self.notes)
        return None

    def watch_ref(self, ref) -> None:
        self.watch(ref)


def notes_of(watcher) -> tuple[Terminated, ...]:
    """The Terminated notes a :class:`Watcher` has collected, asked of it."""
    return watcher.ask("notes", timeout=5)


def audit_rows_in(data_dir: Path) -> list[tuple[str, str, dict]]:
    """(event type, actor, details) of every entry of the SQLite audit log in ``data_dir``, chain
    by chain (the default chain's table, then each node's: docs/AUDIT.md, "Chains")."""
    db = sqlite3.connect(data_dir / "audit.db")
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND (name = 'audit_entries' OR name LIKE 'audit\\_entries\\_%' ESCAPE '\\') ORDER BY name"
        )]
        rows = [r for t in tables for r in db.execute(f"SELECT event_type, actor, details FROM {t} ORDER BY sequence")]
    finally:
        db.close()
    return [(t, a, json.loads(d)) for t, a, d in rows]
