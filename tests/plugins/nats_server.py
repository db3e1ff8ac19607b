"""pytest fixtures: a private NATS server with JetStream (registered in tests/conftest.py).

Debian's ``nats-server`` (2.9.10, installed by ``make system-deps``) on a free loopback port with
its own store directory, one per test: tests stop and restart it (NATS lost), and no test sees
another's buckets. The server opens its client port only once JetStream is up, so a port that
accepts connections is a server ready for KV buckets.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, service_unavailable, stop_child

#: Debian installs it in /usr/sbin, which is not on every user's PATH.
DEBIAN_BINARY = "/usr/sbin/nats-server"
_START_TIMEOUT_S = 15.0


def nats_server_binary() -> str | None:
    """The nats-server executable, or None if it is not installed."""
    found = shutil.which("nats-server")
    if found:
        return found
    return DEBIAN_BINARY if Path(DEBIAN_BINARY).is_file() else None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class NatsServer:
    """A ``nats-server -js`` child process: its URL, and stop/start for outage tests.

    ``start`` after ``stop`` reuses the port and the store directory: the same server, back.
    """

    binary: str
    port: int
    store_dir: Path
    log: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _accepts(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._proc.returncode}: see {self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not listen on {self.port} within {_START_TIMEOUT_S} s: see {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server with JetStream on a free port, stopped after the test."""
    binary = nats_server_binary()
    if binary is None:
        service_unavailable(f"nats-server is not installed (apt-get install nats-server; looked on PATH and {DEBIAN_BINARY})")
    store = tmp_path / "nats"
    store.mkdir()
    server = NatsServer(binary, free_port(), store, tmp_path / "nats-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
