"""Execution figures: trades/s and intent -> confirmed latency through the real engine.

    .venv/bin/python bench/bench_execution.py              # ~4 minutes (both APIs)
    .venv/bin/python bench/bench_execution.py --quick      # ~70 s (both APIs)
    .venv/bin/python bench/bench_execution.py --api ultra  # one API: half the time
    .venv/bin/python bench/bench_execution.py --profile    # adds a cProfile of the executor's loop

Each API the executor trades through (``[jupiter] api``: ``swap`` is ``/swap/v1/quote`` then
``/swap/v1/swap-instructions`` and our ``sendTransaction``; ``ultra`` is ``/ultra/v1/order`` then
``/ultra/v1/execute``) is run with each signer (SoftHSM2 over PKCS#11, then the development key):
each such case runs in a fresh child process (this file with ``--case`` and ``--api``) that starts:

- the localnet as its own process (the ``xorj-actors localnet`` code; it takes one of the two
  cores): ``--vaults`` vaults, each owned by its own key of the case's store (``[localnet]
  vault_authorities`` are the HSM keys' public keys; the dev-key case uses the localnet's own), ``confirmed_lag = 0`` (the smallest the localnet allows), ``--slot-ms``
  slots (10 ms, the smallest it allows, by default) and a blockhash window of mainnet's 60 s;
- the real engine in the child's own process (``Engine``: the real tree, audit on SQLite with
  fsync, kill switch, breakers, signer, RPC gateway, confirmation, executor; no vault actors),
  pointed at that localnet through the ``[execution]`` URLs, with the case's ``[jupiter] api``.

A driver actor tells the Executor ``TradeRequest``s (USDC -> JUP, 1 USDC, each a new trade id,
the vaults in turn, tier: 1 confirmation) and takes the ``TradeOutcome``s, keeping a fixed number
of trades in flight (a closed loop), one phase per number in ``--levels``. Latency runs from the
moment a request is told to the moment the driver handles its confirmed outcome. 1 in flight is
the pipeline's own latency; trades/s counts confirmed outcomes after a ramp.

Baseline, same run, same localnet code (the first dev-key case's localnet process, before its
engine starts; one baseline for every API): pre-signed swaps sent with ``sendTransaction`` and skipPreflight by a child process over
32 keep-alive HTTP clients, as bench_localnet does; a sample is checked to have landed.

Where the time goes: the awaits of the pipeline's stages are timed by wrapping the running
Executor's methods (nothing in xorj_actors changes); at 1 in flight each stage's CPU on the
executor's loop thread is read too. Per-thread CPU of the engine process and the localnet
process's CPU come from /proc. ``--profile`` adds a cProfile of the executor's loop thread at the
highest level, summed by package.

Targets (issue 5): >= 500 trades/s carried from signed to confirmed with SoftHSM signing;
p99 intent -> confirmed <= 50 ms. A missed target is a figure (MISSED), not an error; a trade
that does not end ``confirmed`` is an error (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solders.hash import Hash  # noqa: E402

from supervisors import Actor, Message  # noqa: E402
from xorj_actors.config import parse_config  # noqa: E402
from xorj_actors.engine import Engine  # noqa: E402
from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus, TradeOutcome, TradeRequest  # noqa: E402
from xorj_actors.localnet import LocalnetSettings, build_genesis, dev_vault_authority, swap_transaction  # noqa: E402
from xorj_actors.quotas.settings import MAX_REQUESTS, Endpoint  # noqa: E402

TARGET_PER_S = 500
TARGET_P99_MS = 50.0
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN_ENV = "XORJ_BENCH_HSM_PIN"
CLIENTS = 32
AMOUNT = 1_000_000  # 1 USDC: small, and far inside each vault's 10,000
_HTTP_HEAD = b"POST / HTTP/1.1\r\nHost: localnet\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_TICK = os.sysconf("SC_CLK_TCK")
#: What each ``[jupiter] api`` calls per trade, for the report's block headers.
API_CALLS = {
    "swap": "GET /swap/v1/quote, POST /swap/v1/swap-instructions, then our sendTransaction",
    "ultra": "GET /ultra/v1/order, then POST /ultra/v1/execute (Jupiter sends)",
}


# -- the chain: a localnet process, and the raw baseline ------------------------------------------


def localnet_toml(vaults: int, slot_ms: int, authorities: list[str]) -> str:
    """The ``[localnet]`` section shared by the localnet process and the engine (same genesis).

    The blockhash window keeps mainnet's wall time (150 blocks of 400 ms, 60 s): 150 blocks of
    10 ms would be 1.5 s, and the executor reuses a blockhash for up to 1 s.
    """
    valid = max(150, 60_000 // slot_ms)
    return (
        f"[localnet]\nvaults = {vaults}\nslot_ms = {slot_ms}\nconfirmed_lag = 0\nfinalized_lag = 32\n"
        f"blockhash_valid_blocks = {valid}\nvault_authorities = {json.dumps(authorities)}\n"
    )


def start_localnet(tmp: Path, section: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    config = tmp / "localnet.toml"
    config.write_text(section + "[localnet.quote]\nquote_ttl_s = 30\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "xorj_actors.cli", "localnet", "--config", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise RuntimeError(f"the localnet did not start (exit {proc.returncode})")
    return proc, json.loads(line)


def rpc(url: str, method: str, params: list[Any]) -> Any:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["result"]


def raw_rate(urls: dict[str, str], vaults: int, seconds: float, tmp: Path) -> dict[str, float]:
    """Pre-signed dev-key swaps sent with skipPreflight by a child process for ``seconds``."""
    genesis = build_genesis(LocalnetSettings(vaults=vaults))
    keys = [dev_vault_authority(i) for i in range(vaults)]  # each vault's own key
    blockhash = Hash.from_string(rpc(urls["rpc"], "getLatestBlockhash", [{"commitment": "processed"}])["value"]["blockhash"])
    count = int(6_000 * seconds)  # more than a 2-core run sends in that time (bench_localnet: ~3,500/s)
    txs = [
        swap_transaction(genesis, genesis.vaults[i % vaults], keys[i % vaults], blockhash, sell="USDC", buy="JUP",
                         amount_in=1 + i // vaults, amount_out=1)
        for i in range(count)
    ]
    path = tmp / "raw.b64"
    path.write_text("\n".join(base64.b64encode(bytes(tx)).decode() for tx in txs))
    done = subprocess.run([sys.executable, __file__, "--send", str(path), "--rpc", urls["rpc"], "--seconds", str(seconds)],
                          capture_output=True, text=True, timeout=120 + seconds, check=True)
    figures = json.loads(done.stdout)
    # A sendTransaction without preflight is answered even when the swap is dropped: count the
    # ones that did not land (a sample of up to 256, spread over what was sent) as errors.
    sent = [str(tx.signatures[0]) for tx in txs[: figures["done"]]]
    sample = sent[:: max(1, len(sent) // 256)][:256]
    # History search: the status cache only answers for 300 slots (3 s of 10 ms slots).
    statuses = rpc(urls["rpc"], "getSignatureStatuses", [sample, {"searchTransactionHistory": True}])["value"]
    figures["not_landed"] = sum(1 for s in statuses if s is None or s.get("err") is not None)
    figures["sampled"] = len(sample)
    return figures


async def send_all(url: str, txs: list[bytes], seconds: float) -> dict[str, float]:
    """sendTransaction (skipPreflight) over ``CLIENTS`` keep-alive connections until time is up."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    options = {"encoding": "base64", "skipPreflight": True}
    bodies = iter(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "sendTransaction",
                    "params": [base64.b64encode(tx).decode(), options]}).encode()
        for i, tx in enumerate(txs)
    )
    tally = {"done": 0, "errors": 0}

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            # The deadline is checked before a swap is taken, so every swap taken is sent.
            while time.perf_counter() < deadline and (body := next(bodies, None)) is not None:
                writer.write(_HTTP_HEAD % len(body) + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                tally["errors"] += b'"error"' in await reader.readexactly(length)
                tally["done"] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    return {"rate": tally["done"] / elapsed, "done": tally["done"], "errors": tally["errors"]}


def sender_main(path: str, url: str, seconds: float) -> int:
    txs = [base64.b64decode(line) for line in Path(path).read_text().split()]
    print(json.dumps(asyncio.run(send_all(url, txs, seconds))))
    return 0


# -- keys -----------------------------------------------------------------------------------------


def make_token(root: Path, vaults: int) -> tuple[list[str], str, dict[str, str]]:
    """A private SoftHSM2 token with one Ed25519 key per vault: (public keys, signer TOML, environment).

    SoftHSM reads ``SOFTHSM2_CONF`` when the module is first loaded in a process, so it is set
    here, before the engine's signer loads it (tests/plugins/softhsm.py does the same).
    """
    from xorj_actors.signers import Pkcs11Settings, _pkcs11, vault_id

    (root / "tokens").mkdir(mode=0o700)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = uuid.uuid4().hex[:12]
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", uuid.uuid4().hex[:12], "--pin", pin],
        check=True, capture_output=True, timeout=30,
    )
    settings = Pkcs11Settings(module=MODULE, token_label="bench", pin_env=PIN_ENV)
    environ = {PIN_ENV: pin}
    rows = _pkcs11.init_keys(settings, environ, [vault_id(i) for i in range(vaults)])
    toml = (
        f'[[signers.keys]]\nname = "bench"\nbackend = "pkcs11"\n'
        f'pkcs11.module = "{MODULE}"\npkcs11.token_label = "bench"\npkcs11.pin_env = "{PIN_ENV}"\n'
    )
    return [str(pk) for _, pk, _ in rows], toml, environ


