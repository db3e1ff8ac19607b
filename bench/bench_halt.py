"""Engine figures: halt broadcast to N actors, and tell/ask between two actors.

    .venv/bin/python bench/bench_halt.py            # ~2-3 minutes
    .venv/bin/python bench/bench_halt.py --quick    # ~30-50 s: fewer repeats, N still up to 10,000

Halt (N = 100, 1,000, 10,000), three implementations of one protocol: every participant tells
``Register`` on start, a ``Halt`` is broadcast, every participant answers ``HaltAck``; the
figure is the time from the trigger until the last ack has been counted.

- ours: the real ``KillSwitch`` and N real ``Vault`` participants on ``supervisors.Runtime``
  (the engine's default pool size). Timed from ``tell(Trigger)`` in the main thread to the kill
  switch's ``on_event("halt complete")`` callback (no polling); so it also pays the state file
  write + fsync of the TRIGGERED transition. The kill switch's own ``halt_latency_s`` (from its
  handling of the Trigger) is shown beside it.
- pykka: plain pykka thread-per-actor, N ``ThreadingActor`` participants and a collector actor;
  the main thread tells ``Halt`` to each, the collector counts acks.
- asyncio: N tasks each awaiting its own ``asyncio.Queue``, a collector task.

Each (implementation, N) runs in a fresh subprocess so RSS and threads do not mix. Start-up is
the time to start N participants until all have registered (ours: the kill switch's participant
count, read directly). RSS is read with psutil once all have registered.

Tell: a sender actor tells M ``Ping`` messages to a receiver actor, timed until the receiver has
counted all M; ask: the main thread asks the receiver, one round trip at a time. Ours vs pykka.

Targets (issue 2): N=10,000 halted and acked in <= 100 ms (median), <= 100 MB RSS, started in
<= 1 s; tell throughput >= plain pykka. A missed target prints MISSED; the exit status is
non-zero only on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from importlib.metadata import version
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
from xorj_actors.kill_switch import HaltBoard, KillSwitch  # noqa: E402
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Trigger  # noqa: E402
from xorj_actors.vaults import Vault  # noqa: E402

SIZES = (100, 1_000, 10_000)
TELL_IMPLS = ("ours", "pykka")
TARGET_HALT_S = 0.100
TARGET_RSS_MB = 100.0
TARGET_START_S = 1.0
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


def repeat(once: Callable[[], Any], runs: int, warmup: int, *, collect: bool = True) -> tuple[list[Any], list[float]]:
    """``once()`` ``runs`` times after ``warmup`` discarded calls: (results, process CPU seconds).

    A full GC runs before each call unless ``collect`` is false (calls too short for it). CPU
    time is less disturbed than wall time by other processes on a shared machine.
    """
    results, cpu = [], []
    for i in range(warmup + runs):
        if collect:
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


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.001)


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

    runtime()
    # A participant whose Register or HaltAck the kill switch's full mailbox refuses only logs it.
    logger.add(lambda _: LOST.append(1), level="WARNING", filter=lambda r: "could not reach the kill switch" in r["message"])
    board = HaltBoard()
    # Same disk as the engine's data dir; removed by the parent (see run_worker).
    data_dir = Path(os.environ["BENCH_HALT_TMP"])
    t0 = time.perf_counter()
    ks = KillSwitch.start(KillSwitchSettings(ack_deadline_s=WAIT_S), data_dir, board, environ={}, on_event=on_event)
    for i in range(n):
        Vault.start(board, f"vault-{i:05d}")
    participants = ks.actor_inbox.actor.participants  # read directly: no ask in the way
    wait_for(lambda: len(participants) >= n or bool(LOST), "every vault registered")
    if LOST:
        raise RuntimeError(f"{n - len(participants)} of {n} vaults never registered: {len(LOST)} messages "
                           "refused by the kill switch's full mailbox (MailboxFull)")
    startup = time.perf_counter() - t0

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


def tell_and_ask(impl: str, messages: int, runs: int, warmup: int, asks: int) -> dict[str, Any]:
    receiver_cls, sender_cls = (OurReceiver, OurSender) if impl == "ours" else (PlainReceiver, PlainSender)
    if impl == "ours":
        runtime()
    counter = Counter(messages)
    receiver = receiver_cls.start(counter)
    sender = sender_cls.start(receiver)

    def tell_once() -> float:
        start = time.perf_counter()
        sender.tell(Go(count=messages))
        return messages / (counter.wait() - start)

    def ask_once() -> float:
        start = time.perf_counter()
        receiver.ask(Go(count=0), timeout=WAIT_S)
        return time.perf_counter() - start

    return {"tell_per_s": repeat(tell_once, runs, warmup)[0], "ask_s": repeat(ask_once, asks, max(1, asks // 10), collect=False)[0]}


# -- the subprocess side ---------------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    logger.remove()  # the engine's human format at INFO, without importing the whole engine
    logger.add(sys.stderr, level="INFO", backtrace=False, diagnose=False)
    try:
        if args.worker == "halt":
            result = measure_halt(args.impl, args.n, args.runs, args.warmup)
        else:
            result = tell_and_ask(args.impl, args.n, args.runs, args.warmup, args.asks)
    except BaseException:  # noqa: BLE001 - report, then leave without joining actor threads
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip tearing down 10,000 actors: not what is measured


def run_worker(kind: str, impl: str, n: int, runs: int, warmup: int, asks: int = 0) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; on failure ``{"error": its stderr's tail}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--impl", impl, "--n", str(n),
           "--runs", str(runs), "--warmup", str(warmup), "--asks", str(asks)]
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryDirectory(prefix="bench-halt-") as tmp:
        env = {**os.environ, "BENCH_HALT_TMP": tmp}
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=600, check=False, env=env)
        except subprocess.TimeoutExpired:
            return {"error": "timed out after 600 s"}
        if proc.returncode != 0 or not proc.stdout.strip():
            err.seek(0)
            lines = [line for line in err.read().splitlines() if "| INFO " not in line and "| CRITICAL " not in line]
            return {"error": f"exit {proc.returncode}: " + "\n".join(lines[-6:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the report ------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC | {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable) | Python {platform.python_version()} | pykka "
        f"{version('pykka')} | {platform.machine()} {platform.system()} {platform.release()} | load avg {load}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report_halt(results: dict[tuple[str, int], dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Print the halt table and the targets; returns (targets missed, errors)."""
    missed, errors = [], []
    print("\nHalt broadcast: trigger -> every participant acked. Wall ms over the runs (count in brackets);"
          "\nks-int: the kill switch's own latency; cpu: process CPU ms per halt; RSS: total (+ over the"
          "\ninterpreter with the same imports, measured before start-up); ratios: median / other median")
    print(f"{'N':>6} {'impl':<8} {'median':>8} {'p99':>8} {'min':>8} {'max':>8} {'ks-int':>8} {'cpu':>8}"
          f" {'start s':>7} {'RSS MB':>13} {'thr':>6} {'vs pykka':>9} {'vs async':>9}")
    for n in SIZES:
        base = {impl: median(results[impl, n].get("latency_s", [])) for impl in HALT_IMPLS}
        for impl in HALT_IMPLS:
            r = results[impl, n]
            if "error" in r:
                errors.append(f"{impl} N={n}: {r['error']}")
                print(f"{n:>6} {impl:<8} ERROR (below)")
                continue
            lat = r["latency_s"] or [float("nan")]
            med = base[impl]
            internal = ms(median(r["internal_s"])) if "internal_s" in r else f"{'-':>8}"
            rss = f"{r['rss_mb']:.0f} (+{r['rss_mb'] - r['rss_base_mb']:.0f})"
            print(f"{n:>6} {impl:<8} {ms(med)} {ms(pct(lat, 0.99))} {ms(min(lat))} {ms(max(lat))} {internal}"
                  f" {ms(median(r['cpu_s']))} {r['startup_s']:7.2f} {rss:>13} {r['threads']:>6}"
                  f" {med / base['pykka']:8.3f}x {med / base['asyncio']:8.3f}x [{len(r['latency_s'])}]")
            if r["incomplete"]:
                errors.append(f"{impl} N={n}: {r['incomplete']} halt(s) never completed; {r['lost']} messages "
                              "refused by the kill switch's full mailbox (MailboxFull)")
    ours = results["ours", SIZES[-1]]
    if "error" in ours:
        return [*missed, "every N=10,000 target (no figures)"], errors
    checks = [
        (f"halt N={SIZES[-1]:,} median", median(ours["latency_s"]) * 1e3, "ms", TARGET_HALT_S * 1e3),
        (f"RSS N={SIZES[-1]:,}", ours["rss_mb"], "MB", TARGET_RSS_MB),
        (f"start-up N={SIZES[-1]:,}", ours["startup_s"], "s", TARGET_START_S),
    ]
    print("\nTargets (ours):")
    for what, value, unit, target in checks:
        ok = value <= target
        print(f"  {what:<22} {value:9.2f} {unit:<3} target <= {target:g} {unit:<3} {verdict(ok)}")
        if not ok:
            missed.append(what)
    return missed, errors


