"""``ctl --json``: every command's JSON is documented in docs/DEBUG_SOCKET.md, and is what it says.

The documentation is read as data: each command's section has a ``**Result** (shape)`` line and a
field table (docs/DEBUG_SOCKET.md, "Commands"). One test requires that section of every command
of the socket and of ``ctl``; another runs every command with ``--json`` against a running engine
(``trading_engine``: with the localnet and execution, so that the executor and confirmation answer) and requires
exactly the documented fields, errors included.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.engine import Engine
from xorj_actors.ops import COMMANDS
from xorj_actors.ops.ctl import add_arguments, main, request

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEBUG_SOCKET.md"

#: Commands that change nothing: each is run against the engine below.
READ_ONLY = ("help", "tree", "actor", "stacks", "status", "progress", "trades", "breakers", "quotas", "cluster",
             "executor", "confirmation", "strategy", "risk", "vaults", "keys")


@dataclass
class Documented:
    """One command's documented result: its shape and its fields (name -> optional)."""

    shape: str
    fields: dict[str, bool] = field(default_factory=dict)

    def check(self, name: str, value: Any) -> None:
        """Fail unless ``value`` has this shape and exactly the documented fields."""
        if self.shape.startswith("object of strings"):
            assert isinstance(value, dict) and all(isinstance(v, str) for v in value.values()), name
            return
        if self.shape.startswith("array of objects"):
            assert isinstance(value, list) and value, f"{name}: expected a non-empty array, got {value!r}"
            items = value
        elif self.shape.startswith("object of objects"):
            assert isinstance(value, dict) and value, f"{name}: expected an object of objects, got {value!r}"
            items = list(value.values())
        else:
            assert self.shape.startswith("object"), f"{name}: unknown shape {self.shape!r}"
            items = [value]
        for item in items:
            assert isinstance(item, dict), f"{name}: {item!r} is not an object"
            undocumented = set(item) - set(self.fields)
            missing = {f for f, optional in self.fields.items() if not optional} - set(item)
            assert not undocumented, f"{name}: fields not in docs/DEBUG_SOCKET.md: {sorted(undocumented)}"
            assert not missing, f"{name}: documented fields missing from the result: {sorted(missing)}"