def dev_key() -> tuple[list[str], str, dict[str, str]]:
    # The localnet's own development keys: no vault_authorities needed.
    return [], '[[signers.keys]]\nname = "bench"\nbackend = "dev_key"\n', {}


# -- the driver: a closed loop of trades ----------------------------------------------------------


class Burst(Message):
    """Keep ``in_flight`` trades going until ``total`` have been told or ``until`` (perf_counter)."""

    phase: str
    in_flight: int
    total: int
    until: float


class Driver(Actor):
    """Tells the Executor trades and records, per trade, when it was told and when it ended."""

    mailbox_capacity = 100_000

    def __init__(self, executor: Any, genesis: Any, vaults: int) -> None:
        super().__init__()
        self.executor = executor
        self.vault_ids = [v.vault_id for v in genesis.vaults[:vaults]]
        self.usdc, self.jup = str(genesis.token("USDC").mint), str(genesis.token("JUP").mint)
        self.told: dict[str, float] = {}
        self.ended: dict[str, tuple[float, str, str | None]] = {}
        self.timed_out: list[str] = []
        self.next = 0
        self.phase = ""
        self.budget = 0
        self.until = 0.0
        self.open = 0
        self.idle = threading.Event()
        self.idle.set()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Burst):  # the sender cleared ``idle`` before telling it
            self.phase, self.budget, self.until = message.phase, message.total, message.until
            for _ in range(message.in_flight):
                self._tell_one()
            if self.open == 0:
                self.idle.set()
        elif isinstance(message, TradeOutcome):
            now = time.perf_counter()
            if message.status == "timed_out":
                self.timed_out.append(message.trade_id)  # not final: the real outcome follows
                return
            self.ended[message.trade_id] = (now, message.status, message.error)
            self.open -= 1
            self._tell_one()
            if self.open == 0:
                self.idle.set()

    def _tell_one(self) -> None:
        if self.budget <= 0 or time.perf_counter() >= self.until:
            return
        self.budget -= 1
        i = self.next
        self.next += 1
        vault = self.vault_ids[i % len(self.vault_ids)]
        request = TradeRequest(
            trade_id=f"{vault}:bench-{self.phase}:{i}", vault_id=vault, round_key=f"bench-{self.phase}", index=i,
            input_mint=self.usdc, output_mint=self.jup,
            amount_in=AMOUNT, slippage_bps=100, value_usd=AMOUNT / 1e6, reply_to=self.actor_ref,
        )
        self.told[request.trade_id] = time.perf_counter()
        self.open += 1
        self.executor.tell(request)


