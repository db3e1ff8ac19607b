"""`xorj-actors ctl`: talk to a running engine over its debug socket.

The socket is found from the same ``--config`` and ``--data-dir`` as ``run`` (or ``--socket``).
Output is a readable table by default and JSON with ``--json``. ``sign-recovery`` runs locally:
a key holder computes their authorisation without touching the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["CtlError", "add_arguments", "main", "request"]

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3


class CtlError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--socket", metavar="PATH", help="debug socket path (default: from config and data dir)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the engine")
    # --json also after the command (`ctl tree --json`); SUPPRESS keeps the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = parser.add_subparsers(dest="ctl_command", required=True, metavar="CMD")
    _add = sub.add_parser

    def add(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kw)

    sub.add_parser = add  # type: ignore[method-assign]
    sub.add_parser("tree", help="the live actor tree")
    p = sub.add_parser("actor", help="one actor's details and stack")
    p.add_argument("who", help="actor urn or name")
    sub.add_parser("stacks", help="every thread's stack")
    sub.add_parser("status", help="kill switch state, acks, endpoints")
    p = sub.add_parser("halt", help="trigger the kill switch")
    p.add_argument("--graceful", action="store_true", help="let in-flight confirmations finish (default: emergency)")
    p.add_argument("--reason", default="operator halt (ctl)")
    p = sub.add_parser("maintenance", help="halt for maintenance (leave with recover)")
    p.add_argument("--reason", default="maintenance (ctl)")
    p = sub.add_parser("recover", help="recover with K-of-M authorisations")
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--nonce", required=True)
    p.add_argument("--timestamp", type=int, required=True)
    p.add_argument("--auth", action="append", default=[], metavar="KEY_ID:HMAC", help="one per key holder")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p = sub.add_parser("sign-recovery", help="compute one key holder's authorisation (local, no engine)")
    p.add_argument("--key-env", required=True, help="environment variable holding this holder's key")
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--nonce", required=True)
    p.add_argument("--timestamp", type=int, default=None, help="default: now")


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    from xorj_actors.config import load_config

    config = load_config(args.config)
    return Path(args.data_dir) / config.debug_socket.path


def request(path: Path, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
    """Send one request and return its result; raise CtlError with the engine's error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise CtlError(f"cannot reach the engine at {path}: {exc.strerror or exc}", EXIT_UNREACHABLE) from None
        sock.sendall(json.dumps({"id": 1, "cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                raise CtlError(f"no reply from the engine within {timeout} s", EXIT_UNREACHABLE) from None
            if not chunk:
                raise CtlError("the engine closed the connection", EXIT_UNREACHABLE)
            buf += chunk
    finally:
        sock.close()
    reply = json.loads(buf)
    if not reply.get("ok"):
        err = reply.get("error", {})
        raise CtlError(f"{err.get('code')}: {err.get('message')}")
    return reply["result"]


# -- rendering ---------------------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def render_tree(actors: list[dict[str, Any]]) -> str:
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    urns = {a["urn"] for a in actors}
    for a in actors:
        parent = a["parent"] if a["parent"] in urns else None
        by_parent.setdefault(parent, []).append(a)
    rows: list[list[str]] = []

    def walk(parent: str | None, depth: int) -> None:
        for a in by_parent.get(parent, []):
            rows.append(
                [
                    "  " * depth + a["name"],
                    a["state"],
                    str(a["mailbox"]),
                    str(a["restarts"]),
                    a["last_message"] or "-",
                    a["class"],
                ]
            )
            walk(a["urn"], depth + 1)

    walk(None, 0)
    return _table(rows, ["ACTOR", "STATE", "MAILBOX", "RESTARTS", "LAST MESSAGE", "CLASS"])


def render_status(status: dict[str, Any]) -> str:
    ks = status["kill_switch"]
    latency = ks.get("halt_latency_s")
    lines = [
        f"kill switch   {ks['state']}  epoch {ks['epoch']}  factor {ks['factor']:g}",
        f"last trigger  {ks.get('mode') or '-'} from {ks.get('source') or '-'}: {ks.get('reason') or '-'}",
        f"acks          {len(ks['acked'])} acked, {len(ks['missing'])} missing of {ks['registered']} registered"
        + (f"; complete in {latency * 1e3:.1f} ms" if latency is not None else ""),
    ]
    if ks["missing"]:
        lines.append(f"missing       {', '.join(ks['missing'][:20])}")
    if ks.get("replaced"):
        lines.append(f"replaced      {', '.join(ks['replaced'][:20])}")
    if ks.get("persist_error"):
        lines.append(f"PERSIST ERROR {ks['persist_error']}")
    lines.append(f"actors        {status['actors']}  pid {status['pid']}  up {status['uptime_s']:.0f} s")
    for name, url in sorted(status["endpoints"].items()):
        lines.append(f"endpoint      {name:<14} {url}")
    return "\n".join(lines)


def render(cmd: str, result: Any) -> str:
    if cmd == "tree":
        return render_tree(result)
    if cmd == "status":
        return render_status(result)
    if cmd == "stacks":
        return "\n\n".join(
            f"--- {t['thread']}" + (f" (running {t['actor']})" if t["actor"] else "") + "\n" + "".join(t["stack"])
            for t in result
        )
    if cmd == "actor":
        stack = result.pop("stack", None)
        text = "\n".join(f"{k:<16}{v}" for k, v in result.items())
        return text + ("\nstack:\n" + "\n".join(stack) if stack else "\nstack: (not running)")
    if isinstance(result, dict):
        return "\n".join(f"{k:<16}{v}" for k, v in result.items())
    return str(result)


# -- main --------------------------------------------------------------------------------------


def _sign_recovery(args: argparse.Namespace) -> dict[str, Any]:
    from xorj_actors.kill_switch import MIN_KEY_BYTES, sign_recovery

    key = os.environ.get(args.key_env, "")
    if len(key.encode()) < MIN_KEY_BYTES:
        raise CtlError(f"{args.key_env} is unset or shorter than {MIN_KEY_BYTES} bytes")
    timestamp = args.timestamp if args.timestamp is not None else int(time.time())
    mac = sign_recovery(key.encode(), args.epoch, args.nonce, timestamp)
    return {"key_id": args.key_env, "hmac": mac, "epoch": args.epoch, "nonce": args.nonce, "timestamp": timestamp}


def _parse_auth(items: list[str]) -> list[dict[str, str]]:
    out = []
    for item in items:
        key_id, sep, mac = item.partition(":")
        if not sep or not key_id or not mac:
            raise CtlError(f"--auth {item!r}: expected KEY_ID:HMAC")
        out.append({"key_id": key_id, "hmac": mac})
    return out


def main(args: argparse.Namespace) -> int:
    cmd = args.ctl_command
    try:
        if cmd == "sign-recovery":
            result = _sign_recovery(args)
        else:
            path = socket_path(args)
            params: dict[str, Any] = {}
            if cmd == "actor":
                params = {"urn": args.who} if args.who.startswith("urn:") else {"name": args.who}
            elif cmd == "halt":
                params = {"mode": "graceful" if args.graceful else "emergency", "reason": args.reason}
            elif cmd == "maintenance":
                params = {"reason": args.reason}
            elif cmd == "recover":
                params = {
                    "epoch": args.epoch,
                    "nonce": args.nonce,
                    "timestamp": args.timestamp,
                    "authorisations": _parse_auth(args.auth),
                    "operator": args.operator,
                }
            result = request(path, cmd, params, timeout=args.timeout)
    except CtlError as exc:
        print(f"xorj-actors ctl: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # noqa: BLE001 - e.g. a config error: say it plainly
        print(f"xorj-actors ctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(json.dumps(result, indent=2) if args.json else render(cmd, result))
    except BrokenPipeError:  # `ctl tree | head`
        sys.stderr.close()
    if cmd in ("recover", "maintenance") and not result.get("accepted", False):
        return EXIT_FAILED
    return 0
