"""A cluster node's kill switch follows the cluster's recovery only out of the very halt it entered."""

from __future__ import annotations

from xorj_actors.kill_switch import KILL_SWITCH_NAME, FollowRecovery
from xorj_actors.messages import HaltMode, Trigger
from tests.plugins.engine import ks_status, wait_until


def _follow(engine, epoch: int):
    message = FollowRecovery(epoch=epoch, cluster_epoch=7, cleared_by="a", reason="authorised recovery on node a")
    return engine.runtime.whereis(KILL_SWITCH_NAME).ask(message, timeout=10)


def _halt(engine, source: str = "cluster") -> int:
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="cluster halt epoch 7", source=source))
    wait_until(lambda: ks_status(engine).state == "TRIGGERED" and ks_status(engine).complete)
    return ks_status(engine).epoch


def test_it_resumes_through_the_gradual_restart_from_the_halt_it_followed(engine) -> None:
    epoch = _halt(engine)
    outcome = _follow(engine, epoch)
    assert outcome.accepted and outcome.factor == 0.5, outcome
    wait_until(lambda: ks_status(engine).state == "ARMED" and ks_status(engine).factor == 1.0, what="armed")


def test_a_halt_triggered_here_since_needs_its_own_recovery(engine) -> None:
    first = _halt(engine)
    _halt(engine, source="SIGUSR2")
    outcome = _follow(engine, first)
    assert not outcome.accepted and "not in the cluster's halt any more" in outcome.reason
    assert ks_status(engine).state == "TRIGGERED"


def test_the_kill_file_still_wins(engine) -> None:
    _halt(engine)
    (engine.data_dir / engine.config.kill_switch.kill_file).write_text("operator\n")
    wait_until(lambda: ks_status(engine).source == "kill_file", what="the kill file's halt")
    outcome = _follow(engine, ks_status(engine).epoch)  # even for the halt it is in now
    assert not outcome.accepted and "kill file" in outcome.reason
    assert ks_status(engine).state == "TRIGGERED"