# -- stage timers (wrapping the running Executor's methods) ---------------------------------------


class Stages:
    """Wall time of every await of the pipeline's stages, by stage, on the executor's loop thread."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.watch_started: dict[str, float] = {}
        self.sent_at: dict[str, float] = {}
        self.submitted: dict[str, float] = {}
        self.on = True
        self.cpu_on = False

    def clear(self) -> None:
        self.times, self.cpu = defaultdict(list), defaultdict(list)

    def install(self, pipeline: Any) -> None:
        io = pipeline.io
        q, c = io.quotes, io.chain
        self._wrap(io, "db", lambda *a, **k: "ledger lookup (idempotency)")
        self._wrap(io, "durable", lambda event_type, _tid, details: {
            "TRADE_INTENT": "audit: intent durable", "TRADE_CONFIRMATION": "audit: outcome durable",
        }.get(event_type.value, f"audit: {details.get('phase', '?')} durable"))
        self._wrap(q, "quote", lambda *a, **k: "quote (GET /swap/v1/quote)")
        self._wrap(q, "prices", lambda *a, **k: "reference price (GET /price/v3)")
        self._wrap(q, "swap_instructions", lambda *a, **k: "POST /swap/v1/swap-instructions")
        self._wrap(q, "order", lambda *a, **k: "GET /ultra/v1/order")
        execute = q.execute

        async def execute_noted(tx: Any, request_id: str) -> Any:
            # /execute is Ultra's send: the confirmation stage runs from its answer. The id is
            # the answer's signature (an RFQ maker may pay the fee), else ours.
            answer = await execute(tx, request_id)
            signature = answer.signature if answer.signature is not None else tx.signatures[0]
            self.sent_at[str(signature)] = time.perf_counter()
            return answer

        q.execute = execute_noted
        self._wrap(q, "execute", lambda *a, **k: "POST /ultra/v1/execute")
        self._wrap(io.routes, "tables", lambda *a, **k: "lookup tables (cached)")
        self._wrap(io.routes, "check", lambda *a, **k: "route checks (allowlist, decoding, simulated effects)")
        self._wrap(io.routes, "last_valid_block_height", lambda *a, **k: "last valid height (getLatestBlockhash)")
        self._wrap(c, "blockhash", lambda *a, **k: "blockhash (cached)")
        self._wrap(io.fees, "price", lambda *a, **k: "priority fee (written accounts, cached)")
        self._wrap(c, "simulate", lambda *a, **k: "simulateTransaction")
        send = c.send

        async def send_noted(tx: Any, *, preflight: bool) -> None:
            await send(tx, preflight=preflight)
            if preflight:
                self.sent_at[str(tx.signatures[0])] = time.perf_counter()

        c.send = send_noted
        self._wrap(c, "send", lambda tx, preflight: "sendTransaction (preflight)" if preflight else "rebroadcast")
        self._wrap(pipeline.attempts, "sign", lambda *a, **k: "sign (Signer actor)")
        landing = pipeline.landing
        watch, outcome, submit = landing.watch, landing.on_signature_outcome, pipeline.submit

        def watched(req: Any, attempt: Any) -> Any:
            self.watch_started[attempt.signature] = time.perf_counter()
            return watch(req, attempt)

        def outcome_arrived(message: Any) -> None:
            watched_at = self.watch_started.pop(message.signature, None)
            sent_at = self.sent_at.pop(message.signature, None)
            if watched_at is not None and self.on:
                # No send answer yet: the outcome overtook it, nothing to wait for after the send.
                waited = time.perf_counter() - sent_at if sent_at is not None else 0.0
                self.times["confirmation (send answered -> outcome)"].append(waited)
            outcome(message)

        def submitted(req: Any) -> None:
            self.submitted[req.trade_id] = time.perf_counter()
            submit(req)

        landing.watch, landing.on_signature_outcome, pipeline.submit = watched, outcome_arrived, submitted

    def _wrap(self, obj: Any, name: str, stage_of: Any) -> None:
        original = getattr(obj, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time() if self.cpu_on else 0.0
            try:
                return await original(*args, **kwargs)
            finally:
                if self.on:
                    stage = stage_of(*args, **kwargs)
                    self.times[stage].append(time.perf_counter() - start)
                    if self.cpu_on:
                        # The loop thread's CPU while this await ran: with one trade in flight,
                        # this stage's own client-side cost (with many, other trades' work too).
                        self.cpu[stage].append(time.thread_time() - cpu)

        setattr(obj, name, timed)


# -- CPU accounting -------------------------------------------------------------------------------


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, summed by name (digits dropped)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        name = re.sub(r"-?\d+$", "", names.get(int(task.name), "(other)"))
        out[name] += (int(fields[11]) + int(fields[12])) / _TICK
    return out


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


# -- one case -------------------------------------------------------------------------------------


def engine_toml(localnet: str, urls: dict[str, str], signer: str, api: str) -> str:
    """The engine's config: the localnet's genesis, its URLs, ``[jupiter] api`` and the signer."""
    return (
        '[engine]\nenvironment = "development"\n[vaults]\ncount = 0\n[http]\nenabled = false\n'
        + localnet + "enabled = false\n"
        + f'[execution]\nrpc_url = "{urls["rpc"]}"\nws_url = "{urls["ws"]}"\nquote_url = "{urls["quote"]}"\n'
        + f'[jupiter]\napi = "{api}"\n'
        + f'[strategy]\nurl = "{urls["quant"]}"\n'
        + signer
    )


def run_phase(driver_ref: Any, driver: Driver, phase: str, in_flight: int, total: int, seconds: float) -> tuple[float, float]:
    driver.idle.clear()
    start = time.perf_counter()
    driver_ref.tell(Burst(phase=phase, in_flight=in_flight, total=total, until=start + seconds))
    if not driver.idle.wait(seconds + 60):
        raise RuntimeError(f"{phase}: trades still open 60 s after the phase ended")
    return start, time.perf_counter()


def phase_figures(driver: Driver, phase: str, start: float, ramp: float, end: float) -> dict[str, Any]:
    mine = [tid for tid in driver.told if f":bench-{phase}:" in tid]
    lat = [driver.ended[t][0] - driver.told[t] for t in mine if t in driver.ended]
    statuses: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for t in mine:
        _, status, error = driver.ended.get(t, (0.0, "missing", None))
        statuses[status] += 1
        if status != "confirmed":
            errors[(error or status)[:160]] += 1
    late = sum(1 for t in driver.timed_out if f":bench-{phase}:" in t)
    if late:  # a 60 s tier timeout on a localnet is a fault even if the trade settled after it
        errors["timed_out before settling"] = late
    window = [driver.ended[t][0] for t in mine if t in driver.ended and driver.ended[t][1] == "confirmed"]
    in_window = sum(1 for t in window if start + ramp <= t <= end)
    return {
        "trades": len(mine), "statuses": dict(statuses), "errors": dict(errors),
        "rate": in_window / (end - start - ramp) if end - start > ramp else 0.0,
        "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) * 1e3 if lat else 0.0,
        "mean_ms": statistics.fmean(lat) * 1e3 if lat else 0.0,
    }


def pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0] * 1e3
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1e3


def stage_table(stages: Stages, trades: int) -> dict[str, dict[str, float]]:
    """Stage -> wall p50, p99 and mean (ms), calls per trade, mean loop-thread CPU per call (ms)."""
    return {
        name: {"p50": pct(v, 50), "p99": pct(v, 99), "mean": statistics.fmean(v) * 1e3, "calls": len(v) / max(trades, 1),
               "cpu": statistics.fmean(stages.cpu[name]) * 1e3 if stages.cpu.get(name) else float("nan")}
        for name, v in stages.times.items()
    }


def measure(ctx: dict[str, Any], phase: str, in_flight: int, seconds: float, ramp: float) -> dict[str, Any]:
    """One closed-loop phase: figures, stage timings, CPU of every engine thread and of the localnet."""
    driver_ref, driver, stages, localnet = ctx["driver_ref"], ctx["driver"], ctx["stages"], ctx["localnet"]
    stages.clear()
    stages.cpu_on = in_flight == 1
    cpu0, ln0 = thread_cpu(), process_cpu(localnet.pid)
    start, end = run_phase(driver_ref, driver, phase, in_flight, 10**9, seconds)
    cpu1, ln1 = thread_cpu(), process_cpu(localnet.pid)
    out = phase_figures(driver, phase, start, ramp, start + seconds)
    n = max(out["trades"], 1)
    out["in_flight"] = in_flight
    out["stages"] = stage_table(stages, n)
    out["cpu_ms_per_trade"] = {k: (cpu1[k] - cpu0.get(k, 0.0)) * 1e3 / n for k in cpu1}
    out["engine_cpu_ms_per_trade"] = sum(out["cpu_ms_per_trade"].values())
    out["engine_busy"] = out["engine_cpu_ms_per_trade"] * n / 1e3 / (end - start)
    out["localnet_cpu_ms_per_trade"] = (ln1 - ln0) * 1e3 / n
    out["localnet_busy"] = (ln1 - ln0) / (end - start)
    told = [t for t in driver.told if f":bench-{phase}:" in t and t in stages.submitted]
    out["handoff_ms"] = [pct([stages.submitted[t] - driver.told[t] for t in told], q) for q in (50, 99)]
    return out


def case_main(args: argparse.Namespace) -> int:
    """One backend, in this (fresh) process; prints its figures as one JSON line."""
    seconds, ramp = (3.0, 1.0) if args.quick else (8.0, 2.0)
    levels = levels_of(args)
    result: dict[str, Any] = {"case": args.case, "api": args.api, "load_avg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmpdir:
        tmp = Path(tmpdir)
        if args.case == "pkcs11":
            if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
                print(json.dumps({"case": args.case, "fatal": "SoftHSM2 is not installed"}))
                return 2
            authorities, signer_toml, environ = make_token(tmp, args.vaults)
        else:
            authorities, signer_toml, environ = dev_key()
        section = localnet_toml(args.vaults, args.slot_ms, authorities)
        localnet, urls = start_localnet(tmp, section)
        engine = None
        try:
            if args.raw:  # the dev-key case: same localnet code, its authority is the dev key
                result["raw"] = raw_rate(urls, args.vaults, 2.0 if args.quick else 5.0, tmp)
            environ |= {f"XORJ_RECOVERY_KEY_{i}": f"k{i}-{uuid.uuid4().hex}" for i in (1, 2, 3)}
            # The engine's throughput is measured here, not a provider's budget (bench_burst.py
            # measures those): no endpoint is budgeted (a default RPC plan's 20 subscriptions a
            # second would cap every case at 20 trades/s).
            unbound = "".join(f"[quotas.{e.value}]\nrequests = {MAX_REQUESTS}\nwindow_s = 1.0\n" for e in Endpoint)
            config = parse_config(engine_toml(section, urls, signer_toml, args.api) + unbound)
            engine = Engine(config, tmp / "var", environ=environ)
            engine.start()
            ref = wait_reconciled(engine, 30)
            pipeline = ref.actor_inbox.actor.pipeline
            stages = Stages()
            stages.install(pipeline)
            driver_ref = Driver.start(ref, build_genesis(config.localnet), args.vaults)
            ctx = {"driver_ref": driver_ref, "driver": driver_ref.actor_inbox.actor, "stages": stages,
                   "localnet": localnet}
            # What the two processes burn with no trade at all (the 10 ms slot clock, slot notifications).
            cpu0, ln0, t0 = thread_cpu(), process_cpu(localnet.pid), time.perf_counter()
            time.sleep(2.0)
            cpu1, ln1, elapsed = thread_cpu(), process_cpu(localnet.pid), time.perf_counter() - t0
            idle = sum(cpu1.values()) - sum(cpu0.get(k, 0.0) for k in cpu1)  # a thread that ended drops out
            result["idle_cores"] = [max(idle, 0.0) / elapsed, (ln1 - ln0) / elapsed]
            result["warm"] = measure(ctx, "warm", 16, 1.5, 0.0)
            result["levels"] = [measure(ctx, f"k{k}", k, seconds, 0.0 if k == 1 else ramp) for k in levels]
            if args.profile:
                stages.on = False
                profiler = cProfile.Profile(time.thread_time)  # CPU: a wait for the GIL is not the loop's cost
                pipeline.loop.call_soon_threadsafe(profiler.enable)
                run_phase(driver_ref, ctx["driver"], "profile", levels[-1], 10**9, seconds)
                done = threading.Event()
                pipeline.loop.call_soon_threadsafe(lambda: (profiler.disable(), done.set()))
                done.wait(10)
                told = [t for t in ctx["driver"].told if ":bench-profile:" in t]
                result["profile"] = profile_by_package(profiler, len(told))
                if args.profile_out:
                    profiler.dump_stats(f"{args.profile_out}.{args.case}.{args.api}")
                result["profile_errors"] = phase_figures(ctx["driver"], "profile", 0, 0, 0)["errors"]
            driver_ref.stop(timeout=10)
        finally:
            stop_case(engine, localnet, result)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


def wait_reconciled(engine: Engine, seconds: float) -> Any:
    """The Executor's ref once it has reconciled (it refuses trades before)."""
    deadline = time.monotonic() + seconds
    while True:
        ref = engine.runtime.whereis(EXECUTOR_NAME)
        if ref is not None and ref.ask(GetExecutorStatus(), timeout=5).reconciled:
            return ref
        if time.monotonic() > deadline:
            raise RuntimeError(f"the executor did not reconcile within {seconds:g} s")
        time.sleep(0.05)


