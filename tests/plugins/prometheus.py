"""pytest fixtures: a private Prometheus server (registered in tests/conftest.py).

Debian's ``prometheus`` (2.42, installed by ``make system-deps``) on a free loopback port with its
own storage directory, one per test. A test gives it the targets to scrape and the rule files to
load; it scrapes and evaluates every second so alerts fire within seconds. It is queried over its
own HTTP API (``/api/v1/query``, ``/api/v1/alerts``) with urllib: not through the engine's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, service_unavailable, stop_child

_START_TIMEOUT_S = 30.0
#: Scrape and rule evaluation interval: short, so a test sees an alert fire within seconds.
INTERVAL = "1s"


def prometheus_binary() -> str | None:
    """The prometheus executable, or None if it is not installed."""
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    """The promtool executable (the same Debian package), or None if it is not installed."""
    return shutil.which("promtool")


@dataclass
class PrometheusServer:
    """A ``prometheus`` child process scraping ``targets`` and evaluating ``rule_files``."""

    binary: str
    port: int
    workdir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, targets: Sequence[str], rule_files: Sequence[Path] = (), job: str = "xorj-actors") -> None:
        """Write its configuration and start it; return once it answers ``/-/ready``.

        Args:
            targets: ``host:port`` addresses serving ``/metrics``.
            rule_files: alerting or recording rule files to load.
            job: the scrape job's name (the alert rules' ``up{job=...}`` refers to it).
        """
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL, "scrape_timeout": INTERVAL},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, f"--config.file={path}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._proc.returncode}: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready on {self.port} within {_START_TIMEOUT_S} s: see {self.log}")
            time.sleep(0.1)

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/{path}``'s ``data``; raises on an error answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (empty when the expression has no data)."""
        data = self.api("query", query=promql)
        result = data["result"]
        return result if isinstance(result, list) else [result]

    def firing(self) -> set[str]:
        """The names of the alerts firing now."""
        return {a["labels"]["alertname"] for a in self.api("alerts")["alerts"] if a["state"] == "firing"}

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc)


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus server on a free port (not started: call ``start(targets, rule_files)``)."""
    binary = prometheus_binary()
    if binary is None:
        service_unavailable("prometheus is not installed (apt-get install prometheus; make system-deps does)")
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    server = PrometheusServer(binary, free_port(), workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def promtool() -> str:
    """The promtool executable."""
    binary = promtool_binary()
    if binary is None:
        service_unavailable("promtool is not installed (apt-get install prometheus; make system-deps does)")
    return binary
