"""The transport-free commands and the vault administration, without an engine.

Bad input must be refused with ``bad_request`` before anything is asked: the runtime the
commands get here fails the test if it is touched at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from supervisors import ChildInfo, ChildSpec, StartChild
from xorj_actors.kill_switch import EnterMaintenance, HaltBoard, HaltStatus, Recover
from xorj_actors.messages import HaltMode
from xorj_actors.ops import COMMANDS, Commands, RequestError
from xorj_actors.ops._args import PARSERS, HaltArgs, VaultAddArgs, VaultRemoveArgs, parse_halt
from xorj_actors.redaction import MASK, Redactor
from xorj_actors.vaults import MAX_VAULT_INDEX, VaultAdmin, VaultAdminError, VaultsAdded


class UntouchableRuntime:
    """A runtime that fails the test on any use: a refused request must not reach the engine."""

    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"a refused request used the runtime ({name})")

    def __len__(self) -> int:
        pytest.fail("a refused request used the runtime (len)")


def commands() -> Commands:
    return Commands(UntouchableRuntime(), dict, Path("/nowhere"), views={"vault_spec": _no_spec})  # type: ignore[arg-type]


def _no_spec(index: int) -> ChildSpec:
    pytest.fail("a refused request made a vault spec")


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("help", {"x": 1}, "unknown argument(s): x"),
    ("tree", {"verbose": True}, "unknown argument(s): verbose"),
    ("actor", {}, "give exactly one of urn or name"),
    ("actor", {"urn": "urn:x", "name": "kill_switch"}, "give exactly one of urn or name"),
    ("actor", {"name": 7}, "argument name has the wrong type"),
    ("halt", {"mode": "soft"}, "mode must be graceful or emergency"),
    ("halt", {"reason": ["x"]}, "argument reason has the wrong type"),
    ("maintenance", {"reason": None}, "argument reason has the wrong type"),
    ("recover", {"epoch": 1, "nonce": "n", "timestamp": 2}, "missing argument: authorisations"),
    ("recover", {"epoch": True, "nonce": "n", "timestamp": 2, "authorisations": []}, "argument epoch has the wrong type"),
    ("recover", {"epoch": 1, "nonce": "n", "timestamp": 2, "authorisations": [{"key_id": "a"}]},
     'each authorisation is {"key_id": str, "hmac": str}'),
    ("flatten", {"operator": "ops"}, "missing argument: reason"),
    ("flatten", {"operator": " ", "reason": "drill"}, "argument operator must not be empty"),
    ("flatten", {"operator": "ops", "reason": "drill", "vaults": ["kill_switch"]},
     "vaults must be a list of vault ids (vault-0007); empty: every vault"),
    ("strategy-refresh", {"reason": "x" * 501}, "argument reason is longer than 500 characters"),
    ("risk-reset", {"operator": "o" * 101, "reason": "drill"}, "argument operator is longer than 100 characters"),
    ("vaults", {"vault": "vault-1"}, "vault 'vault-1' is not a vault id (vault-0007)"),
    ("round", {"vault": "vault-0001\n"}, "is not a vault id (vault-0007)"),
    ("vault-add", {"count": 0}, "count must be between 1 and 1000"),
    ("vault-add", {"count": True}, "argument count has the wrong type"),
    ("vault-add", {"count": 1, "index": -1}, "index must be >= 0"),
    ("vault-add", {"count": 1, "operator": ""}, "argument operator must not be empty"),
    ("vault-remove", {"vault": "vault-0001", "force": 1}, "argument force has the wrong type"),
    ("vault-remove", {"vault": "risk_drawdown"}, "is not a vault id (vault-0007)"),
]


@pytest.mark.parametrize(("cmd", "args", "message"), BAD, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD)])
def test_bad_arguments_are_refused_before_anything_is_asked(cmd: str, args: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as info:
        commands().table()[cmd](args)
    assert info.value.code == "bad_request"
    assert message in info.value.message


def test_every_command_has_one_parser_and_one_line_of_help() -> None:
    assert set(PARSERS) == set(COMMANDS)
    table = commands().table()
    assert list(table) == list(COMMANDS)
    assert all((fn.__doc__ or "").strip() for fn in table.values())


def test_parsed_arguments_are_typed_with_the_defaults_of_the_socket() -> None:
    assert parse_halt({}) == HaltArgs(mode=HaltMode.EMERGENCY, reason="operator halt over the debug socket")
    assert parse_halt({"mode": "graceful", "reason": "r" * 600}, "http").reason == "r" * 500
    assert PARSERS["maintenance"]({}) == EnterMaintenance(reason="maintenance", source="debug_socket")
    recover = PARSERS["recover"]({"epoch": 3, "nonce": "n1", "timestamp": 9, "authorisations": [{"key_id": "a", "hmac": "ff"}]})
    assert recover == Recover(epoch=3, nonce="n1", timestamp=9, authorisations=(("a", "ff"),), operator="debug_socket")
    assert PARSERS["vault-add"]({"count": 2}) == VaultAddArgs(count=2, index=None, operator="debug_socket")
    assert PARSERS["vault-remove"]({"vault": "vault-0003", "operator": " ops "}) == VaultRemoveArgs(
        vault="vault-0003", force=False, operator="ops", reason="operator removal over the debug socket"
    )
    assert PARSERS["vaults"]({}) is None
    assert PARSERS["strategy-refresh"]({"reason": " now "}) == "now"


# -- the vault administration -------------------------------------------------------------------


class NoAuditRuntime:
    """No audit actor (the add is then logged, not recorded) and no other actor."""

    def whereis(self, name: str) -> None:
        return None


class Supervisor:
    """Records the children it is asked to start; refuses the ids in ``refuse``."""

    def __init__(self, refuse: Mapping[str, Exception] | None = None) -> None:
        self.started: list[str] = []
        self.refuse = dict(refuse or {})

    def ask(self, message: Any, timeout: float) -> None:
        assert isinstance(message, StartChild)
        if message.spec.id in self.refuse:
            raise self.refuse[message.spec.id]
        self.started.append(message.spec.id)


def child(vault_id: str) -> ChildInfo:
    return ChildInfo(id=vault_id, urn=None, restart="permanent", restarts=0, alive=False)


def admin(supervisor: Supervisor, *ids: str) -> VaultAdmin:
    children = tuple(child(i) for i in ids)
    return VaultAdmin(NoAuditRuntime(), supervisor, children, actor="test", timeout_s=0.1)  # type: ignore[arg-type]


def spec(index: int) -> ChildSpec:
    return ChildSpec(f"vault-{index:04d}", lambda: None)


def test_vaults_are_added_after_the_highest_index_or_at_the_one_given() -> None:
    sup = Supervisor()
    assert admin(sup, "vault-0000", "vault-0004").add(2, spec, "ops") == VaultsAdded(("vault-0005", "vault-0006"), {}, ())
    assert admin(sup).add(1, spec, "ops", index=7).added == ("vault-0007",)
    assert sup.started == ["vault-0005", "vault-0006", "vault-0007"]


@pytest.mark.parametrize(
    ("ids", "count", "index", "message"),
    [
        (("vault-0002",), 2, 1, "1 of these vaults exist already: vault-0002; nothing added"),
        ((), 2, MAX_VAULT_INDEX, f"vault indices stop at {MAX_VAULT_INDEX}"),
        ((f"vault-{MAX_VAULT_INDEX}",), 1, None, f"vault indices stop at {MAX_VAULT_INDEX}"),
    ],
)
def test_an_add_that_cannot_be_whole_starts_nothing(ids: tuple[str, ...], count: int, index: int | None, message: str) -> None:
    sup = Supervisor()
    with pytest.raises(VaultAdminError) as info:
        admin(sup, *ids).add(count, spec, "ops", index)
    assert (info.value.code, info.value.message) == ("bad_request", message)
    assert sup.started == []


def test_a_spec_with_the_wrong_id_starts_nothing() -> None:
    sup = Supervisor()
    with pytest.raises(RuntimeError, match="made a child named 'vault-9'"):
        admin(sup).add(2, lambda i: spec(i) if i == 0 else ChildSpec("vault-9", lambda: None), "ops")
    assert sup.started == []


def test_an_add_reports_which_vaults_failed_and_which_were_not_tried() -> None:
    from pykka import Timeout

    failed = Supervisor(refuse={"vault-0001": ValueError("id taken")})
    done = admin(failed).add(3, spec, "ops", index=0)
    assert done == VaultsAdded(("vault-0000", "vault-0002"), {"vault-0001": "ValueError: id taken"}, ())
    stuck = Supervisor(refuse={"vault-0001": Timeout("slow")})
    done = admin(stuck).add(3, spec, "ops", index=0)
    assert done.added == ("vault-0000",) and done.not_tried == ("vault-0002",)
    assert done.failed["vault-0001"].endswith("it may still start")


def test_removing_a_vault_that_is_not_there_is_not_found() -> None:
    with pytest.raises(VaultAdminError) as info:
        admin(Supervisor(), "vault-0001").remove(
            "vault-0002", operator="ops", reason="r", force=True, executor_configured=lambda: False
        )
    assert (info.value.code, info.value.message) == ("not_found", "no vault 'vault-0002'")


def test_free_text_arguments_are_masked_before_any_actor_sees_them_and_a_nonce_is_not() -> None:
    # Issue 11 item 12: the engine's one redactor masks every free-text argument of every
    # command; a recovery's nonce is verified as given (the kill switch records it masked).
    secret = "s3cret-value-of-a-key"
    cmds = Commands(UntouchableRuntime(), dict, Path("/nowhere"), redactor=Redactor([secret]))  # type: ignore[arg-type]
    pasted = f"because {secret}"
    assert cmds.masked(HaltArgs(mode=HaltMode.GRACEFUL, reason=pasted)).reason == f"because {MASK}"
    assert cmds.masked(EnterMaintenance(reason=pasted, source="debug_socket")).reason == f"because {MASK}"
    removal = cmds.masked(VaultRemoveArgs(vault="vault-0001", force=False, operator=pasted, reason=pasted))
    assert (removal.vault, removal.operator, removal.reason) == ("vault-0001", f"because {MASK}", f"because {MASK}")
    recover = cmds.masked(Recover(epoch=1, nonce=secret, timestamp=0, authorisations=(), operator=pasted))
    assert (recover.operator, recover.nonce) == (f"because {MASK}", secret)
    assert cmds.masked(None) is None and cmds.masked("vault-0001") == "vault-0001"


# -- a halt while the kill switch is not running ------------------------------------------------------


class _NoKillSwitch:
    """A runtime whose kill switch is restarting: nothing is registered under its name."""

    def whereis(self, name: str) -> None:
        return None


def test_a_halt_while_the_kill_switch_restarts_trips_the_board_and_writes_the_kill_file(tmp_path: Path) -> None:
    board = HaltBoard()
    board.publish(HaltStatus(state="ARMED", epoch=3, halted=False, factor=1.0))
    kill_file = tmp_path / "KILL"
    commands = Commands(_NoKillSwitch(), dict, tmp_path, board=board, kill_file=kill_file)  # type: ignore[arg-type]
    answer = commands.table()["halt"]({"mode": "emergency", "reason": "fills look wrong"})
    assert answer["triggered"] is True and answer["held"].startswith("the kill switch was not running")
    assert (board.status.state, board.status.epoch, board.status.halted) == ("TRIGGERED", 4, True)
    # The next kill switch halts on the kill file, with the reason.
    assert kill_file.read_text(encoding="utf-8") == "debug_socket: fills look wrong\n"


def test_a_halt_nothing_can_hold_is_refused_as_unavailable(tmp_path: Path) -> None:
    commands = Commands(_NoKillSwitch(), dict, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(RequestError) as info:
        commands.trigger(HaltArgs(mode=HaltMode.EMERGENCY, reason="x"), source="http")
    assert (info.value.code, info.value.message) == ("unavailable", "the kill switch is not running (restarting?)")
