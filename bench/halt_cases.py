"""bench_halt's cases: each (kind, implementation) measured in a fresh interpreter of its own.

Run by ``bench/bench_halt.py`` (the driver, which prints the report), one subprocess per case so
that RSS and threads do not mix; it prints one JSON line on stdout and leaves with ``os._exit``
(tearing 10,000 actors down is not what is measured). See the driver's docstring and
``bench/README.md`` for what each figure times.

    .venv/bin/python bench/halt_cases.py halt ours --n 10000 --runs 7 --warmup 1   # or pykka, asyncio
    .venv/bin/python bench/halt_cases.py tell both --n 50000 --runs 5 --warmup 1 --asks 500
    .venv/bin/python bench/halt_cases.py refusal ours --n 10000 --runs 20 --warmup 0  # halt_refusal.py

``halt`` and ``refusal`` need ``BENCH_HALT_TMP``, a directory for the kill switch's files.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from loguru import logger

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pykka  # noqa: E402

from supervisors import Actor, Message, Runtime  # noqa: E402
from xorj_actors.config import EngineSettings  # noqa: E402
from xorj_actors.kill_switch import KillSwitchSettings  # noqa: E402
from xorj_actors.kill_switch import GetStatus, HaltBoard, KillSwitch  # noqa: E402
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Trigger  # noqa: E402
from xorj_actors.vaults import Vault  # noqa: E402

#: Engine defaults (``[engine]`` scheduler_workers, mailbox_capacity).
WORKERS = EngineSettings().scheduler_workers
MAILBOX = 10_000
#: No wait in this benchmark is unbounded.
WAIT_S = 60.0
#: A halt of ours not complete after this long has lost an ack: counted as incomplete.
INCOMPLETE_S = 10.0
HALT = Halt(epoch=1, mode=HaltMode.EMERGENCY, reason="bench", source="bench")
#: One entry per message to the kill switch refused for a full mailbox (see start_ours).
LOST: list[int] = []


class Ping(Message):
    seq: int


class Go(Message):
    """Tell the sender to send ``count`` pings."""

    count: int


# -- shared harness -------------------------------------------------------------------------


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def repeat(once: Callable[[], Any], runs: int, warmup: int) -> tuple[list[Any], list[float]]:
    """``once()`` ``runs`` times after ``warmup`` discarded calls: (results, process CPU seconds).

    A full GC runs before each call. CPU time is less disturbed than wall time by other
    processes on a shared machine.
    """
    results, cpu = [], []
    for i in range(warmup + runs):
        gc.collect()
        c0 = time.process_time()
        result = once()
        if i >= warmup:
            results.append(result)
            cpu.append(time.process_time() - c0)
    return results, cpu


def runtime() -> Runtime:
    """The engine's runtime; never shut down: the subprocess ends with os._exit once it reports."""
    return Runtime(workers=WORKERS, mailbox_capacity=MAILBOX, name="bench")


def wait_registered(rt: Runtime, ks: Any, n: int, t0: float) -> float:
    """Seconds from ``t0`` until the kill switch has registered ``n`` participants.

    Public APIs only: the runtime's snapshot of the kill switch (``processed``, O(1)) is polled
    each millisecond; once it has handled ``n`` messages (each vault tells one ``Register``; its
    own timers add a few), or 0.1 s after the last check, one ``GetStatus`` ask confirms the count.
    The figure is the poll's instant, so the ask's O(N) status is not in it.
    """
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        recheck = time.monotonic() + 0.1
        while getattr(rt.actor_info(ks), "processed", 0) < n and not LOST and time.monotonic() < recheck:
            time.sleep(0.001)
        polled = time.perf_counter()
        registered = ks.ask(GetStatus(), timeout=WAIT_S).registered
        if LOST:
            raise RuntimeError(f"{n - registered} of {n} vaults never registered: {len(LOST)} messages "
                               "refused by the kill switch's full mailbox (MailboxFull)")
        if registered >= n:
            return polled - t0
    raise TimeoutError("timed out waiting for every vault registered")


