"""bench_halt's refusal case: trigger -> the first signature the Signer refuses because of the halt.

Run inside a ``halt_cases.py refusal`` subprocess. A real ``Signer`` (the development key store:
keys derived from a seed, signed and verified in this process, no HSM) is kept busy by a feeder
thread with ``WINDOW`` sign requests always outstanding, while N real ``Vault`` participants are
registered on a real ``KillSwitch``. Per sample: the switch is ARMED and the signer is signing;
the main thread reads ``time.perf_counter()`` and tells ``Trigger``; the signer's
``on_operation`` hook (its public per-request callback, called on its own thread as it refuses)
reads ``perf_counter()`` at its first ``refused``. The sample is the difference. The feeder checks
that every refusal it gets back is the halt's (``"halted: ..."``), so no other refusal is counted.

Between samples the halt is left to complete (every participant acked), then the switch is
re-armed through the public recovery path an operator uses (a ``Recover`` with a valid HMAC
authorisation; cooldown 0, restart factors (1.0, 1.0) and a step of 0 s, so RECOVERY_PENDING at
full limits and ARMED at once), which broadcasts ``Resume`` to every participant; the next
sample starts once the signer signs again. The first sample is on a freshly started switch (ARMED
at epoch 0).

A ``HaltBoard`` subclass timestamps the board's halted publication, which splits each sample into
trigger -> board halted (the kill switch's wake-up and trigger handling) and board halted ->
first refusal (the rest of the signature in hand, then the next request).
"""

from __future__ import annotations

import collections
import gc
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solders.hash import Hash
from solders.message import MessageV0, to_bytes_versioned
from solders.system_program import TransferParams, transfer

from xorj_actors.kill_switch import (
    GetStatus,
    HaltBoard,
    HaltStatus,
    KillSwitch,
    KillSwitchSettings,
    Recover,
    sign_recovery,
)
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.signers import (
    LOCALNET_DEV_SEED,
    KeySettings,
    SignRequest,
    Signer,
    dev_vault_keypair,
    vault_key_board,
)
from xorj_actors.vaults import Vault

__all__ = ["measure_refusal"]

#: Sign requests kept outstanding: the signer's mailbox is never empty, so its next request
#: after the halt is already waiting (the feeder's round trip is not in the figure).
WINDOW = 4
#: Signatures the signer must make after a recovery before the next sample (it has resumed).
SETTLE_SIGNATURES = 50
#: Pause before each trigger, after a full GC: the resume broadcast to every vault is over.
SETTLE_S = 0.2
RECOVERY_ENV = "BENCH_RECOVERY_KEY"
VAULT = "vault-00000"


class TimedBoard(HaltBoard):
    """The halt board, timestamping the first halted publication after :meth:`arm`."""

    __slots__ = ("halted_at",)

    def __init__(self) -> None:
        super().__init__()
        self.halted_at: float | None = None

    def arm(self) -> None:
        self.halted_at = None

    def publish(self, status: HaltStatus, **kwargs: Any) -> bool:
        shown = super().publish(status, **kwargs)
        if shown and status.halted and self.halted_at is None:
            self.halted_at = time.perf_counter()
        return shown

    def trip(self) -> int:
        # Where the board has a trip (issue 15), the Trigger's own thread halts it, before the
        # kill switch runs; without one, publish() above times the kill switch's decision.
        epoch = super().trip()
        if self.halted_at is None:
            self.halted_at = time.perf_counter()
        return epoch