def stop_case(engine: Engine | None, localnet: subprocess.Popen[str], result: dict[str, Any]) -> None:
    """Stop the engine (actors that did not stop go in ``result["hung"]``), then the localnet."""
    if engine is not None:
        hung = engine.stop(timeout=30)
        if hung:
            result["hung"] = [str(h) for h in hung]
    localnet.terminate()
    localnet.wait(10)


def profile_by_package(profiler: cProfile.Profile, trades: int) -> dict[str, Any]:
    """Own time (tottime) of the executor loop thread, summed by package, in ms per trade."""
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    top: list[tuple[float, str]] = []
    for (filename, line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += tottime
        top.append((tottime, f"{package_of(filename)}:{Path(filename).name}:{line}:{func}"))
    top.sort(reverse=True)
    n = max(trades, 1)
    return {
        "trades": trades,
        "packages": {k: v * 1e3 / n for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])},
        "functions": [[v * 1e3 / n, name] for v, name in top[:20]],
    }


def package_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins/C"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "xorj_actors" in parts:
        i = parts.index("xorj_actors")
        return "xorj_actors." + parts[i + 1].removesuffix(".py")
    if "supervisors" in parts:
        return "supervisors"
    return "stdlib:" + Path(filename).stem


# -- report ---------------------------------------------------------------------------------------


