"""Issue 11 item 7: the data directory is the engine user's alone, whoever created what is in it.

Real ``xorj-actors run`` processes, started with the umask of a manual run (022). Tests run as
root, so everything here reads mode bits: ``access()`` would allow root everything.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import QUIET_ENGINE_TOML, cli, wait_until
from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.audit import open_store
from xorj_actors.config import load_config
from xorj_actors.engine import data_dir_problem, secure_data_dir
from xorj_actors.ops.ctl import CtlError, request


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(QUIET_ENGINE_TOML)
    return path


def _manual_umask() -> None:
    os.umask(0o022)  # an operator's shell


class Run:
    """``xorj-actors run`` as an operator starts it by hand (umask 022)."""

    def __init__(self, config: Path, data_dir: Path, log: Path) -> None:
        self.socket = data_dir / load_config(config).debug_socket.path
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                cli("run", "--config", str(config), "--data-dir", str(data_dir)),
                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **RECOVERY_KEYS}, preexec_fn=_manual_umask,
            )

    def up(self) -> None:
        wait_until(lambda: self.proc.poll() is not None or self._answers(), 30, "engine up")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def _answers(self) -> bool:
        try:
            return request(self.socket, "status", timeout=5.0) is not None
        except CtlError:
            return False

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def run(config_file: Path, tmp_path: Path):
    procs: list[Run] = []

    def start(data_dir: Path) -> Run:
        r = Run(config_file, data_dir, tmp_path / f"{data_dir.name}-{len(procs)}.log")
        procs.append(r)
        return r

    yield start
    for r in procs:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)


def _modes(data_dir: Path) -> dict[str, int]:
    """relative path -> permission bits of the data directory and everything in it (no links)."""
    out = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for root, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            p = Path(root, name)
            st = p.lstat()
            if not stat.S_ISLNK(st.st_mode):
                out[str(p.relative_to(data_dir))] = stat.S_IMODE(st.st_mode)
    return out


def _not_private(data_dir: Path) -> dict[str, str]:
    """Entries that are not exactly 0700 (directories) / 0600 (everything else)."""
    bad = {}
    for rel, mode in _modes(data_dir).items():
        want = 0o700 if (data_dir / rel).is_dir() else 0o600
        if mode != want:
            bad[rel] = f"{mode:04o}"
    return bad


def test_a_manual_run_with_umask_022_leaves_nothing_readable_by_others(run, tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "var"  # its parent does not exist either
    engine = run(data)
    engine.up()
    names = set(_modes(data))
    assert {"audit.db", "logs", "logs/engine.log", "engine.lock", "debug.sock"} <= names, names
    assert not _not_private(data), _not_private(data)
    assert engine.stop() == 0
    assert not _not_private(data), _not_private(data)


def test_a_0755_directory_with_a_0644_audit_db_comes_up_0700_and_0600(run, tmp_path: Path) -> None:
    data = tmp_path / "var"
    first = run(data)  # the files of an earlier run...
    first.up()
    assert first.stop() == 0
    for rel in _modes(data):  # ...as an older engine, or another hand, left them
        p = data / rel
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert stat.S_IMODE((data / "audit.db").stat().st_mode) == 0o644
    assert stat.S_IMODE(data.stat().st_mode) == 0o755

    engine = run(data)
    engine.up()
    assert not _not_private(data), _not_private(data)
    assert "only the engine's user may read it" in engine.log.read_text()
    assert engine.stop() == 0


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_directory_others_can_write_is_refused_by_name_and_mode(run, tmp_path: Path, mode: int) -> None:
    data = tmp_path / "var"
    data.mkdir()
    os.chmod(data, mode)
    engine = run(data)
    assert engine.proc.wait(30) == 2, "refused as a setup a restart cannot fix (exit 2)"
    err = engine.log.read_text()
    assert f"data directory {data} is mode {stat.S_IMODE(mode):04o}" in err, err
    assert "group or others can write it" in err
    assert list(data.iterdir()) == [], "nothing was created in it"
    assert stat.S_IMODE(data.stat().st_mode) == stat.S_IMODE(mode), "and its mode left for the operator"


def test_a_subdirectory_others_can_write_is_refused_too(tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "logs").mkdir(parents=True)
    os.chmod(data, 0o700)
    os.chmod(data / "logs", 0o777)
    problem = data_dir_problem(data)
    assert problem is not None and f"directory {data / 'logs'} is mode 0777" in problem


def test_the_audit_store_creates_its_database_0600_under_any_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = open_store(load_config(None).audit, tmp_path)
        store.close()
    finally:
        os.umask(old)
    for name in ("audit.db", "audit.db-wal", "audit.db-shm"):
        p = tmp_path / name
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, name


def test_secure_data_dir_leaves_symbolic_links_and_their_targets_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the engine's")
    os.chmod(outside, 0o644)
    data = tmp_path / "var"
    data.mkdir(mode=0o700)
    (data / "link").symlink_to(outside)
    secure_data_dir(data)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


_COUNT = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('SELECT count(*) FROM probe').fetchone()[0]); c.close()"


def test_making_the_store_private_never_drops_a_live_writers_locks(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops every POSIX lock the process holds on it. Had the
    # store opened an existing database to set its mode, a second open in the engine (the
    # executor opens its own beside the Audit actor's) would free the writer's locks; the next
    # process to close the database then thinks itself the last one and deletes the live WAL.
    settings = load_config(None).audit
    writer = open_store(settings, tmp_path)
    try:
        writer.db.execute_sql("CREATE TABLE probe (n INTEGER)")
        writer.db.execute_sql("INSERT INTO probe VALUES (1)")
        open_store(settings, tmp_path).close()
        db = str(tmp_path / "audit.db")
        assert subprocess.run(_python(_COUNT, db), capture_output=True, text=True, check=True).stdout.strip() == "1"
        writer.db.execute_sql("INSERT INTO probe VALUES (2)")
        seen = subprocess.run(_python(_COUNT, db), capture_output=True, text=True, check=True).stdout.strip()
        assert seen == "2", "a write of the live connection was lost: its WAL was deleted under it"
    finally:
        writer.close()


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]
