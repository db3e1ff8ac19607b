"""pytest fixtures: an in-process engine (registered in tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.helpers import wait_until  # noqa: F401 - re-exported for the engine tests
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import (
    KILL_SWITCH_NAME,
    ClusterProof,
    GetStatus,
    KillSwitchStatus,
    Participant,
    nonce_digest,
    sign_cluster_recovery,
    sign_recovery,
)


class Silent(Participant):
    """Stuck in a handler: cannot ack until released. Asked ``"halted?"``, says whether it is."""

    gate: ClassVar[threading.Event] = threading.Event()
    entered: ClassVar[threading.Event] = threading.Event()

    def on_receive(self, message: object) -> object:
        if message == "hang":
            self.entered.set()
            self.gate.wait(10)
        if message == "halted?":
            return self.halted
        return None


RECOVERY_KEYS = {
    "XORJ_RECOVERY_KEY_1": "k1-" + "a" * 40,
    "XORJ_RECOVERY_KEY_2": "k2-" + "b" * 40,
    "XORJ_RECOVERY_KEY_3": "k3-" + "c" * 40,
}

FAST = """
[vaults]
count = {vaults}
[engine]
environment = "{environment}"
[supervision]
shutdown_timeout_s = 1.0
max_restarts = {max_restarts}
[kill_switch]
cooldown_s = {cooldown}
ack_deadline_s = 0.5
restart_step_s = {step}
[localnet]
enabled = false
[execution]
enabled = false
[strategy]
url = "http://127.0.0.1:9"  # nothing listens: the feed stays empty, vaults hold
"""


def ks_status(engine: Engine) -> KillSwitchStatus:
    ref = engine.runtime.whereis(KILL_SWITCH_NAME)
    assert ref is not None, "kill switch not running"
    return ref.ask(GetStatus(), timeout=5)


def authorise(epoch: int, keys=("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2"), nonce: str = "n-1", ts: int | None = None):
    ts = int(time.time()) if ts is None else ts
    return {
        "epoch": epoch,
        "nonce": nonce,
        "timestamp": ts,
        "authorisations": tuple((k, sign_recovery(RECOVERY_KEYS[k].encode(), epoch, nonce, ts)) for k in keys),
    }


def authorise_cluster(
    cluster_epoch: int, keys=("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2"), nonce: str = "c-1", ts: int | None = None
) -> tuple[tuple[str, str], ...]:
    """K key holders' authorisations of a cluster recovery (``ctl sign-recovery --cluster-epoch``)."""
    ts = int(time.time()) if ts is None else ts
    return tuple((k, sign_cluster_recovery(RECOVERY_KEYS[k].encode(), cluster_epoch, nonce, ts)) for k in keys)


def cluster_proof(cluster_epoch: int, nonce: str = "c-1", ts: int | None = None, **kw) -> ClusterProof:
    """A cluster recovery's proof as the recovering node publishes it (``authorisations`` overridable)."""
    ts = int(time.time()) if ts is None else ts
    auths = kw.pop("authorisations", None) or authorise_cluster(cluster_epoch, nonce=nonce, ts=ts)
    return ClusterProof(cluster_epoch=cluster_epoch, nonce_sha256=nonce_digest(nonce), timestamp=ts,
                        authorisations=auths, operator=kw.pop("operator", "op"), local_epoch=kw.pop("local_epoch", 1))


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(*, vaults: int = 10, max_restarts: int = 10, environment: str = "development", cooldown: float = 0, step: float = 0.05, data_dir: Path | None = None,
             environ: dict[str, str] | None = None, extra: str = "") -> Engine:
        config = parse_config(FAST.format(vaults=vaults, cooldown=cooldown, step=step, max_restarts=max_restarts, environment=environment) + extra)
        env = dict(RECOVERY_KEYS) if environ is None else environ
        engine = Engine(config, data_dir or tmp_path / "var", environ=env)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        hung = engine.stop(timeout=10)
        assert not hung, f"actors did not stop: {hung}"


@pytest.fixture
def engine(engine_factory) -> Engine:
    return engine_factory()