def levels_of(args: argparse.Namespace) -> list[int]:
    levels = [int(k) for k in (args.levels or ("1,16,64" if args.quick else "1,8,32,128")).split(",")]
    if not levels or levels[0] != 1 or min(levels) < 1:
        raise SystemExit("--levels: a comma-separated list of trades in flight starting with 1")
    return levels


def run_case(case: str, api: str, raw: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One signer with one API in a fresh child process; ``raw``: it measures the baseline too."""
    cmd = [sys.executable, __file__, "--case", case, "--api", api, "--vaults", str(args.vaults),
           "--slot-ms", str(args.slot_ms), "--levels", ",".join(map(str, levels_of(args)))]
    cmd += ["--quick"] * args.quick + ["--profile"] * args.profile + ["--raw"] * raw
    cmd += ["--profile-out", args.profile_out] if args.profile_out else []
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        return {"case": case, "api": api, "fatal": f"child exited {done.returncode}"}
    return json.loads(lines[-1])


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every API with every signer; the first dev-key case measures the one raw baseline."""
    apis = ["swap", "ultra"] if args.api == "both" else [args.api]
    cases = [args.only] if args.only else ["pkcs11", "dev_key"]
    results: list[dict[str, Any]] = []
    for api in apis:
        for case in cases:
            raw = case == "dev_key" and not any("raw" in r for r in results)
            results.append(run_case(case, api, raw, args))
    return results


def _threads(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.02)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    errors = 0
    raw = next((r["raw"] for r in results if "raw" in r), None)
    print(f"trades USDC->JUP through the engine, {args.vaults} vaults, localnet {args.slot_ms} ms slots, "
          "confirmed_lag 0 (the minimum), tier: 1 confirmation; closed loop at each number of trades in flight")
    if raw:
        print(f"  baseline, same run: localnet raw swaps (pre-signed, sendTransaction skipPreflight, {CLIENTS} "
              f"clients) {raw['rate']:,.0f}/s ({raw['errors']} errors, {raw['not_landed']} of {raw['sampled']} "
              "sampled not landed)")
    head = ("signer", "in flight", "trades/s", "vs raw", "p50 ms", "p99 ms", "max ms", "engine ms/trade",
            "cores", "localnet ms/trade", "cores")
    apis = list(dict.fromkeys(r["api"] for r in results))
    for api in apis:
        print(f"\n[jupiter] api = \"{api}\": {API_CALLS[api]}")
        print("  {:<8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>16} {:>6} {:>18} {:>6}".format(*head))
        for r in (r for r in results if r["api"] == api):
            if "fatal" in r:
                print(f"  {r['case']:<8} ERROR: {r['fatal']}")
                errors += 1
                continue
            for lv in r["levels"]:
                ratio = f"{lv['rate'] / raw['rate']:.3f}" if raw else "-"
                print(f"  {r['case']:<8} {lv['in_flight']:>9} {lv['rate']:>9,.0f} {ratio:>7} {lv['p50_ms']:>8.1f} "
                      f"{lv['p99_ms']:>8.1f} {lv['max_ms']:>8.1f} {lv['engine_cpu_ms_per_trade']:>16.2f} "
                      f"{lv['engine_busy']:>6.2f} {lv['localnet_cpu_ms_per_trade']:>18.2f} {lv['localnet_busy']:>6.2f}")
    for r in results:
        if "fatal" in r:
            continue
        one, top = r["levels"][0], r["levels"][-1]
        r = r | {"case": f"{r['case']} {r['api']}"}  # the label of every line below
        print(f"\n[{r['case']}] load average {r['load_avg_start']:.1f} at the start, {r['load_avg_end']:.1f} at the end; "
              f"idle, before any trade: engine {r['idle_cores'][0]:.2f} cores, localnet {r['idle_cores'][1]:.2f} cores")
        print(f"[{r['case']}] stages, ms per call; at {one['in_flight']} in flight: wall p50, p99, mean, CPU of the "
              f"executor's loop thread | at {top['in_flight']} in flight: wall p50 | calls per trade")
        stages = one["stages"]
        for name in sorted(stages, key=lambda n: -stages[n]["mean"] * stages[n]["calls"]):
            s, t = stages[name], top["stages"].get(name, {"p50": 0.0})
            print(f"  {name:42s} {s['p50']:6.2f} {s['p99']:6.2f} {s['mean']:6.2f} {s['cpu']:5.2f} | {t['p50']:7.1f}"
                  f" | {s['calls']:4.2f}")
        print(f"  {'request told -> pipeline (hand-off)':42s} {one['handoff_ms'][0]:6.2f} {one['handoff_ms'][1]:6.2f}"
              f"              | {top['handoff_ms'][0]:7.1f} |")
        accounted = sum(s["mean"] * s["calls"] for s in stages.values())
        print(f"  {'the rest (building, checks, hand-offs)':42s} mean {one['mean_ms'] - accounted:.2f} of the "
              f"end-to-end mean {one['mean_ms']:.2f}")
        for lv in (one, top):
            print(f"[{r['case']}] CPU ms per trade at {lv['in_flight']} in flight: {_threads(lv['cpu_ms_per_trade'])}")
        print(f"[{r['case']}] ceilings at {top['in_flight']} in flight: the engine process "
              f"{top['engine_cpu_ms_per_trade']:.2f} ms/trade, at most ~{1e3 / top['engine_cpu_ms_per_trade']:.0f} "
              f"trades/s on one core (its Python threads share one GIL); the localnet "
              f"{top['localnet_cpu_ms_per_trade']:.2f} ms/trade, at most ~{1e3 / top['localnet_cpu_ms_per_trade']:.0f}/s")
        if "profile" in r:
            p = r["profile"]
            print(f"[{r['case']}] cProfile of the executor loop thread at {top['in_flight']} in flight "
                  f"({p['trades']} trades; own CPU time in ms per trade, inflated by profiling):")
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in list(p["packages"].items())[:14]))
            for v, name in p["functions"][:12]:
                print(f"    {v:6.3f}  {name}")
        bad = {lv["in_flight"]: lv["errors"] for lv in [r["warm"], *r["levels"]] if lv["errors"]}
        if r.get("profile_errors"):
            bad["profile"] = r["profile_errors"]
        if bad:
            errors += sum(sum(v.values()) for v in bad.values())
            print(f"[{r['case']}] ERRORS: trades not confirmed, by trades in flight: {json.dumps(bad)[:800]}")
        if r.get("hung"):
            errors += 1
            print(f"[{r['case']}] ERROR: actors did not stop: {r['hung']}")
    if raw and raw["errors"] + raw["not_landed"]:
        errors += raw["errors"] + raw["not_landed"]
    print()
    for hsm in (r for r in results if r["case"] == "pkcs11" and "fatal" not in r):
        best = max(hsm["levels"], key=lambda lv: lv["rate"])
        one = hsm["levels"][0]
        within = [lv for lv in hsm["levels"] if lv["p99_ms"] <= TARGET_P99_MS]
        print(f"[{hsm['api']}] target >= {TARGET_PER_S} trades/s with SoftHSM: best {best['rate']:,.0f}/s at {best['in_flight']} in "
              "flight: " + ("met" if best["rate"] >= TARGET_PER_S else "MISSED"))
        print(f"[{hsm['api']}] target p99 intent -> confirmed <= {TARGET_P99_MS:g} ms with SoftHSM: {one['p99_ms']:.1f} ms at "
              f"{one['in_flight']} in flight: " + ("met" if one["p99_ms"] <= TARGET_P99_MS else "MISSED")
              + (f"; highest rate within it {max(lv['rate'] for lv in within):,.0f}/s" if within else ""))
    if errors:
        print(f"ERRORS: {errors}")
    return 1 if errors else 0  # a missed target is a figure, not an error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~35 s run per API")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the executor's loop thread")
    parser.add_argument("--profile-out", help="with --profile: also dump each case's pstats to FILE.<case>.<api>")
    parser.add_argument("--vaults", type=int, default=64, help="localnet vaults the trades go round (default 64)")
    parser.add_argument("--slot-ms", type=int, default=10, help="localnet slot length (default 10, the minimum)")
    parser.add_argument("--levels", help="trades in flight, one closed-loop phase each, starting with 1 "
                                           "(default 1,8,32,128; --quick 1,16,64)")
    parser.add_argument("--only", choices=("pkcs11", "dev_key"), help="run one signer")
    parser.add_argument("--api", choices=("swap", "ultra", "both"), default="both",
                        help="the [jupiter] api the executor trades through; both: one block each (default)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case in this process
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)  # child mode: measure the baseline
    parser.add_argument("--send", help=argparse.SUPPRESS)  # child mode: send the swaps in this file
    parser.add_argument("--rpc", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        return sender_main(args.send, args.rpc, args.seconds)
    if args.case:
        if args.api == "both":
            raise SystemExit("--case: one --api, swap or ultra")
        return case_main(args)
    return report(run_all(args), args)


if __name__ == "__main__":
    sys.exit(main())
