"""Progress bars of the long-running CLI work: on a terminal, with a rate and an ETA; nothing when piped.

The commands run as an operator runs them: ``python -m xorj_actors.cli audit ...`` in a process of
its own, its stderr a pipe or a real pseudo-terminal (``pty``), its stdout a pipe (it must stay
the command's data alone). The log is large enough for several batches of ``audit verify``
(50,000 rows each) and for its parallel pass (this process and forked workers).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pty
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.audit import TEST_KEY
from tests.terminal import BAR_MARKS, frames, run_on_a_terminal
from xorj_actors._progress import progress_bars, show_progress
from xorj_actors.audit import (
    GENESIS_HASH,
    AuditSettings,
    chain_hash,
    chain_hmac,
    entry_bytes,
    open_store,
    verify_store,
)
from xorj_actors.audit._store import COLUMNS, iter_rows

ENTRIES = 200_000


def _rows(n: int) -> Iterator[tuple]:
    """``n`` valid entries of the default chain, as raw rows (``COLUMNS`` order)."""
    key, prev, details = TEST_KEY.encode(), GENESIS_HASH, '{"i":1}'
    for seq in range(1, n + 1):
        eid = str(uuid.UUID(int=seq, version=4))
        ts = f"2026-12-04T20:{seq // 60_000 % 60:02d}:00.{seq % 1_000_000:06d}Z"
        h = chain_hash(prev, entry_bytes(eid, seq, ts, "TRADE_INTENT", "INFO", "t", None, details))
        yield eid, seq, ts, "TRADE_INTENT", "INFO", "t", None, details, prev, h, chain_hmac(key, h)
        prev = h


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a valid SQLite log of :data:`ENTRIES` entries, written straight in."""
    data_dir = tmp_path_factory.mktemp("big-log")
    open_store(AuditSettings(), data_dir).close()
    insert = f"INSERT INTO audit_entries ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    conn = sqlite3.connect(data_dir / "audit.db")
    rows = _rows(ENTRIES)
    while batch := list(itertools.islice(rows, 50_000)):
        conn.executemany(insert, batch)
    conn.commit()
    conn.close()
    (data_dir / "c.toml").write_text('[engine]\nenvironment = "production"\n[execution]\nenabled = false\n')
    return data_dir


def audit(
    data_dir: Path, *argv: str, stderr_tty: bool, env: dict[str, str] | None = None, one_cpu: bool = False
) -> tuple[int, str, str]:
    """``xorj-actors audit ARGV``: (exit code, stdout, stderr); stdout is a pipe, stderr a pipe or a
    pseudo-terminal. ``one_cpu``: on one CPU, so ``verify`` takes the serial pass (on many CPUs the
    workers may finish the log before the first frame)."""
    cmd = [sys.executable, "-m", "xorj_actors.cli", "audit", *argv, "--config", str(data_dir / "c.toml"),
           "--data-dir", str(data_dir)]
    env = {"PATH": os.environ.get("PATH", ""), "XORJ_AUDIT_HMAC_KEY": TEST_KEY, "TERM": "xterm-256color", **(env or {})}
    if not stderr_tty:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        return done.returncode, done.stdout, done.stderr
    return run_on_a_terminal(cmd, env, one_cpu=one_cpu)


def test_verify_piped_prints_no_bar(big_log: Path) -> None:
    code, out, err = audit(big_log, "verify", stderr_tty=False)
    assert code == 3 and out.startswith(f"UNANCHORED: {ENTRIES} entries"), (out, err)
    assert not BAR_MARKS.search(err), repr(err[:300])


def test_verify_on_a_terminal_shows_a_bar_with_rate_and_eta(big_log: Path) -> None:
    code, out, err = audit(big_log, "verify", stderr_tty=True, one_cpu=True)
    assert code == 3 and out.startswith(f"UNANCHORED: {ENTRIES} entries"), (out, err)
    assert not BAR_MARKS.search(out)  # stdout holds the verdict alone
    drawn = frames(err)
    assert "━" in err and drawn and drawn[-1] == (ENTRIES, ENTRIES, "0:00:00"), repr(err[-500:])
    assert any(done < total for done, total, _ in drawn), drawn  # a rate and a time left while it runs


@pytest.mark.parametrize("env", [{"TERM": "dumb"}, {}], ids=["TERM=dumb", "--no-progress"])
def test_verify_on_a_terminal_without_progress(big_log: Path, env: dict[str, str]) -> None:
    argv = ("verify",) if env else ("verify", "--no-progress")
    code, out, err = audit(big_log, *argv, stderr_tty=True, env=env)
    assert code == 3 and out.startswith("UNANCHORED"), (out, err)
    assert not BAR_MARKS.search(err), repr(err[:300])


def test_export_piped_is_json_lines_alone(big_log: Path) -> None:
    code, out, err = audit(big_log, "export", "--type", "TRADE_INTENT", stderr_tty=False)
    lines = out.splitlines()
    assert code == 0 and len(lines) == ENTRIES and json.loads(lines[-1])["sequence"] == ENTRIES
    assert err == ""


def test_export_to_a_file_on_a_terminal_shows_a_bar(big_log: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    code, out, err = audit(big_log, "export", "-o", str(target), stderr_tty=True)
    assert code == 0 and out == "", err
    assert sum(1 for _ in target.open()) == ENTRIES
    assert frames(err)[-1] == (ENTRIES, ENTRIES, "0:00:00"), repr(err[-500:])


def test_bars_need_a_terminal_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    with progress_bars(stream=stream) as bars:
        assert not bars
        bars.task("verify", 10).advance(10)  # a no-op, not an error
    assert stream.getvalue() == ""
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            monkeypatch.setenv("TERM", "xterm")
            assert show_progress(tty) and not show_progress(tty, enabled=False)
            monkeypatch.setenv("TERM", "dumb")
            assert not show_progress(tty)
    finally:
        os.close(slave)
        os.close(master)


def test_rows_are_reported_once_per_batch_not_per_row(big_log: Path) -> None:
    store = open_store(AuditSettings(), big_log, create=False)
    batches: list[int] = []
    try:
        rows = sum(1 for _ in iter_rows(store, batch=30_000, on_batch=batches.append))
    finally:
        store.close()
    assert rows == ENTRIES and batches == [30_000] * 6 + [20_000]


def test_parallel_verify_reports_the_workers_rows_too(big_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xorj_actors.audit import _verify

    calls = []
    real = _verify._verify_parallel
    monkeypatch.setattr(_verify, "_verify_parallel", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(_verify, "_SPAWN_FACTOR", 1)  # a thread left by another test means spawn
    reports: list[tuple[int, int]] = []
    store = open_store(AuditSettings(), big_log, create=False)
    try:
        result = verify_store(store, TEST_KEY.encode(), workers=2, progress=lambda *r: reports.append(r))
    finally:
        store.close()
    assert result.ok and len(calls) == 1  # the two-process path ran
    done = [d for d, _ in reports]
    assert {t for _, t in reports} == {ENTRIES} and done == sorted(done) and done[-1] == ENTRIES
    assert len(reports) >= 3  # the start, at least one batch of this process, the end
