"""config.py points down: the packages whose settings it assembles never import it back."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["xorj_actors.config", "xorj_actors.kill_switch", "xorj_actors.ops"])
def test_the_config_imports_in_any_order(first: str) -> None:
    # A fresh interpreter: a cycle only shows when the first import starts it.
    code = f"import {first}; import xorj_actors.config as c; c.load_config(None).validate()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_moved_sections_keep_their_keys_and_messages() -> None:
    from xorj_actors.config import ConfigError, parse_config
    from xorj_actors.kill_switch import KillSwitchSettings
    from xorj_actors.ops import DebugSocketSettings, HttpSettings

    config = parse_config("[kill_switch]\ncooldown_s = 1.0\n[debug_socket]\nmax_clients = 2\n[http]\nport = 8080\n")
    assert isinstance(config.kill_switch, KillSwitchSettings) and config.kill_switch.cooldown_s == 1.0
    assert isinstance(config.debug_socket, DebugSocketSettings) and config.debug_socket.max_clients == 2
    assert isinstance(config.http, HttpSettings) and config.http.port == 8080
    for toml, message in [
        ("[kill_switch]\nrestart_factors = [0.5]", "kill_switch.restart_factors: must be in (0, 1] and end with 1.0"),
        (
            "[kill_switch]\nrestart_factors = [1.0]",
            "kill_switch.restart_factors: needs at least two steps (e.g. [1.0, 1.0] with restart_step_s = 0 to arm at once)",
        ),
        ("[debug_socket]\nmax_clients = 0", "debug_socket.max_clients: must be >= 1"),
        ("[http]\nhost = '0.0.0.0'", "http.host: '0.0.0.0' is not loopback; set allow_non_loopback = true to expose it"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_config(toml)
        assert str(exc.value) == f"<config>: {message}"
