"""Signer figures: signatures per second through the Signer actor vs the bare backend.

    .venv/bin/python bench/bench_signers.py            # ~1 minute
    .venv/bin/python bench/bench_signers.py --quick    # ~15 s

For SoftHSM2 over PKCS#11 (a private token made for the run) and the development key: the bare
backend signing in one thread (baseline, same run), then the Signer actor asked by 1 client
(request, wait, repeat) and by 8 client threads with 16 requests outstanding each. Every
signature is verified (the actor does it before returning one). The payload is a real
versioned transfer message.

Target (issue 5): >= 500 trades/s carried from signed to confirmed with SoftHSM signing, so the
signer alone must give well over 500 signatures/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solders.hash import Hash  # noqa: E402
from solders.message import MessageV0, to_bytes_versioned  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402

from supervisors import Runtime  # noqa: E402
from xorj_actors.kill_switch import HaltBoard, HaltStatus  # noqa: E402
from xorj_actors.signers import KeySettings, Pkcs11Settings, SignRequest, Signer, VaultKeys  # noqa: E402
from xorj_actors.signers import _pkcs11, open_backend  # noqa: E402

TARGET_PER_S = 500
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN_ENV = "XORJ_BENCH_HSM_PIN"


def make_token(root: Path) -> tuple[KeySettings, dict[str, str]]:
    """A private SoftHSM2 token with one Ed25519 key (SOFTHSM2_CONF is set for this process)."""
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = uuid.uuid4().hex[:12]
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", pin, "--pin", pin],
        check=True, capture_output=True,
    )
    settings = Pkcs11Settings(module=MODULE, token_label="bench", pin_env=PIN_ENV)
    environ = {PIN_ENV: pin}
    ((_, pubkey, _),) = _pkcs11.init_keys(settings, environ, [VAULT])
    assert pubkey is not None
    return KeySettings(name="bench", backend="pkcs11", pkcs11=settings), environ


#: The vault whose key every figure signs with (one key of the store).
VAULT = "vault-0000"


def payload(payer: Pubkey) -> bytes:
    ix = transfer(TransferParams(from_pubkey=payer, to_pubkey=Pubkey.new_unique(), lamports=1))
    return to_bytes_versioned(MessageV0.try_compile(payer, [ix], [], Hash.new_unique()))


def rate(seconds: float, run: Callable[[float], int]) -> float:
    start = time.perf_counter()
    done = run(start + seconds)
    return done / (time.perf_counter() - start)


def bare(key: KeySettings, environ: dict[str, str], message: bytes, seconds: float) -> float:
    backend = open_backend(key, environment="development", environ=environ, data_dir=Path("."))

    def run(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            backend.sign(VAULT, message)
            n += 1
        return n

    try:
        return rate(seconds, run)
    finally:
        backend.close()


def through_actor(key: KeySettings, environ: dict[str, str], message: bytes, seconds: float) -> tuple[float, float]:
    board = HaltBoard()
    board.publish(HaltStatus(state="ARMED", epoch=0, halted=False, factor=1.0))
    with Runtime(workers=2, name="bench"):
        signer = Signer.start(board, key, VaultKeys(key.name), [VAULT], environ=environ)

        def one_client(deadline: float) -> int:
            n = 0
            while time.perf_counter() < deadline:
                assert signer.ask(SignRequest(trade_id="t", vault_id=VAULT, payload=message), timeout=10).signature is not None
                n += 1
            return n

        sequential = rate(seconds, one_client)
        counts: list[int] = []

        def client(deadline: float) -> None:
            n = 0
            while time.perf_counter() < deadline:
                futures = [signer.ask(SignRequest(trade_id="t", vault_id=VAULT, payload=message), block=False) for _ in range(16)]
                n += sum(f.get(timeout=30).signature is not None for f in futures)
            counts.append(n)

        def many_clients(deadline: float) -> int:
            threads = [threading.Thread(target=client, args=(deadline,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(counts)

        concurrent = rate(seconds, many_clients)
        signer.stop(timeout=10)
    return sequential, concurrent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~15 s run")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 6.0
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        print("SoftHSM2 is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-signers-") as tmp:
        hsm_key, hsm_env = make_token(Path(tmp))
        dev_key = KeySettings(name="dev", backend="dev_key")  # the localnet's DEVELOPMENT keys, as make run signs with
        cases = [("pkcs11 (SoftHSM2)", hsm_key, hsm_env), ("dev_key", dev_key, {})]
        print(f"signatures/s, {seconds:g} s per figure; target: > {TARGET_PER_S}/s with SoftHSM (issue 5)")
        head = ("backend", "bare backend", "actor, 1 client", "ratio", "actor, 8x16", "ratio")
        print("{:<18} {:>13} {:>16} {:>6} {:>12} {:>6}".format(*head))
        for label, key, environ in cases:
            backend = open_backend(key, environment="development", environ=environ, data_dir=Path("."))
            message = payload(backend.public_key(VAULT))
            backend.close()
            base = bare(key, environ, message, seconds)
            seq, conc = through_actor(key, environ, message, seconds)
            verdict = "" if key.backend != "pkcs11" else ("  meets target" if conc > TARGET_PER_S else "  BELOW TARGET")
            ratios = f"{seq:>16,.0f} {seq / base:>6.2f} {conc:>12,.0f} {conc / base:>6.2f}"
            print(f"{label:<18} {base:>13,.0f} {ratios}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
