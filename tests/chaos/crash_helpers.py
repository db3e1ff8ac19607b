"""Real processes and independent readers for the crash-recovery chaos test.

The localnet and the engine run as separate processes, as operators run them, so that the engine
can die of a real SIGKILL while the chain outlives it. What happened is then read back without
the executor's own code: the audit log entry by entry (:func:`read_ledger`) and the chain over
JSON-RPC (:func:`signature_statuses`, :func:`token_balances`).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from solana.rpc.async_api import AsyncClient
from solders.pubkey import Pubkey
from solders.signature import Signature

from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.audit import open_store, select_entries
from xorj_actors.config import Config, load_config
from xorj_actors.execution import CRASH_AT_ENV
from xorj_actors.ops.ctl import CtlError, request

__all__ = [
    "assert_no_trade_landed_twice",
    "existing_token_balances",
    "EngineProcess",
    "Ledger",
    "LocalnetProcess",
    "Row",
    "Trade",
    "Trades",
    "cli",
    "poll",
    "read_ledger",
    "signature_statuses",
    "token_balances",
]

T = TypeVar("T")

#: getSignatureStatuses takes at most 256 signatures per call.
_STATUS_BATCH = 256


def cli(*args: str) -> list[str]:
    """The ``xorj-actors`` command line, run by this interpreter."""
    return [sys.executable, "-m", "xorj_actors.cli", *args]


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class LocalnetProcess:
    """``xorj-actors localnet --json`` in its own process; :attr:`urls` from its first line."""

    def __init__(self, config: Path, log: Path, timeout: float = 30.0) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                cli("localnet", "--config", str(config), "--json"),
                stdout=subprocess.PIPE, stderr=err, env={k: v for k, v in os.environ.items() if k != CRASH_AT_ENV},
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            pytest.fail(f"localnet printed no URLs within {timeout} s:\n{_tail(log)}")
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            pytest.fail(f"localnet exited ({self.proc.poll()}) before printing its URLs:\n{_tail(log)}")
        self.urls: dict[str, str] = json.loads(line)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class EngineProcess:
    """``xorj-actors run`` on ``data_dir``; with ``crash_at`` the executor SIGKILLs the process there;
    with ``node_id`` it runs as that cluster node (``--node-id``)."""

    def __init__(
        self, config: Path, data_dir: Path, log: Path, *, crash_at: str | None = None, node_id: str | None = None
    ) -> None:
        self.config, self.data_dir, self.log = config, data_dir, log
        self.socket = data_dir / load_config(config).debug_socket.path
        env = {k: v for k, v in os.environ.items() if k != CRASH_AT_ENV} | RECOVERY_KEYS
        if crash_at is not None:
            env[CRASH_AT_ENV] = crash_at
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                cli("run", "--config", str(config), "--data-dir", str(data_dir), *(("--node-id", node_id) if node_id else ())),
                stdout=subprocess.DEVNULL, stderr=err, env=env,
            )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return _tail(self.log)

    def wait_exit(self, timeout: float) -> int:
        """Its exit code (negative: the signal that ended it); fail the test if it lives on."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"engine still running after {timeout} s:\n{self.log_tail()}")

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli("ctl", "--config", str(self.config), "--data-dir", str(self.data_dir), *args),
            capture_output=True, text=True, timeout=timeout,
        )

    def status(self) -> Any:
        """``ctl status``, asked in-process over the debug socket (polls need no new interpreter);
        None while the engine cannot answer."""
        try:
            return request(self.socket, "status", timeout=5.0)
        except CtlError:
            return None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and its exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)


