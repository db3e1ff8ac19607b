"""The debug socket protocol, including every kind of bad input."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from xorj_actors.engine import Engine
from xorj_actors.ops.ctl import CtlError, request
from tests.engine.sockets import closed, connect, exchange
from tests.plugins.engine import authorise, ks_status, wait_until


def test_socket_is_private(engine: Engine) -> None:
    assert stat.S_IMODE(os.stat(engine.socket_path).st_mode) == 0o600


def test_tree_lists_every_actor_with_its_parent(engine: Engine) -> None:
    tree = request(engine.socket_path, "tree")
    names = {a["name"] for a in tree}
    assert {"root", "kill_switch", "breakers", "signers", "chain", "vaults", "ops", "debug_socket"} <= names
    assert {"hsm_failure_rate", "signer:vault-authority", "strategy_feed", "risk_drawdown", "vault-0009"} <= names
    by_urn = {a["urn"]: a for a in tree}
    for a in tree:
        for key in ("urn", "parent", "state", "mailbox", "restarts"):
            assert key in a
        if a["name"] != "root":
            assert a["parent"] in by_urn, a["name"]
    assert by_urn[next(a["parent"] for a in tree if a["name"] == "vault-0000")]["name"] == "vaults"


def test_actor_and_stacks(engine: Engine) -> None:
    info = request(engine.socket_path, "actor", {"name": "kill_switch"})
    assert info["class"] == "KillSwitch" and "stack" in info
    stacks = request(engine.socket_path, "stacks")
    assert any(t["thread"] == "debug-socket" for t in stacks)
    with pytest.raises(CtlError, match="not_found"):
        request(engine.socket_path, "actor", {"name": "nobody"})
    with pytest.raises(CtlError, match="bad_request"):
        request(engine.socket_path, "actor", {})


def test_status_halt_and_recover(engine: Engine) -> None:
    status = request(engine.socket_path, "status")
    assert status["kill_switch"]["state"] == "ARMED"
    assert status["endpoints"]["debug_socket"].startswith("unix://")
    assert request(engine.socket_path, "halt", {"mode": "graceful", "reason": "drill"})["triggered"]
    wait_until(lambda: request(engine.socket_path, "status")["kill_switch"]["complete"])
    ks = request(engine.socket_path, "status")["kill_switch"]
    assert ks["state"] == "TRIGGERED" and ks["source"] == "debug_socket" and ks["mode"] == "graceful"
    assert ks["missing"] == [] and len(ks["acked"]) == ks["registered"]
    auth = authorise(ks["epoch"])
    auth["authorisations"] = [{"key_id": k, "hmac": h} for k, h in auth["authorisations"]]
    outcome = request(engine.socket_path, "recover", auth)
    assert outcome["accepted"], outcome


BAD_REQUESTS = [
    (b"{not json\n", "bad_json"),
    (b"\xff\xfe\n", "bad_json"),
    (b"[1, 2]\n", "bad_request"),
    (b'{"cmd": 5}\n', "bad_request"),
    (b'{"cmd": "tree", "args": []}\n', "bad_request"),
    (b'{"cmd": "tree", "extra": 1}\n', "bad_request"),
    (b'{"cmd": "launch_missiles"}\n', "unknown_command"),
    (b'{"cmd": "tree", "args": {"depth": 3}}\n', "bad_request"),
    (b'{"cmd": "halt", "args": {"mode": "gentle"}}\n', "bad_request"),
    (b'{"cmd": "recover", "args": {"epoch": "1", "nonce": "n", "timestamp": 1, "authorisations": []}}\n', "bad_request"),
    (b'{"cmd": "recover", "args": {"epoch": 1, "nonce": "n", "timestamp": 1, "authorisations": [1]}}\n', "bad_request"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_REQUESTS)
def test_bad_requests_get_an_error_and_change_nothing(engine: Engine, raw: bytes, code: str) -> None:
    before = ks_status(engine)
    s = connect(engine.socket_path)
    try:
        reply = exchange(s, raw)
        assert reply is not None and reply["ok"] is False and reply["error"]["code"] == code
        # The connection survives a bad request.
        assert exchange(s, b'{"id": 7, "cmd": "help"}\n')["ok"]
    finally:
        s.close()
    assert ks_status(engine) == before


def test_an_oversized_line_is_refused_and_the_connection_closed(engine: Engine) -> None:
    s = connect(engine.socket_path)
    try:
        reply = exchange(s, b'{"cmd": "tree", "pad": "' + b"x" * 70_000 + b'"}\n')
        assert reply["error"]["code"] == "line_too_long"
        assert closed(s)
    finally:
        s.close()
    assert request(engine.socket_path, "help")


def test_a_client_that_never_reads_does_not_block_others(engine: Engine) -> None:
    hog = connect(engine.socket_path)
    try:
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(20):
            hog.sendall(b'{"cmd": "stacks"}\n')
        status = request(engine.socket_path, "status")
        assert status["kill_switch"]["state"] == "ARMED"
    finally:
        hog.close()


def test_a_second_engine_on_the_same_data_dir_is_refused(engine: Engine, engine_factory) -> None:
    from xorj_actors.engine import EngineError

    with pytest.raises(EngineError, match="in use"):
        engine_factory(data_dir=engine.data_dir)
    assert request(engine.socket_path, "status")["kill_switch"]["state"] == "ARMED"


def test_quotas_lists_every_endpoint_budget(engine: Engine) -> None:
    quotas = request(engine.socket_path, "quotas")
    assert set(quotas) >= {"rpc_send", "jupiter_quote", "jupiter_price", "block_engine"}
    assert quotas["jupiter_price"]["bucket"] == "jupiter_quote"
    assert quotas["block_engine"]["requests"] == engine.config.quotas.block_engine.requests
    assert all(row["self_inflicted"] == 0 for row in quotas.values())
