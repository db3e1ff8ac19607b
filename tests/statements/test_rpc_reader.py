"""The reconciliation's JSON-RPC reads over real HTTP: a ``getTransaction`` that answers null
(a node a slot behind) is asked again before the transaction counts as not on the chain."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from xorj_actors.statements import LAMPORTS, RpcReader, VaultAccounts

VAULT = VaultAccounts("v", "Auth1111", {})
RECORD = {"slot": 20, "transaction": {"message": {"accountKeys": ["Auth1111"]}},
          "meta": {"err": None, "fee": 5_000, "preBalances": [10_000], "postBalances": [5_000]}}


@pytest.fixture
def node() -> Iterator[tuple[str, list[int]]]:
    """A JSON-RPC node that knows ``late`` only from its third ``getTransaction``; ``asked``
    counts them. ``never`` it never knows."""
    asked = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answers: list[dict[str, Any]] = []
            for call in batch:
                asked[0] += 1
                known = call["params"][0] == "late" and asked[0] >= 3
                answers.append({"jsonrpc": "2.0", "id": call["id"], "result": RECORD if known else None})
            body = json.dumps(answers).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_transaction_the_node_does_not_have_yet_is_asked_again(node: tuple[str, list[int]]) -> None:
    url, asked = node
    [tx] = RpcReader(url, not_found_wait_s=0.01).transactions(["late"], VAULT).values()
    assert tx.found and tx.deltas == {LAMPORTS: -5_000} and asked[0] == 3


def test_one_it_never_has_is_not_found_after_the_tries(node: tuple[str, list[int]]) -> None:
    url, asked = node
    [tx] = RpcReader(url, not_found_tries=4, not_found_wait_s=0.01).transactions(["never"], VAULT).values()
    assert not tx.found and asked[0] == 4