def _sections(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(command names in the heading, the section's lines) per heading."""
    heading, lines = "", []
    for line in [*text.splitlines(), "# end"]:
        if line.startswith("#"):
            yield re.findall(r"`([^`]+)`", heading), lines
            heading, lines = line, []
        else:
            lines.append(line)


def documented() -> dict[str, Documented]:
    """Each command's documented result, from DEBUG_SOCKET.md."""
    out: dict[str, Documented] = {}
    for names, lines in _sections(DOC.read_text()):
        starts = [i for i, line in enumerate(lines) if line.startswith("**Result** (")]
        if len(names) != 1 or not starts:
            continue
        line = lines[starts[0]]
        shape, rest = re.match(r"\*\*Result\*\* \(([^)]*)\)(.*)", line).groups()
        doc = Documented(shape)
        based = re.search(r"a `([^`]+)` item plus", rest)
        if based:
            doc.fields.update(out[based.group(1)].fields)
        table = [row for row in lines[starts[0] + 1:] if row.startswith("|")]
        for row in table[2:]:  # after the header and its rule
            first, kind = (cell.strip() for cell in row.strip("|").split("|")[:2])
            for name in re.findall(r"`([^`]+)`", first):
                doc.fields[name] = "optional" in kind
        out[names[0]] = doc
    return out


def ctl_commands() -> set[str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return set(sub.choices)


def test_every_command_is_a_ctl_command_with_its_json_documented() -> None:
    docs = documented()
    commands = ctl_commands()
    assert set(COMMANDS) <= commands, f"socket commands ctl cannot send: {sorted(set(COMMANDS) - commands)}"
    undocumented = sorted(c for c in commands if c not in docs)
    assert not undocumented, f"no **Result** section in docs/DEBUG_SOCKET.md for: {undocumented}"
    for name in commands - {"help"}:
        assert docs[name].fields, f"{name}: its **Result** has no field table"


def test_the_doc_parser_finds_fields_and_optional_ones() -> None:
    docs = documented()
    assert docs["status"].fields["cluster"] is True and docs["status"].fields["kill_switch"] is False
    assert docs["actor"].fields["stack"] is False and "urn" in docs["actor"].fields  # a `tree` item plus
    with pytest.raises(AssertionError, match="fields not in docs"):
        docs["halt"].check("halt", {"triggered": True, "mode": "emergency", "extra": 1})
    with pytest.raises(AssertionError, match="missing from the result"):
        docs["halt"].check("halt", {"triggered": True})


# -- against a running engine ----------------------------------------------------------------

def run_json(capsys: pytest.CaptureFixture[str], engine: Engine, *argv: str, before: bool = False) -> tuple[int, Any]:
    """``ctl ARGV --json`` (``--json`` before the command with ``before``): exit code and parsed stdout."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    json_args = (["--json", *argv] if before else [*argv, "--json"])
    code = main(parser.parse_args(["--socket", str(engine.socket_path), "--timeout", "15", *json_args]))
    out = capsys.readouterr().out
    return code, json.loads(out)


def is_error(value: Any, code: str) -> bool:
    return set(value) == {"error"} and value["error"]["code"] == code and isinstance(value["error"]["message"], str)


def test_every_command_prints_its_documented_json(trading_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    e, docs = trading_engine, documented()
    wait_until(lambda: request(e.socket_path, "executor", {})["reconciled"], 10, "executor reconciled")
    wait_until(lambda: request(e.socket_path, "strategy", {})["fresh"], 10, "a fresh strategy")
    argv = {"actor": ["actor", "kill_switch"], "vaults": ["vaults"]}
    for n, cmd in enumerate(READ_ONLY):
        code, value = run_json(capsys, e, *argv.get(cmd, [cmd]), before=n % 2 == 0)
        if cmd == "cluster":  # no [cluster]: the error object, not a table
            assert code == 1 and is_error(value, "unavailable"), value
            continue
        assert code == 0, value
        docs[cmd].check(cmd, value)
    assert set(run_json(capsys, e, "help")[1]) == set(COMMANDS)
    piped = subprocess.run([sys.executable, "-m", "xorj_actors.cli", "ctl", "--socket", str(e.socket_path), "status",
                            "--json"], capture_output=True, text=True, timeout=30)  # the real entry point
    assert piped.returncode == 0, piped.stderr
    docs["status"].check("status", json.loads(piped.stdout))

    flatten = ["flatten", "--vault", "vault-0001", "--operator", "alice", "--reason", "owner asked"]
    code, value = run_json(capsys, e, *flatten)  # ARMED: refused
    assert code == 1 and is_error(value, "refused") and "ARMED" in value["error"]["message"]
    changes: list[tuple[list[str], int]] = [
        (["strategy-refresh", "--reason", "drill"], 0),
        (["risk-reset", "--operator", "alice", "--reason", "drill"], 0),
        (["round", "--vault", "vault-0000"], 0),
        (["round", "--vault", "vault-0000"], 1),  # round in flight: ran false
        (["vault-add", "--count", "1", "--operator", "alice"], 0),
        (["vault-remove", "--vault", "vault-0002", "--operator", "alice"], 0),
        (["maintenance", "--reason", "drill"], 0),
        (flatten, 0),
        (["recover", "--epoch", "1", "--nonce", "n1", "--timestamp", "1795294000", "--auth", "XORJ_RECOVERY_KEY_1:00"], 1),
        (["halt", "--reason", "drill"], 0),
    ]
    for args, expected in changes:
        code, value = run_json(capsys, e, *args)
        assert code == expected, (args, value)
        docs[args[0]].check(args[0], value)
    code, value = run_json(capsys, e, "vault-remove", "--vault", "vault-0042")
    assert code == 1 and is_error(value, "not_found")
    code, value = run_json(capsys, e, "recover", "--epoch", "1", "--nonce", "n", "--timestamp", "1", "--auth", "bad")
    assert code == 1 and is_error(value, "bad_request") and "KEY_ID:HMAC" in value["error"]["message"]


def test_sign_recovery_and_an_unreachable_engine_print_json(tmp_path: Path) -> None:
    """The real entry point, piped: one JSON document on stdout, the message on stderr."""
    ctl = [sys.executable, "-m", "xorj_actors.cli", "ctl"]
    env = {"PATH": "/usr/bin:/bin", **RECOVERY_KEYS}
    signed = subprocess.run([*ctl, "sign-recovery", "--key-env", "XORJ_RECOVERY_KEY_1", "--epoch", "3",
                             "--nonce", "n1", "--json"], capture_output=True, text=True, timeout=30, env=env)
    assert signed.returncode == 0, signed.stderr
    documented()["sign-recovery"].check("sign-recovery", json.loads(signed.stdout))
    assert json.loads(signed.stdout)["epoch"] == 3
    down = subprocess.run([*ctl, "--json", "--socket", str(tmp_path / "none.sock"), "status"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert down.returncode == 3 and is_error(json.loads(down.stdout), "unreachable")
    assert "cannot reach the engine" in down.stderr
    table = subprocess.run([*ctl, "--socket", str(tmp_path / "none.sock"), "status"],
                           capture_output=True, text=True, timeout=30, env=env)
    assert table.returncode == 3 and table.stdout == ""  # without --json: nothing on stdout


def test_a_reader_that_closed_the_pipe_is_no_error(tmp_path: Path) -> None:
    """`ctl --json ... | head` under `set -o pipefail`: the reader gone before ctl writes is not a
    failure (no traceback, and the command's own exit code)."""
    ctl = [sys.executable, "-m", "xorj_actors.cli", "ctl"]
    env = {"PATH": "/usr/bin:/bin", **RECOVERY_KEYS}
    read, write = os.pipe()
    os.close(read)  # the reader is gone
    try:
        closed = subprocess.run([*ctl, "sign-recovery", "--key-env", "XORJ_RECOVERY_KEY_1", "--epoch", "3",
                                 "--nonce", "n1", "--json"], stdout=write, stderr=subprocess.PIPE, text=True,
                                timeout=30, env=env)
    finally:
        os.close(write)
    assert (closed.returncode, closed.stderr) == (0, "")
    down = subprocess.run(f"set -o pipefail; {' '.join(ctl)} --json --socket {tmp_path / 'none.sock'} status | head -c 0",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=30, env=env)
    assert down.returncode == 3 and "Traceback" not in down.stderr  # the command's own failure, nothing more