def report_tell(results: dict[str, dict[str, Any]], messages: int) -> list[str]:
    print(f"\nTell: sender actor -> receiver actor, {messages:,} messages per run; ask: main thread -> receiver")
    print(f"{'impl':<8} {'tell/s med':>11} {'min':>9} {'max':>9} {'vs pykka':>9}   {'ask med us':>10} {'ask p99 us':>10} {'vs pykka':>9}")
    tell_base = statistics.median(results["pykka"]["tell_per_s"])
    ask_base = statistics.median(results["pykka"]["ask_s"])
    for impl in TELL_IMPLS:
        rates, asks = results[impl]["tell_per_s"], results[impl]["ask_s"]
        rate, rt = statistics.median(rates), statistics.median(asks)
        print(f"{impl:<8} {rate:11,.0f} {min(rates):9,.0f} {max(rates):9,.0f} {rate / tell_base:8.2f}x   "
              f"{rt * 1e6:10.1f} {pct(asks, 0.99) * 1e6:10.1f} {rt / ask_base:8.2f}x")
    ours = statistics.median(results["ours"]["tell_per_s"])
    ok = ours >= tell_base
    print(f"\nTarget: tell ours >= plain pykka: {ours / tell_base:.2f}x {verdict(ok)}")
    return [] if ok else ["tell throughput"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~30 s run: fewer repeats")
    parser.add_argument("--only", choices=("halt", "tell"), help="run one half")
    parser.add_argument("--worker", choices=("halt", "tell"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--asks", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    began = time.monotonic()
    print(f"bench_halt{' --quick' if args.quick else ''} | {machine()}")
    missed: list[str] = []
    errors: list[str] = []
    if args.only != "tell":
        halt: dict[tuple[str, int], dict[str, Any]] = {}
        for n in SIZES:
            for impl in HALT_IMPLS:
                slow = impl == "pykka" and n >= 10_000  # 2-10 s a run
                runs, warmup = ((1, 0) if slow else (7, 1)) if args.quick else ((7, 1) if slow else (15, 2))
                halt[impl, n] = run_worker("halt", impl, n, runs, warmup)
                print(f"  halt {impl:<7} N={n:<6} done ({time.monotonic() - began:5.1f} s)", flush=True)
        m, e = report_halt(halt)
        missed += m
        errors += e
    if args.only != "halt":
        messages, runs, asks = (50_000, 5, 500) if args.quick else (200_000, 7, 3_000)
        tell = {impl: run_worker("tell", impl, messages, runs, 1, asks) for impl in TELL_IMPLS}
        failed = [f"tell {impl}: {r['error']}" for impl, r in tell.items() if "error" in r]
        if failed:
            errors += failed
        else:
            missed += report_tell(tell, messages)
    print(f"\n{len(missed)} target(s) missed{': ' + ', '.join(missed) if missed else ''}; "
          f"{time.monotonic() - began:.0f} s; load avg now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main())
