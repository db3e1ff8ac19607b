"""The kill switch's durability in a real engine process (issue 11 items 2 and 3).

Each test runs ``python -m xorj_actors.cli run`` and asks it with ``ctl status``, as an operator
would; the faults are real: bytes written into the state file, descriptors run out with
``prlimit`` on the running process, ``kill -9``.
"""

from __future__ import annotations

import json
import resource
import signal

import pytest

from tests.engine.test_process import config_file, spawn  # noqa: F401 - the engine process fixtures
from tests.plugins.engine import wait_until


@pytest.mark.parametrize(
    "content",
    [b"\xff", b"[" * 30_000],  # more contents: tests/kill_switch/test_start_decision.py, without a process
    ids=["0xff", "deep"],
)
def test_unreadable_state_file_content_starts_triggered_and_ctl_answers(spawn, config_file, tmp_path, content) -> None:
    data = tmp_path / "var"
    data.mkdir()
    (data / "kill_switch.json").write_bytes(content)
    engine = spawn(config_file, data)
    ks = engine.status()["kill_switch"]
    assert ks["state"] == "TRIGGERED" and ks["source"] == "start" and "state file" in ks["reason"]
    assert "TRIGGERED" in engine.ctl("status").stdout


def test_a_halt_decided_out_of_descriptors_survives_kill_9(spawn, config_file, tmp_path) -> None:
    data = tmp_path / "var"
    engine = spawn(config_file, data)
    assert engine.status()["kill_switch"]["state"] == "ARMED"
    state_before = (data / "kill_switch.json").read_text()
    _, hard = resource.prlimit(engine.proc.pid, resource.RLIMIT_NOFILE)
    # Descriptors 0-2 are taken: with a limit of 3 the engine can open nothing at all.
    resource.prlimit(engine.proc.pid, resource.RLIMIT_NOFILE, (3, hard))
    (data / "KILL").write_text("halt while out of descriptors\n")  # noticed by stat(), no descriptor
    marker = data / "kill_switch.json.halt"
    wait_until(lambda: marker.read_text().strip().startswith("epoch 1 TRIGGERED"), 20, "halt marker set")
    assert (data / "kill_switch.json").read_text() == state_before, "the state file could not be written"
    engine.kill()  # kill -9
    (data / "KILL").unlink()  # not what keeps it halted
    again = spawn(config_file, data)
    ks = again.status()["kill_switch"]
    assert ks["state"] == "TRIGGERED" and ks["epoch"] >= 2, ks
    assert "not yet durable" in ks["reason"], ks["reason"]
    assert json.loads((data / "kill_switch.json").read_text())["state"] == "TRIGGERED"
    assert marker.read_text().strip() == ""
    again.signal(signal.SIGTERM)
    assert again.wait() == 0