class Counter:
    """Counts arrivals from any thread's actor; reports each multiple of ``every`` on a queue."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.count = 0
        self.done: queue.SimpleQueue[float] = queue.SimpleQueue()

    def hit(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.done.put(time.perf_counter())

    def wait(self) -> float:
        return self.done.get(timeout=WAIT_S)


# -- halt: the three implementations -----------------------------------------------------------
#
# Each starts N participants and returns (start-up seconds, halt): ``halt()`` broadcasts one halt,
# waits for every ack and returns (seconds from trigger to last ack, the kill switch's own figure
# or None).

Halt1 = Callable[[], tuple[float, float | None] | None]  # None: the halt never completed


def start_ours(n: int) -> tuple[float, Halt1]:
    done: queue.SimpleQueue[tuple[float, float]] = queue.SimpleQueue()

    def on_event(kind: str, details: dict[str, Any]) -> None:
        if details.get("what") == "halt complete":
            done.put((time.perf_counter(), details["latency_s"]))

    rt = runtime()
    # A participant whose Register or HaltAck the kill switch's full mailbox refuses only logs it.
    logger.add(lambda _: LOST.append(1), level="WARNING", filter=lambda r: "could not reach the kill switch" in r["message"])
    board = HaltBoard()
    # Same disk as the engine's data dir; removed by the parent (see run_worker).
    data_dir = Path(os.environ["BENCH_HALT_TMP"])
    t0 = time.perf_counter()
    ks = KillSwitch.start(KillSwitchSettings(ack_deadline_s=WAIT_S), data_dir, board, environ={}, on_event=on_event)
    for i in range(n):
        Vault.start(board, f"vault-{i:05d}")
    startup = wait_registered(rt, ks, n, t0)

    def halt() -> tuple[float, float | None] | None:
        start = time.perf_counter()
        ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="bench", source="bench"))
        try:
            end, internal = done.get(timeout=INCOMPLETE_S)
        except queue.Empty:
            return None
        return end - start, internal

    return startup, halt


class PlainCollector(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, registered: Counter, acked: Counter) -> None:
        super().__init__()
        self.registered = registered
        self.acked = acked

    def on_receive(self, message: Any) -> None:
        (self.acked if type(message) is HaltAck else self.registered).hit()


class PlainVault(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, collector: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.collector = collector
        self.halted = False

    def on_start(self) -> None:
        self.collector.tell(Register(urn=self.actor_urn, name="vault", role="worker"))

    def on_receive(self, message: Any) -> None:
        if type(message) is Halt:
            self.halted = True
            self.collector.tell(HaltAck(epoch=message.epoch, actor=self.actor_urn, in_flight=0))


def start_pykka(n: int) -> tuple[float, Halt1]:
    registered, acked = Counter(n), Counter(n)
    t0 = time.perf_counter()
    collector = PlainCollector.start(registered, acked)
    refs = [PlainVault.start(collector) for _ in range(n)]
    startup = registered.wait() - t0

    def halt() -> tuple[float, float | None]:
        start = time.perf_counter()
        for ref in refs:
            ref.tell(HALT)
        return acked.wait() - start, None

    return startup, halt


def start_asyncio(n: int) -> tuple[float, Halt1]:
    loop = asyncio.new_event_loop()
    acks: asyncio.Queue[Any] = asyncio.Queue()
    inboxes: list[asyncio.Queue[Any]] = []
    tasks: list[asyncio.Task[None]] = []  # referenced, so they are not collected
    registered, acked = Counter(n), Counter(n)
    wake = asyncio.Event()

    async def participant(urn: str, inbox: asyncio.Queue[Any]) -> None:
        acks.put_nowait(Register(urn=urn, name="vault", role="worker"))
        while True:
            message = await inbox.get()
            if type(message) is Halt:
                acks.put_nowait(HaltAck(epoch=message.epoch, actor=urn, in_flight=0))

    async def collect() -> None:
        while True:
            message = await acks.get()
            counter = acked if type(message) is HaltAck else registered
            counter.hit()
            if counter.count % n == 0:
                wake.set()

    async def start() -> None:
        tasks.append(loop.create_task(collect()))
        for i in range(n):
            inboxes.append(asyncio.Queue())
            tasks.append(loop.create_task(participant(f"urn:{i}", inboxes[-1])))
        await wake.wait()

    async def broadcast() -> None:
        wake.clear()
        for inbox in inboxes:
            inbox.put_nowait(HALT)
        await wake.wait()

    t0 = time.perf_counter()
    loop.run_until_complete(asyncio.wait_for(start(), WAIT_S))
    startup = registered.wait() - t0

    def halt() -> tuple[float, float | None]:
        begin = time.perf_counter()
        loop.run_until_complete(asyncio.wait_for(broadcast(), WAIT_S))
        return acked.wait() - begin, None

    return startup, halt


HALT_IMPLS: dict[str, Callable[[int], tuple[float, Halt1]]] = {
    "ours": start_ours,
    "pykka": start_pykka,
    "asyncio": start_asyncio,
}


def measure_halt(impl: str, n: int, runs: int, warmup: int) -> dict[str, Any]:
    rss0 = rss_mb()
    startup, halt = HALT_IMPLS[impl](n)
    rss = rss_mb()
    threads = threading.active_count()
    results, cpu = repeat(halt, runs, warmup)
    timings = [r for r in results if r is not None]
    result = {
        "startup_s": startup,
        "rss_mb": rss,
        "rss_base_mb": rss0,
        "threads": threads,
        "latency_s": [t for t, _ in timings],
        "cpu_s": [c for r, c in zip(results, cpu) if r is not None],
        "incomplete": len(results) - len(timings),
        "lost": len(LOST),
    }
    if timings and timings[0][1] is not None:
        result["internal_s"] = [i for _, i in timings]
    return result


# -- tell and ask between two actors ---------------------------------------------------------


class ReceiverMixin:
    """Counts pings; answers an ask with the message itself. Mixed into ours and pykka's actor."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def on_receive(self, message: Any) -> Any:
        if type(message) is Ping:
            self.counter.hit()
        return message


