"""Engine nodes as real processes (`xorj-actors run --node-id`), one shared localnet process, and
the test's own nats-server: what tests/cluster/test_nodes.py drives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import cli, wait_until
from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.ops.ctl import CtlError, request

#: Short cluster timings (tests/cluster/conftest.py's, as a [cluster] section).
CLUSTER_TOML = """
[cluster]
nats_url = "{nats}"
bucket_prefix = "t"
lease_ttl_s = 1.5
renew_every_s = 0.5
fence_margin_s = 0.3
op_timeout_s = 0.5
heartbeat_s = 0.2
dead_after_s = 1.0
member_ttl_s = 60.0
nats_lost_halt_s = {lost}
halt_ack_deadline_s = 5.0
"""

#: The shared localnet's genesis (the nodes share it: `[localnet] enabled = false` on their side).
LOCALNET_TOML = """
[localnet]
vaults = 3
"""

NODE_TOML = """
[vaults]
count = 3
round_interval_s = 3600.0
[supervision]
shutdown_timeout_s = 2.0
[kill_switch]
cooldown_s = 0
ack_deadline_s = 1.0
restart_step_s = 0.3
[http]
enabled = false
[execution]
rpc_url = "{rpc}"
ws_url = "{ws}"
quote_url = "{quote}"
[strategy]
url = "{quant}"
"""


class Localnet:
    """``xorj-actors localnet`` as its own process: the one chain every node trades against."""

    def __init__(self, tmp: Path) -> None:
        config = tmp / "localnet.toml"
        config.write_text(LOCALNET_TOML)
        self.proc = subprocess.Popen(
            cli("localnet", "--config", str(config), "--json"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"the localnet did not start (exit {self.proc.returncode})")
        self.urls: dict[str, str] = json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Node:
    """One engine node: ``xorj-actors run --config FILE --node-id ID --data-dir DIR``."""

    def __init__(self, config: Path, node_id: str, data_dir: Path, *, wait: bool = True) -> None:
        self.config, self.node_id, self.data_dir = config, node_id, data_dir
        self.log = data_dir.parent / f"{node_id}.log"
        self.proc = subprocess.Popen(
            cli("run", "--config", str(config), "--node-id", node_id, "--data-dir", str(data_dir)),
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), env={**os.environ, **RECOVERY_KEYS},
        )
        if wait:
            wait_until(lambda: self.proc.poll() is not None or self.status() is not None, 60, f"node {node_id} up")
            assert self.proc.poll() is None, self.tail()

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def ask(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """One debug-socket request (as ``ctl --json`` sends it), without starting a process."""
        return request(self.data_dir / "debug.sock", cmd, args, timeout=10)

    def status(self) -> dict[str, Any] | None:
        try:
            return self.ask("status")
        except (CtlError, OSError):
            return None

    def ks(self) -> dict[str, Any]:
        status = self.status()
        assert status is not None, self.tail()
        return status["kill_switch"]

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli("ctl", "--config", str(self.config), "--data-dir", str(self.data_dir), *args),
            capture_output=True, text=True, timeout=60,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    """The nodes of one test, on one NATS server and one localnet."""

    def __init__(self, tmp: Path, nats_url: str, localnet: Localnet, *, lost_s: float = 2.0) -> None:
        self.tmp = tmp
        self.config = tmp / "cluster.toml"
        urls = localnet.urls
        self.config.write_text(
            NODE_TOML.format(rpc=urls["rpc"], ws=urls["ws"], quote=urls["quote"], quant=urls["quant"])
            + "[localnet]\nenabled = false\n"
            + CLUSTER_TOML.format(nats=nats_url, lost=lost_s)
        )
        self.nodes: dict[str, Node] = {}

    def start(self, *ids: str) -> list[Node]:
        # Started together, waited for together: three Python processes import at once.
        started = [Node(self.config, i, self.tmp / i, wait=False) for i in ids]
        for node in started:
            wait_until(lambda n=node: n.proc.poll() is not None or n.status() is not None, 90, f"node {node.node_id} up")
            assert node.proc.poll() is None, node.tail()
            self.nodes[node.node_id] = node
        return started

    def stop(self) -> None:
        for node in self.nodes.values():
            node.kill()