def poll(
    read: Callable[[], T | None], timeout: float, what: str, *, engine: EngineProcess | None = None, every: float = 0.1
) -> T:
    """Call ``read`` until it returns something truthy and return it; fail after ``timeout``.

    With ``engine``, fail at once (with its log) if the engine exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        if engine is not None and not engine.alive:
            pytest.fail(f"engine exited ({engine.proc.returncode}) while waiting for {what}:\n{engine.log_tail()}")
        value = read()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f":\n{engine.log_tail()}" if engine is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{tail}")
        time.sleep(every)


# -- the audit log, read as a ledger -----------------------------------------------------------


@dataclass
class Trade:
    """Everything the audit log says about one trade id."""

    trade_id: str
    intent: dict[str, Any] | None = None
    #: The executor's ``TRADE_EXECUTION`` entries of phase ``signed``, in log order.
    signed: list[dict[str, Any]] = field(default_factory=list)
    #: Its ``TRADE_EXECUTION`` entries of phase ``sent``, in log order (Ultra: ``/execute``'s answers).
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: Every ``TRADE_CONFIRMATION``, in log order (one, if all is well).
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def transactions(self) -> list[str]:
        """The signed bytes of each attempt: what identifies an attempt whatever its API."""
        return [s["transaction"] for s in self.signed]

    def attempt_id(self, attempt: dict[str, Any]) -> str | None:
        """The transaction id of a signed attempt: its own ``signature``, or (Ultra, the market
        maker paying the fee) the one ``/execute`` answered in its ``sent`` entries; None while
        unknown. Two different ids for one attempt fail the test."""
        if attempt["signature"]:
            return str(attempt["signature"])
        answered = {s["signature"] for s in self.sent if s["attempt"] == attempt["attempt"] and s.get("signature")}
        assert len(answered) <= 1, f"{self.trade_id}: attempt {attempt['attempt']} has ids {answered}"
        return answered.pop() if answered else None

    @property
    def signatures(self) -> list[str]:
        """The known transaction ids of its attempts (an Ultra attempt's once ``/execute`` gave it)."""
        return [sig for s in self.signed if (sig := self.attempt_id(s)) is not None]

    @property
    def outcome(self) -> dict[str, Any] | None:
        return self.outcomes[-1] if self.outcomes else None

    def attempt(self, signature: str) -> dict[str, Any]:
        return next(s for s in self.signed if self.attempt_id(s) == signature)


@dataclass
class Ledger:
    trades: dict[str, Trade]
    #: Details of every ``executor_reconciling`` event: one per executor start.
    reconciling: list[dict[str, Any]]

    def intents(self) -> list[Trade]:
        return [t for t in self.trades.values() if t.intent is not None]

    def open(self) -> list[Trade]:
        """Trades with an intent and no outcome: what a restarted executor must settle."""
        return [t for t in self.intents() if not t.outcomes]

    def signatures(self) -> list[str]:
        return [s for t in self.trades.values() for s in t.signatures]


def read_ledger(config: Config, data_dir: Path) -> Ledger:
    """The audit log's trades, read entry by entry (not through the executor's ledger code)."""
    store = open_store(config.audit, data_dir, create=False)
    trades: dict[str, Trade] = {}
    reconciling: list[dict[str, Any]] = []
    try:
        for e in select_entries(store, event_types=("TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION", "SYSTEM_EVENT")):
            details = json.loads(e.details)
            if e.event_type == "SYSTEM_EVENT":
                if e.actor == "executor" and details.get("event") == "executor_reconciling":
                    reconciling.append(details)
                continue
            if e.actor != "executor" or e.correlation_id is None:
                continue  # the confirmation actor's and the vaults' own notes
            trade = trades.setdefault(e.correlation_id, Trade(e.correlation_id))
            if e.event_type == "TRADE_INTENT":
                assert trade.intent is None, f"two intents for {e.correlation_id}"
                trade.intent = details
            elif e.event_type == "TRADE_CONFIRMATION":
                trade.outcomes.append(details)
            elif details.get("phase") == "signed":
                trade.signed.append(details)
            elif details.get("phase") == "sent":
                trade.sent.append(details)
    finally:
        store.close()
    return Ledger(trades, reconciling)


# -- every chain of a shared store, row by row --------------------------------------------


@dataclass
class Row:
    """One audit entry of one chain of a shared store."""

    chain: str
    sequence: int
    event_type: str
    correlation_id: str | None
    details: dict[str, Any]


@dataclass
class Trades:
    """The executor's trade entries of every chain of the shared store, by trade id."""

    rows: list[Row]
    by_trade: dict[str, list[Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            if row.correlation_id is not None and row.event_type.startswith("TRADE_"):
                self.by_trade.setdefault(row.correlation_id, []).append(row)

    def of(self, trade_id: str, event_type: str) -> list[Row]:
        return [r for r in self.by_trade.get(trade_id, []) if r.event_type == event_type]

    def intents(self) -> list[Row]:
        return [r for r in self.rows if r.event_type == "TRADE_INTENT"]

    def open(self) -> list[str]:
        return [r.correlation_id for r in self.intents() if not self.of(r.correlation_id, "TRADE_CONFIRMATION")]  # type: ignore[arg-type]

    def signed(self, trade_id: str) -> list[dict[str, Any]]:
        return [r.details for r in self.of(trade_id, "TRADE_EXECUTION") if r.details.get("phase") == "signed"]

    def reconciling(self, chain: str) -> list[dict[str, Any]]:
        return [r.details for r in self.rows if r.chain == chain and r.details.get("event") == "executor_reconciling"]



# -- the chain, over JSON-RPC ------------------------------------------------------------------


def signature_statuses(rpc_url: str, signatures: Iterable[str]) -> dict[str, Any]:
    """signature -> ``TransactionStatus`` or None (unknown), searching the whole history."""
    sigs = list(dict.fromkeys(signatures))

    async def read() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with AsyncClient(rpc_url, timeout=10) as client:
            for i in range(0, len(sigs), _STATUS_BATCH):
                batch = sigs[i : i + _STATUS_BATCH]
                resp = await client.get_signature_statuses(
                    [Signature.from_string(s) for s in batch], search_transaction_history=True
                )
                out.update(zip(batch, resp.value, strict=True))
        return out

    return asyncio.run(read()) if sigs else {}


def assert_no_trade_landed_twice(trades: Trades, rpc_url: str) -> None:
    """At most one signed attempt of each trade is known to the chain, and a ``confirmed`` outcome
    names that one (the chain read over JSON-RPC)."""
    statuses = signature_statuses(rpc_url, [s["signature"] for t in trades.by_trade for s in trades.signed(t) if s["signature"]])
    for trade_id in trades.by_trade:
        landed = [s["signature"] for s in trades.signed(trade_id) if statuses.get(s["signature"]) is not None]
        assert len(landed) <= 1, (trade_id, landed)
        outcome = trades.of(trade_id, "TRADE_CONFIRMATION")
        if landed and outcome and outcome[0].details["status"] == "confirmed":
            assert outcome[0].details["signature"] == landed[0]


def token_balances(rpc_url: str, accounts: Mapping[T, Pubkey]) -> dict[T, int]:
    """key -> the SPL token balance (base units) of ``accounts[key]``."""

    async def read() -> dict[T, int]:
        async with AsyncClient(rpc_url, timeout=10) as client:
            return {
                key: int((await client.get_token_account_balance(account)).value.amount)
                for key, account in accounts.items()
            }

    return asyncio.run(read())


def existing_token_balances(rpc_url: str, accounts: Mapping[T, Pubkey]) -> dict[T, int]:
    """key -> the SPL token balance of ``accounts[key]``, for the accounts that exist."""

    async def read() -> dict[T, int]:
        keys = list(accounts)
        found: dict[T, int] = {}
        async with AsyncClient(rpc_url, timeout=10) as client:
            for start in range(0, len(keys), 100):
                chunk = keys[start : start + 100]
                resp = await client.get_multiple_accounts([accounts[k] for k in chunk])
                for key, account in zip(chunk, resp.value):
                    if account is not None and account.lamports > 0:
                        found[key] = int.from_bytes(bytes(account.data)[64:72], "little")
        return found

    return asyncio.run(read())


#: An engine against a localnet process (``{quant}``, ``{rpc}``, ``{ws}``, ``{quote}`` its URLs,
#: ``{api}`` the ``[jupiter] api``): fast restarts, quick retries, two vaults. Append the
#: ``[localnet]`` section the localnet was started with, then ``enabled = false``.
ENGINE_AGAINST_LOCALNET = """
[supervision]
shutdown_timeout_s = 2.0
[kill_switch]
cooldown_s = 0
ack_deadline_s = 1.0
[http]
enabled = false
[vaults]
count = 2
round_interval_s = 0.5
[strategy]
url = "{quant}"
[jupiter]
api = "{api}"
[execution]
rpc_url = "{rpc}"
ws_url = "{ws}"
quote_url = "{quote}"
rebroadcast_interval_s = 0.2
[execution.retry]
network_initial_s = 0.05
network_max_s = 0.5
program_step_s = 0.05
"""