class SenderMixin:
    """Tells ``Go.count`` pings to the receiver from one handler."""

    def __init__(self, receiver: Any) -> None:
        super().__init__()
        self.receiver = receiver

    def on_receive(self, message: Any) -> None:
        tell = self.receiver.tell
        for i in range(message.count):
            tell(Ping(seq=i))


class OurReceiver(ReceiverMixin, Actor):
    mailbox_capacity = 10_000_000  # measure throughput, not the MailboxFull backpressure


class OurSender(SenderMixin, Actor):
    pass


class PlainReceiver(ReceiverMixin, pykka.ThreadingActor):
    use_daemon_thread = True


class PlainSender(SenderMixin, pykka.ThreadingActor):
    use_daemon_thread = True


#: Asks per timed block; blocks of ours and pykka alternate.
ASK_BLOCK = 50


def tell_and_ask(messages: int, runs: int, warmup: int, asks: int) -> dict[str, Any]:
    """Ours and pykka in this one process, alternating run by run (ours, pykka, ours, ...), so
    that whatever else loads the machine weighs on both alike.

    Tell: one run sends ``messages`` pings and waits for the receiver to count them (rate, and
    process CPU per message: the other pair is idle meanwhile). Ask: blocks of ``ASK_BLOCK``
    round trips from this thread, each timed; CPU per ask over the block. One warm-up block each.
    """
    runtime()
    pairs = {}
    classes = {"ours": (OurReceiver, OurSender), "pykka": (PlainReceiver, PlainSender)}
    for impl, (receiver_cls, sender_cls) in classes.items():
        counter = Counter(messages)
        receiver = receiver_cls.start(counter)
        pairs[impl] = (counter, receiver, sender_cls.start(receiver))
    result: dict[str, dict[str, list[float]]] = {
        impl: {"tell_per_s": [], "tell_cpu_s": [], "ask_s": [], "ask_cpu_s": []} for impl in pairs
    }
    for i in range(warmup + runs):
        for impl, (counter, _, sender) in pairs.items():
            gc.collect()
            c0, start = time.process_time(), time.perf_counter()
            sender.tell(Go(count=messages))
            rate = messages / (counter.wait() - start)
            if i >= warmup:
                result[impl]["tell_per_s"].append(rate)
                result[impl]["tell_cpu_s"].append((time.process_time() - c0) / messages)
    gc.collect()
    for block in range(1 + max(1, asks // ASK_BLOCK)):
        for impl, (_, receiver, _) in pairs.items():
            times = []
            c0 = time.process_time()
            for _ in range(ASK_BLOCK):
                start = time.perf_counter()
                receiver.ask(Go(count=0), timeout=WAIT_S)
                times.append(time.perf_counter() - start)
            if block:
                result[impl]["ask_s"] += times
                result[impl]["ask_cpu_s"].append((time.process_time() - c0) / ASK_BLOCK)
    return result


# -- the subprocess side ---------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("worker", choices=("halt", "tell", "refusal"))
    parser.add_argument("impl")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--asks", type=int, default=0)
    args = parser.parse_args()
    logger.remove()  # the engine's human format at INFO, without importing the whole engine
    logger.add(sys.stderr, level="INFO", backtrace=False, diagnose=False)
    try:
        if args.worker == "halt":
            result = measure_halt(args.impl, args.n, args.runs, args.warmup)
        elif args.worker == "tell":
            result = tell_and_ask(args.n, args.runs, args.warmup, args.asks)
        else:
            from halt_refusal import measure_refusal  # beside this file (its folder is sys.path[0])

            result = measure_refusal(args.n, args.runs, runtime, WAIT_S)
    except BaseException:  # noqa: BLE001 - report, then leave without joining actor threads
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip tearing down 10,000 actors: not what is measured


if __name__ == "__main__":
    main()
