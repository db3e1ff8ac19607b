"""`xorj-actors ctl`: talk to a running engine over its debug socket.

The socket is found from the same ``--config`` and ``--data-dir`` as ``run`` (or ``--socket``).
Output is a readable table by default and JSON with ``--json``: then stdout holds exactly one JSON
document, the result or ``{"error": {"code", "message"}}`` (docs/DEBUG_SOCKET.md, "ctl --json").
``sign-recovery`` runs locally: a key holder computes their authorisation without touching the engine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from xorj_actors.secrets.settings import OwnedKey

__all__ = ["CtlError", "add_arguments", "main", "request"]

EXIT_FAILED, EXIT_UNREACHABLE = 1, 3

DEFAULT_TIMEOUT_S = 5.0
#: Commands that ask several actors one after the other (each within the engine's 2 s): a
#: client that gave up first would not know whether the change happened.
SLOW_TIMEOUT_S = 15.0
_SLOW_COMMANDS = frozenset({"vault-add", "vault-remove", "rotate-key"})


class CtlError(Exception):
    """A failed request: ``code`` the exit code, ``error`` the error code, ``detail`` the message."""

    def __init__(self, message: str, code: int = EXIT_FAILED, *, error: str | None = None) -> None:
        super().__init__(message if error is None else f"{error}: {message}")
        self.code, self.detail = code, message
        self.error = error or ("unreachable" if code == EXIT_UNREACHABLE else "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--socket", metavar="PATH", help="debug socket path (default: from config and data dir)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--timeout", type=float, default=None,
        help=f"seconds to wait for the engine (default {DEFAULT_TIMEOUT_S:g}; {SLOW_TIMEOUT_S:g} for vault-add, vault-remove, rotate-key)",
    )
    # --json also after the command (`ctl tree --json`); SUPPRESS keeps the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = parser.add_subparsers(dest="ctl_command", required=True, metavar="CMD")
    _add = sub.add_parser

    def add(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kw)

    sub.add_parser = add  # type: ignore[method-assign]
    sub.add_parser("help", help="the engine's commands, each with one line of help")
    sub.add_parser("tree", help="the live actor tree")
    p = sub.add_parser("actor", help="one actor's details and stack")
    p.add_argument("who", help="actor urn or name")
    sub.add_parser("stacks", help="every thread's stack")
    sub.add_parser("status", help="kill switch state, acks, endpoints")
    sub.add_parser("breakers", help="the circuit breakers")
    sub.add_parser("quotas", help="every external endpoint's budget: used, rate, waiting, 429s")
    sub.add_parser("progress", help="rounds, trades, breakers, kill switch")
    sub.add_parser("trades", help="the last minute's trades: rate, outcomes, p50 and p99 intent to confirmed")
    sub.add_parser("cluster", help="every cluster node: alive, heartbeat, vaults, kill switch, halt ack")
    sub.add_parser("reload-secrets", help="read the credentials again from their sources (as SIGHUP does)")
    sub.add_parser("keys", help="every credential's source and age; which the engine rotates (never a value)")
    p = sub.add_parser("rotate-key", help="rotate one of the engine's own keys now (audited; docs/SECURITY.md)")
    p.add_argument("key", choices=tuple(OwnedKey), help="the kill-switch API's HMAC key, or the audit log's")
    p = sub.add_parser("halt", help="trigger the kill switch")
    p.add_argument("--graceful", action="store_true", help="let in-flight confirmations finish (default: emergency)")
    p.add_argument("--reason", default="operator halt (ctl)")
    p = sub.add_parser("maintenance", help="halt for maintenance (leave with recover)")
    p.add_argument("--reason", default="maintenance (ctl)")
    p = sub.add_parser("recover", help="recover with K-of-M authorisations")
    p.add_argument("--epoch", type=int, required=True, help="this node's halt epoch (ctl status)")
    p.add_argument("--cluster-epoch", type=int, default=None,
                   help="a cluster node while the cluster is halted: the cluster halt epoch the authorisations sign")
    p.add_argument("--nonce", required=True)
    p.add_argument("--timestamp", type=int, required=True)
    p.add_argument("--auth", action="append", default=[], metavar="KEY_ID:HMAC", help="one per key holder")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    sub.add_parser("executor", help="the executor: trades in flight, unsettled vaults, outcomes")
    sub.add_parser("confirmation", help="the confirmation actor's connection health")
    sub.add_parser("strategy", help="the strategy feed: round, freshness, errors")
    p = sub.add_parser("strategy-refresh", help="make the strategy feed poll now")
    p.add_argument("--reason", default="operator refresh (ctl)")
    sub.add_parser("risk", help="the risk monitors: drawdown, heartbeat, clock skew")
    sub.add_parser("reconcile", help="start a statement reconciliation; the last one's findings (docs/AUDIT.md)")
    p = sub.add_parser("risk-reset", help="reset the drawdown high-water mark and day start (audited)")
    p.add_argument("--operator", required=True, help="who resets (recorded in the audit trail)")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p = sub.add_parser("vaults", help="every vault's status (or one with --vault)")
    p.add_argument("--vault", metavar="NAME", help="only this vault (vault-0007)")
    p = sub.add_parser("round", help="run a vault's rebalancing round now")
    p.add_argument("--vault", metavar="NAME", required=True)
    p = sub.add_parser("vault-add", help="start vaults at run time (audited; in a cluster: add them to its vault set)")
    p.add_argument("--count", type=int, required=True, help="how many (1..1000)")
    p.add_argument("--index", type=int, default=None, help="index of the first (default: after the highest)")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p = sub.add_parser("vault-remove", help="stop and remove a vault (audited; refused with trades pending; cluster-wide)")
    p.add_argument("--vault", metavar="NAME", required=True)
    p.add_argument("--force", action="store_true", help="remove it even with trades pending or unknown")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p.add_argument("--reason", default="operator removal (ctl)")
    p = sub.add_parser("flatten", help="while halted, sell vaults' volatile holdings into the stablecoin (audited)")
    p.add_argument("--vault", metavar="NAME", action="append", default=[], help="a vault to flatten (repeat; default: all)")
    p.add_argument("--operator", required=True, help="who flattens (recorded in the audit trail)")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p = sub.add_parser("sign-recovery", help="compute one key holder's authorisation (local, no engine)")
    p.add_argument("--key-env", required=True, help="environment variable holding this holder's key")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--epoch", type=int, help="the engine's halt epoch")
    which.add_argument("--cluster-epoch", type=int, help="a cluster's halt epoch (docs/CLUSTER.md, Recovery)")
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
        raise CtlError(str(err.get("message")), error=str(err.get("code")))
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
    if "cluster" in status:
        from xorj_actors.cluster import render_cluster_halt

        lines += render_cluster_halt(status["cluster"])
    return "\n".join(lines)


def _ago(at: float | None) -> str:
    return "never" if at is None else f"{max(0.0, time.time() - at):.0f} s ago"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_executor(st: dict[str, Any]) -> str:
    unsettled = st["unsettled_vaults"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(st["outcomes"].items())) or "none yet"
    return "\n".join([
        f"reconciled    {_yes(st['reconciled'])}" + ("" if st["reconciled"] else "  (reading open trades back: no trade starts yet)"),
        f"accepted      {st['accepted']}",
        f"in flight     {st['in_flight']}  awaiting confirmation {st['awaiting_confirmation']}"
        + (f"  open Jito bundles {st['open_bundles']}" if st.get("open_bundles") else ""),
        f"unsettled     {len(unsettled)} vault(s)" + (f": {', '.join(unsettled[:20])}" if unsettled else "")
        + (" ..." if len(unsettled) > 20 else ""),
        f"outcomes      {outcomes}",
    ])


def render_confirmation(h: dict[str, Any]) -> str:
    since = h["seconds_since_slot"]
    return "\n".join([
        f"connection    {'connected' if h['connected'] else 'DISCONNECTED'}",
        f"slot          {h['slot']}" + (f"  ({since:.1f} s since the last slot notification)" if since is not None else "  (none yet)"),
        f"in flight     {h['in_flight']} signature(s) watched",
        f"reconnects    {h['reconnects']}  polls {h['polls']} ({h['poll_outcomes']} outcomes decided by a poll)",
        f"errors        subscribe {h['subscribe_errors']}  malformed frames {h['malformed_frames']}  refused watches {h['refused']}",
        f"last error    {h['last_error'] or '-'}",
    ])


def render_strategy(st: dict[str, Any]) -> str:
    return "\n".join([
        f"fresh         {'yes' if st['fresh'] else 'STALE: vaults start no new trades'}",
        f"round         {st['round'] if st['round'] is not None else '-'}  scenario {st['scenario'] or '-'}",
        f"last good     {_ago(st['last_ok_at'])}",
        f"last error    {st['last_error'] or '-'}" + (f"  ({_ago(st['last_error_at'])})" if st["last_error"] else ""),
        f"polls         {st['polls']}  rejected {st['rejections']}  polling now {_yes(st['polling'])}",
        f"url           {st['url']}",
    ])


def render_risk(r: dict[str, Any]) -> str:
    lines = []
    d, hb, cs, errors = r.get("drawdown"), r.get("heartbeat"), r.get("clock_skew"), r.get("errors", {})
    if d is not None:
        latched = [n for n, on in (("drawdown", d["drawdown_latched"]), ("daily loss", d["daily_loss_latched"])) if on]
        lines += [
            f"drawdown      {d['drawdown'] * 100:.2f} %  total ${d['total_usd']:,.2f}  peak ${d['peak_usd']:,.2f}  ({d['vaults']} vaults)",
            f"daily loss    {d['daily_loss'] * 100:.2f} %  day {d['utc_day'] or '-'} from ${d['day_start_usd']:,.2f}",
            f"              latched: {', '.join(latched).upper() if latched else 'none'}  triggers {d['triggers']}"
            f"  refused valuations {d['refused']}",
        ]
    else:
        lines.append(f"drawdown      - ({errors.get('drawdown', 'no answer')})")
    if hb is not None:
        lines += [
            f"heartbeat     watching {len(hb['watched'])} actor(s)  checks {hb['checks']}  triggers {hb['triggers']}",
            f"              stuck: {', '.join(hb['stuck']) or 'none'}  missing: {', '.join(hb['missing']) or 'none'}",
        ]
    else:
        lines.append(f"heartbeat     - ({errors.get('heartbeat', 'no answer')})")
    if cs is not None:
        skew = "-" if cs["skew_s"] is None else f"{cs['skew_s']:+.3f} s"
        lines += [
            f"clock skew    {skew} at slot {cs['slot'] if cs['slot'] is not None else '-'}  consecutive {cs['consecutive']}"
            f"  latched {'YES' if cs['latched'] else 'no'}  triggers {cs['triggers']}",
            f"              checks {cs['checks']}  errors {cs['errors']}  last error {cs['last_error'] or '-'}",
        ]
    else:
        lines.append(f"clock skew    - ({errors.get('clock_skew', 'no answer')})")
    lines += importlib.import_module("xorj_actors.correlation").render_correlation(r.get("correlation"))
    return "\n".join(lines)


def render_vaults(r: dict[str, Any]) -> str:
    rows = []
    for v in r["vaults"]:
        if not v["answered"]:
            rows.append([v["vault_id"], "-", f"NOT ANSWERING ({v['error']})", "", "", "", "", "", "", ""])
            continue
        rows.append([
            v["vault_id"], v["profile"], v["phase"], str(v["rounds"]), str(v["rounds_skipped"]),
            str(v["trades_confirmed"]), str(v["trades_other"]), f"{v['value_usd']:,.2f}", str(len(v["pending"])),
            v["last_skip"] or "-",
        ])
    table = _table(rows, ["VAULT", "PROFILE", "PHASE", "ROUNDS", "SKIPPED", "CONFIRMED", "OTHER", "VALUE USD",
                          "PENDING", "LAST SKIP"])
    summary = f"{r['count']} vault(s), {r['answered']} answering, {r['pending_trades']} trade(s) pending"
    if r["not_answering"]:
        summary += f"; NOT ANSWERING: {', '.join(r['not_answering'][:20])}"
    return table + "\n" + summary


def render_vault_remove(r: dict[str, Any]) -> str:
    if not r["removed"]:
        return f"{r['vault']} NOT removed: {r['reason']}\n(nothing changed; --force removes it anyway)"
    lines = [f"{r['vault']} removed" + (" (FORCED past: " + "; ".join(r["problems"]) + ")" if r["forced"] else "")]
    if r.get("cluster"):
        lines.append(f"from the cluster's vault set (revision {r['revision']}, {r['vaults']} vaults); leased by "
                     f"{('node ' + r['owner']) if r['owner'] else 'no node'}: " + ("released" if r["stopped"] else "NOT released yet"))
    elif not r["stopped"]:
        lines.append("it has not finished stopping yet: see ctl tree")
    if r["unsettled_after"]:
        lines.append("WATCH: " + "; ".join(r["unsettled_after"]) + " (the executor settles them; see ctl executor)")
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)


def render_vault_add(r: dict[str, Any]) -> str:
    lines = [f"added {len(r['added'])}: {', '.join(r['added']) or '-'}"]
    lines += [f"FAILED {vid}: {why}" for vid, why in r["failed"].items()]
    if r["not_tried"]:
        lines.append(f"not tried: {', '.join(r['not_tried'])}")
    if r.get("cluster"):
        lines.append(f"to the cluster's vault set (revision {r['revision']}, {r['vaults']} vaults); leased by: "
                     + ", ".join(f"{v} {('node ' + n) if n else 'no node yet'}" for v, n in r["placed"].items()))
    return "\n".join(lines)


def render_flatten(r: dict[str, Any]) -> str:
    vaults = r["vaults"]
    return (f"flatten {r['flatten_id']} started: kill switch {r['state']}, {len(vaults)} vault(s): "
            f"{', '.join(vaults[:20])}{' ...' if len(vaults) > 20 else ''}\n"
            "the kill switch returns to its halted state when every vault has reported: see ctl status --json")


#: The tables rendered by the package whose data they show: (module, function), by command.
_PACKAGE_RENDERERS: dict[str, tuple[str, str]] = {
    "breakers": ("xorj_actors.breakers", "render_breakers"), "quotas": ("xorj_actors.quotas", "render_quotas"),
    "cluster": ("xorj_actors.cluster", "render_cluster"), "trades": ("xorj_actors.top", "render_trades_reply"),
    "reload-secrets": ("xorj_actors.secrets", "render_reload"),
    "keys": ("xorj_actors.key_rotation", "render_keys"), "rotate-key": ("xorj_actors.key_rotation", "render_rotation"),
}


def render(cmd: str, result: Any) -> str:
    trading = {
        "flatten": render_flatten, "executor": render_executor, "confirmation": render_confirmation,
        "strategy": render_strategy, "risk": render_risk, "vaults": render_vaults,
        "vault-add": render_vault_add, "vault-remove": render_vault_remove,
    }
    if cmd in trading:
        return trading[cmd](result)
    if cmd == "risk-reset":
        st = result["status"]
        return (f"risk baseline reset by {result['operator']}: peak ${st['peak_usd']:,.2f}, day start "
                f"${st['day_start_usd']:,.2f}, total ${st['total_usd']:,.2f} (audited by the drawdown monitor)")
    if cmd == "round":
        return f"{result['vault_id']}: " + ("round started" if result["ran"] else f"round NOT run: {result['reason']}")
    if cmd == "strategy-refresh":
        return f"strategy refresh requested ({result['reason']}); see ctl strategy"
    if cmd == "tree":
        return render_tree(result)
    if cmd == "status":
        return render_status(result)
    if cmd in _PACKAGE_RENDERERS:  # imported on use: ctl starts without them
        module, name = _PACKAGE_RENDERERS[cmd]
        return getattr(importlib.import_module(module), name)(result)
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
        return "\n".join(f"{k:<17}{v}" for k, v in result.items())
    return str(result)


# -- main --------------------------------------------------------------------------------------


def _sign_recovery(args: argparse.Namespace) -> dict[str, Any]:
    from xorj_actors.kill_switch import sign_cluster_recovery, sign_recovery
    from xorj_actors.limits import MIN_KEY_BYTES

    key = os.environ.get(args.key_env, "")
    if len(key.encode()) < MIN_KEY_BYTES:
        raise CtlError(f"{args.key_env} is unset or shorter than {MIN_KEY_BYTES} bytes", error="bad_request")
    timestamp = args.timestamp if args.timestamp is not None else int(time.time())
    if args.cluster_epoch is not None:
        mac = sign_cluster_recovery(key.encode(), args.cluster_epoch, args.nonce, timestamp)
        which = {"cluster_epoch": args.cluster_epoch}
    else:
        mac = sign_recovery(key.encode(), args.epoch, args.nonce, timestamp)
        which = {"epoch": args.epoch}
    return {"key_id": args.key_env, "hmac": mac, **which, "nonce": args.nonce, "timestamp": timestamp}


def _parse_auth(items: list[str]) -> list[dict[str, str]]:
    out = []
    for item in items:
        key_id, sep, mac = item.partition(":")
        if not sep or not key_id or not mac:
            raise CtlError(f"--auth {item!r}: expected KEY_ID:HMAC", error="bad_request")
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
                    "epoch": args.epoch, "nonce": args.nonce, "timestamp": args.timestamp,
                    "authorisations": _parse_auth(args.auth), "operator": args.operator,
                    **_given(cluster_epoch=args.cluster_epoch),
                }
            elif cmd in _TRADING_PARAMS:
                params = _TRADING_PARAMS[cmd](args)
            timeout = args.timeout
            if timeout is None:
                timeout = SLOW_TIMEOUT_S if cmd in _SLOW_COMMANDS else DEFAULT_TIMEOUT_S
            result = request(path, cmd, params, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - e.g. a config error: say it plainly
        error = exc if isinstance(exc, CtlError) else CtlError(str(exc))
        print(f"xorj-actors ctl: {error}", file=sys.stderr)
        if args.json:  # a script reads one JSON document on stdout, whatever happened
            _print(json.dumps({"error": {"code": error.error, "message": error.detail}}, indent=2))
        return error.code
    _print(json.dumps(result, indent=2) if args.json else render(cmd, result))
    return EXIT_FAILED if _refused(cmd, result) else 0


def _print(text: str) -> None:
    try:
        print(text, flush=True)  # flushed here: a closed pipe is met here, not at exit
    except BrokenPipeError:  # `ctl tree | head`: the Python docs' recipe (signal, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _refused(cmd: str, result: Any) -> bool:
    """A normal reply that says the request did not do what it asked for."""
    if cmd in ("recover", "maintenance"):
        return not result.get("accepted", False)
    if cmd in ("round", "reload-secrets", "rotate-key"):
        return not result[{"round": "ran", "reload-secrets": "reloaded", "rotate-key": "rotated"}[cmd]]
    if cmd == "vault-remove":
        return not result["removed"]
    if cmd == "vault-add":
        return bool(result["failed"] or result["not_tried"])
    return False


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


_TRADING_PARAMS: dict[str, Any] = {
    "strategy-refresh": lambda a: {"reason": a.reason},
    "risk-reset": lambda a: {"operator": a.operator, "reason": a.reason},
    "vaults": lambda a: _given(vault=a.vault),
    "round": lambda a: {"vault": a.vault},
    "vault-add": lambda a: _given(count=a.count, index=a.index, operator=a.operator),
    "vault-remove": lambda a: {"vault": a.vault, "force": a.force, "operator": a.operator, "reason": a.reason},
    "flatten": lambda a: {"vaults": a.vault, "operator": a.operator, "reason": a.reason},
    "rotate-key": lambda a: {"key": a.key},
}