class RefusalClock:
    """The signer's ``on_operation`` hook: counts results, timestamps the first refusal after :meth:`arm`."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.armed = False
        self.first: float | None = None
        self.refused = threading.Event()

    def arm(self) -> None:
        self.first = None
        self.refused.clear()
        self.armed = True

    def __call__(self, backend: str, result: str) -> None:
        if result == "refused" and self.armed and self.first is None:
            self.first = time.perf_counter()  # first: the rest is bookkeeping
            self.armed = False
            self.refused.set()
        self.counts[result] += 1


class Feeder(threading.Thread):
    """Keeps ``WINDOW`` sign requests outstanding at the signer until stopped."""

    def __init__(self, signer: Any, payload: bytes, wait_s: float) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        self.signer = signer
        self.payload = payload
        self.wait_s = wait_s
        self.stopping = False
        self.errors: list[str] = []

    def run(self) -> None:
        def ask(i: int) -> Any:
            request = SignRequest(trade_id=f"t{i}", vault_id=VAULT, payload=self.payload)
            return self.signer.ask(request, block=False, timeout=self.wait_s)

        pending = collections.deque(ask(i) for i in range(WINDOW))
        i = WINDOW
        while not self.stopping:
            result = pending.popleft().get(timeout=self.wait_s)
            if result.refused is not None and not result.refused.startswith("halted"):
                self.errors.append(result.refused)
            pending.append(ask(i))
            i += 1


def payload() -> bytes:
    """A real versioned transfer message from the vault's authority (what a trade's signing looks like)."""
    authority = dev_vault_keypair(LOCALNET_DEV_SEED, VAULT).pubkey()
    ix = transfer(TransferParams(from_pubkey=authority, to_pubkey=authority, lamports=1))
    return to_bytes_versioned(MessageV0.try_compile(authority, [ix], [], Hash.default()))


def wait_until(predicate: Callable[[], bool], what: str, wait_s: float, poll_s: float = 0.001) -> None:
    deadline = time.monotonic() + wait_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll_s)


def measure_refusal(n: int, samples: int, make_runtime: Callable[[], Any], wait_s: float) -> dict[str, Any]:
    """``samples`` triggers, each on an ARMED switch with ``n`` vaults and a busy signer."""
    make_runtime()
    data_dir = Path(os.environ["BENCH_HALT_TMP"])
    key = f"bench-recovery-{uuid.uuid4().hex}"  # >= 32 bytes, like a real recovery key
    settings = KillSwitchSettings(
        ack_deadline_s=wait_s,
        recovery_key_envs=(RECOVERY_ENV,),
        recovery_threshold=1,
        cooldown_s=0.0,
        # Recovery passes through RECOVERY_PENDING: at 1.0 at once, ARMED a (0 s) step later.
        restart_factors=(1.0, 1.0),
        restart_step_s=0.0,
    )
    complete = threading.Event()

    def on_event(kind: str, details: dict[str, Any]) -> None:
        if details.get("what") == "halt complete":
            complete.set()

    board = TimedBoard()
    ks = KillSwitch.start(settings, data_dir, board, environ={RECOVERY_ENV: key}, on_event=on_event)
    clock = RefusalClock()
    key_settings = KeySettings(name="bench", backend="dev_key")
    signer = Signer.start(
        board, key_settings, vault_key_board(key_settings, data_dir), (VAULT,), data_dir=data_dir, on_operation=clock
    )
    for i in range(n):
        Vault.start(board, f"vault-{i:05d}")
    # GetStatus is O(n): asked every 50 ms, not timed (start-up is bench_halt's halt case).
    registered = lambda: ks.ask(GetStatus(), timeout=wait_s).registered >= n + 1  # noqa: E731
    wait_until(registered, "every participant registered", wait_s, poll_s=0.05)
    feeder = Feeder(signer, payload(), wait_s)
    feeder.start()
    latencies, to_board, board_to_refusal, signed_between = [], [], [], []
    for sample in range(samples):
        if sample:
            if not complete.wait(wait_s):
                raise RuntimeError("the halt never completed")
            status = ks.ask(GetStatus(), timeout=wait_s)
            nonce, now = uuid.uuid4().hex, int(time.time())
            auth = ((RECOVERY_ENV, sign_recovery(key.encode(), status.epoch, nonce, now)),)
            recover = Recover(epoch=status.epoch, nonce=nonce, timestamp=now, authorisations=auth, operator="bench")
            outcome = ks.ask(recover, timeout=wait_s)
            if not outcome.accepted:
                raise RuntimeError(f"recovery refused: {outcome.reason} ({outcome.state})")
            armed = lambda: ks.ask(GetStatus(), timeout=wait_s).state == "ARMED"  # noqa: E731
            wait_until(armed, "ARMED after the restart step", wait_s, poll_s=0.01)
        start_ok = clock.counts["ok"]
        wait_until(lambda: clock.counts["ok"] >= start_ok + SETTLE_SIGNATURES, "the signer signing again", wait_s)
        gc.collect()
        time.sleep(SETTLE_S)
        ok_before = clock.counts["ok"]
        complete.clear()
        board.arm()
        clock.arm()
        t0 = time.perf_counter()
        ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="bench", source="bench"))
        if not clock.refused.wait(wait_s) or clock.first is None:
            raise RuntimeError("the signer never refused after the trigger")
        latencies.append(clock.first - t0)
        if board.halted_at is not None:
            to_board.append(board.halted_at - t0)
            board_to_refusal.append(clock.first - board.halted_at)
        signed_between.append(clock.counts["ok"] - ok_before)
        if feeder.errors:
            raise RuntimeError(f"the signer refused for another reason than the halt: {feeder.errors[0]}")
    feeder.stopping = True
    return {
        "latency_s": latencies,
        "to_board_s": to_board,
        "board_to_refusal_s": board_to_refusal,
        "signed_between": signed_between,
        "signed": clock.counts["ok"],
        "refused": clock.counts["refused"],
        "n": n,
    }
