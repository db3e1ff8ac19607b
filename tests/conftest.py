"""Suite-wide fixtures and the service policy.

A test that needs an external server calls :func:`service_unavailable` when the server is absent:
on a developer's laptop that skips with a reason, under ``XORJ_REQUIRE_SERVICES=1`` (set by
``.ci/run``) it fails, so CI never silently skips.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from loguru import logger

pytest_plugins = [
    "tests.plugins.engine",
    "tests.plugins.runtime",
    "tests.plugins.localnet",
    "tests.plugins.audit",
    "tests.plugins.ministack",
    "tests.plugins.softhsm",
    "tests.plugins.nats_server",
    "tests.plugins.prometheus",
]

REQUIRE_SERVICES = os.environ.get("XORJ_REQUIRE_SERVICES") == "1"


def service_unavailable(reason: str) -> None:
    """Skip (developer laptop) or fail (CI) because a required service is absent."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable (XORJ_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def stop_child(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a test-started server and reap it (killed if it does not exit within 10 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def data_dir(tmp_path):
    """A private data directory, as ``--data-dir`` would give the engine."""
    d = tmp_path / "var"
    d.mkdir()
    return d


@pytest.fixture
def logs():
    """Every log line (DEBUG and up, ``LEVEL message``) emitted during the test."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)
