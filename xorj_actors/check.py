"""Production readiness: named checks shared by ``xorj-actors check`` and ``/health/ready``.

A check takes a :class:`CheckContext` and returns a :class:`CheckResult`: ``ok``, ``fail``, or
``not configured`` for a component that does not exist yet or has no settings. ``not
configured`` is a failure only in a production config, so development keeps working while a
production config cannot claim readiness it does not have. Outside a running engine
(``xorj-actors check``) there is no runtime: tree and kill switch checks do not apply there.
"""

from __future__ import annotations

import argparse
import enum
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xorj_actors import probes
from xorj_actors.correlation import check_correlation
from xorj_actors.limits import MIN_KEY_BYTES
from xorj_actors.redaction import Redactor, redact_url, url_secrets

if TYPE_CHECKING:  # only a type here; config imports ops, whose HTTP API runs these checks
    from xorj_actors.config import Config

__all__ = [
    "ALL_CHECKS",
    "PRODUCTION_CHECKS",
    "READINESS_CHECKS",
    "Check",
    "CheckContext",
    "CheckResult",
    "Status",
    "add_arguments",
    "main",
    "run_checks",
    "secret_env_names",
]

#: Supervisors (child names) that make up a complete tree.
TREE_GROUPS: tuple[str, ...] = ("kill_switch", "breakers", "signers", "chain", "strategy_feed", "vaults", "ops")


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    NOT_CONFIGURED = "not configured"
    WARN = "warn"  # said, never a failure (``key_ages``)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def failed(self, production: bool) -> bool:
        """Whether this result makes the engine not ready (or ``check`` exit non-zero)."""
        return self.status is Status.FAIL or (production and self.status is Status.NOT_CONFIGURED)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the checks look at.

    Attributes:
        runtime: the engine's runtime; None outside a running engine (``xorj-actors check``).
        board: the engine's halt board (read without asking the kill switch).
        endpoints: URLs the engine serves or uses (``rpc``, ``ws``, ``quant``: the names of
            ``Localnet.urls``; the engine registers its in-process localnet's as ``localnet_rpc``...).
    """

    config: Config
    data_dir: Path
    environ: Mapping[str, str]
    runtime: Any = None
    board: Any = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 2.0

    @property
    def production(self) -> bool:
        return self.config.engine.environment == "production"


Check = Callable[[CheckContext], CheckResult]


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def _fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail)


def _absent(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.NOT_CONFIGURED, detail)


# -- inside a running engine --------------------------------------------------------------------


def check_tree(ctx: CheckContext) -> CheckResult:
    """Every supervisor group of the tree is alive and no actor is still starting."""
    if ctx.runtime is None:
        return _absent("tree", "no running engine")
    from supervisors import ActorState

    actors = ctx.runtime.actors()
    names = {a.name for a in actors}
    if missing := [g for g in TREE_GROUPS if g not in names]:
        return _fail("tree", f"not running: {', '.join(missing)}")
    if starting := sorted(a.name for a in actors if a.state is ActorState.STARTING):
        return _fail("tree", f"still starting: {', '.join(starting[:10])}")
    return _ok("tree", f"{len(actors)} actors up")


def check_kill_switch(ctx: CheckContext) -> CheckResult:
    """Trading is allowed (ARMED, or RECOVERY_PENDING at reduced limits)."""
    if ctx.board is None:
        return _absent("kill_switch", "no running engine")
    status = ctx.board.status
    if status.halted:
        return _fail("kill_switch", f"{status.state} (epoch {status.epoch}): trading halted")
    return _ok("kill_switch", f"{status.state} (epoch {status.epoch}), position factor {status.factor:g}")


def check_execution(ctx: CheckContext) -> CheckResult:
    """The Executor has read its open trades back; the Confirmation actor's WebSocket is up."""
    name = "execution"
    if ctx.runtime is None:
        return _absent(name, "no running engine")
    if not ctx.config.execution.enabled:
        return _absent(name, "[execution] enabled = false")
    from xorj_actors.chain import CONFIRMATION_NAME, GetConfirmationHealth
    from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus

    executor, confirmation = ctx.runtime.whereis(EXECUTOR_NAME), ctx.runtime.whereis(CONFIRMATION_NAME)
    if executor is None or confirmation is None:
        return _fail(name, "the executor or the confirmation actor is not running (restarting?)")
    try:
        status = executor.ask(GetExecutorStatus(), timeout=ctx.timeout_s)
        health = confirmation.ask(GetConfirmationHealth(), timeout=ctx.timeout_s)
    except Exception as exc:  # noqa: BLE001 - Timeout, ActorDeadError: not reachable either way
        return _fail(name, f"did not answer: {type(exc).__name__}")
    if not status.reconciled:
        return _fail(name, "the executor is still reading open trades back from the audit log")
    if not health.connected:
        return _fail(name, f"the confirmation WebSocket is down ({health.last_error})")
    unsettled = f", unsettled vaults: {', '.join(status.unsettled_vaults[:5])}" if status.unsettled_vaults else ""
    return _ok(name, f"{status.in_flight} trades in flight, slot {health.slot}{unsettled}")


# -- components ---------------------------------------------------------------------------------


def check_audit_store(ctx: CheckContext) -> CheckResult:
    """In the engine: the Audit actor's log is writing. Outside: the configured store answers."""
    name = "audit_store"
    if ctx.runtime is not None:
        return _audit_actor_health(ctx)
    from xorj_actors.audit import AuditStoreError, open_store

    try:
        store = open_store(ctx.config.audit, ctx.data_dir, create=False)
    except AuditStoreError as exc:
        if exc.__cause__ is None:  # it answered; the log is created at the engine's first start
            return _ok(name, f"{exc}: created at first start")
        return _fail(name, str(exc))
    try:
        return _ok(name, store.where)
    finally:
        store.close()


def check_audit_anchor(ctx: CheckContext) -> CheckResult:
    """Anchoring is on (production needs it: else a cut tail or a rewrite with the key goes unseen),
    its bucket has Object Lock and no rule expiring anchors; lifecycle drift is shown."""
    name = "audit_anchor"
    anchor = ctx.config.audit.anchor
    if not anchor.enabled:
        return _absent(
            name,
            "[audit.anchor] enabled = false: without anchors a truncated tail or a rewrite of the audit log "
            "with its key cannot be detected",
        )
    from xorj_actors.audit import lifecycle_drift, list_anchors, s3_client

    where = f"s3://{anchor.bucket}/{anchor.prefix}"
    try:
        client = s3_client(anchor, timeout_s=ctx.timeout_s)
        locked = probes.object_lock_enabled(client, anchor.bucket)
        anchors, drift = (list_anchors(client, anchor), lifecycle_drift(client, anchor)) if locked else ([], [])
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "cannot anchor"
        return _fail(name, f"{where}: {type(exc).__name__}: {exc}")
    if not locked:
        return _fail(name, f"{where}: Object Lock is not enabled on the bucket: anchors could be deleted")
    if any(d.hides_anchors for d in drift):
        return _fail(name, f"{where}: " + "; ".join(str(d) for d in drift if d.hides_anchors))
    last = f"the last reaches entry {anchors[-1].sequence}" if anchors else "none written yet"
    lifecycle = f"; lifecycle drift: {'; '.join(map(str, drift))}" if drift else "; lifecycle as configured"
    return _ok(name, f"{where} (Object Lock): {len(anchors)} anchors, {last}{lifecycle}")


def _audit_actor_health(ctx: CheckContext) -> CheckResult:
    from xorj_actors.audit import AUDIT_NAME, GetAuditHealth

    name = "audit_store"
    ref = ctx.runtime.whereis(AUDIT_NAME)
    if ref is None:
        return _absent(name, "no Audit actor in the tree (not wired yet, or restarting)")
    try:
        health = ref.ask(GetAuditHealth(), timeout=ctx.timeout_s)
    except Exception as exc:  # noqa: BLE001 - Timeout, ActorDeadError: not reachable either way
        return _fail(name, f"the Audit actor did not answer: {type(exc).__name__}")
    if not health.available:
        held = health.pending + health.held
        return _fail(name, f"audit store unavailable ({health.reason}): trading stops; {held} entries held")
    return _ok(name, f"audit log writing ({health.pending} pending)")


def _endpoint_check(name: str, key: str, probe: Callable[[str, float], str], unconfigured: str) -> Check:
    def check(ctx: CheckContext) -> CheckResult:
        url = _endpoint_url(ctx, key)
        if not url:
            return _absent(name, unconfigured)
        shown, masked = redact_url(url), Redactor(url_secrets(url))
        try:
            return _ok(name, f"{shown}: {probe(url, ctx.timeout_s)}")
        except Exception as exc:  # noqa: BLE001 - any failure of a probe is "unreachable"
            return _fail(name, f"{shown}: {masked(f'{type(exc).__name__}: {exc}')}")

    check.__name__ = f"check_{name}"
    check.__doc__ = f"The {name} endpoint (``endpoints[{key!r}]``, else the localnet's) answers."
    return check


def _endpoint_url(ctx: CheckContext, key: str) -> str:
    """What the engine serves or registered, else the config's, else the in-process localnet's."""
    configured = {
        "rpc": ctx.config.execution.rpc_url,
        "ws": ctx.config.execution.ws_url,
        "quant": ctx.config.strategy.url,
        "quote": ctx.config.jupiter_url(),
    }.get(key, "")
    return ctx.endpoints.get(key) or configured or ctx.endpoints.get(f"localnet_{key}", "")


_NO_CHAIN = "no chain endpoint configured ([execution] rpc_url / ws_url, or [localnet] enabled)"
check_rpc = _endpoint_check("rpc", "rpc", probes.jsonrpc_health, _NO_CHAIN)
check_websocket = _endpoint_check("websocket", "ws", probes.websocket_open, _NO_CHAIN)
check_quant = _endpoint_check(
    "quant_engine", "quant", probes.http_get, "no quantitative engine endpoint configured ([strategy] url)"
)
#: Jupiter's public host; the keyless one (lite-api.jup.ag) was retired in 2026.
_JUPITER_HOST = "api.jup.ag"


def check_jupiter(ctx: CheckContext) -> CheckResult:
    """Jupiter's APIs: the key the engine sends is set, and ``/price/v3`` prices every traded
    token with it (one request; the key is never shown)."""
    name, cfg = "jupiter", ctx.config
    url = _endpoint_url(ctx, "quote")
    if not url:
        return _absent(name, "no Jupiter endpoint configured ([jupiter] base_url, or [localnet] enabled)")
    jup = cfg.jupiter_api(ctx.environ)
    where = f"{redact_url(url)} (api {jup.api}, key {'$' + jup.api_key_env if jup.api_key_env else 'none'})"
    if ctx.production and not jup.api_key_env and urllib.parse.urlsplit(url).hostname == _JUPITER_HOST:
        return _fail(name, f"{where}: [jupiter] api_key_env is empty: {_JUPITER_HOST} answers no request without a key")
    from xorj_actors.jupiter import MAX_IDS, MissingApiKey, api_headers

    try:
        headers = api_headers(jup, ctx.environ)
    except MissingApiKey as exc:
        return _fail(name, f"{where}: {exc}")
    tokens = {str(t.mint): t.symbol for t in cfg.token_registry()}
    asked = dict(list(tokens.items())[:MAX_IDS])  # one request: Price v3 takes at most MAX_IDS mints
    try:
        seen = probes.jupiter_prices(url, headers, asked, ctx.timeout_s, jup.max_answer_bytes)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe: the engine cannot price
        masked = Redactor([headers.get("x-api-key", ""), *url_secrets(url)])  # should an answer echo them
        return _fail(name, f"{where}: {masked(f'{type(exc).__name__}: {exc}')}")
    if len(tokens) > len(asked):
        seen += f" asked (the first {len(asked)} of {len(tokens)})"
    return _ok(name, f"{where}: {seen}")


def check_signer(ctx: CheckContext) -> CheckResult:
    """Every configured key store answers: in the engine its Signer actor, outside it the store
    itself, which must hold the key of every configured vault."""
    name = "signer"
    keys = ctx.config.signers.keys
    if not keys:
        return _absent(name, "no [[signers.keys]] configured")
    problems, fine = [], []
    for key in keys:
        try:
            health = _signer_health(ctx, key) if ctx.runtime is not None else _open_signer(ctx, key)
        except Exception as exc:  # noqa: BLE001 - SignerError, PKCS#11 and AWS errors alike
            problems.append(f"{key.name} ({key.backend}): {type(exc).__name__}: {exc}")
            continue
        fine.append(f"{key.name} ({key.backend}) {health}")
    if problems:
        return _fail(name, "; ".join(problems))
    return _ok(name, "; ".join(fine))


def _signer_health(ctx: CheckContext, key: Any) -> str:
    # Read without a message (the signer may be busy signing); never open a second session here:
    # a PKCS#11 token allows one login per process.
    actor_name = f"signer:{key.name}"
    for m in ctx.runtime.mailboxes():
        actor = m.actor
        if m.name == actor_name and actor is not None and hasattr(actor, "health"):
            health = actor.health()
            if not health.ready:
                raise RuntimeError("backend not open yet")
            if not health.ok:
                raise RuntimeError(f"last signature failed: {health.error}")
            return f"{health.vault_keys} vault keys"
    raise RuntimeError(f"{actor_name} is not running (restarting?)")


def _open_signer(ctx: CheckContext, key: Any) -> str:
    from xorj_actors.signers import SignerError, open_backend, vault_id

    vaults = [vault_id(i) for i in range(ctx.config.vaults.count)]
    backend = open_backend(key, environment=ctx.config.engine.environment, environ=ctx.environ, data_dir=ctx.data_dir)
    try:
        missing = []
        for vault in vaults:
            try:
                backend.public_key(vault)
            except SignerError:
                missing.append(vault)
        if missing:
            raise SignerError(f"no key for {len(missing)} of {len(vaults)} vaults (first: {missing[0]}); run `keys init`")
        return f"{len(vaults)} vault keys"
    finally:
        backend.close()


# -- configuration ------------------------------------------------------------------------------


def check_dev_settings(ctx: CheckContext) -> CheckResult:
    """A production config uses no development-only setting."""
    from xorj_actors.config import development_settings

    dev = development_settings(ctx.config)
    if ctx.production and dev:
        return _fail("dev_settings", "development-only settings in a production config: " + "; ".join(dev))
    if dev:
        return _ok("dev_settings", "development config: " + "; ".join(dev))
    return _ok("dev_settings", "none")


def check_downtime_liquidation(ctx: CheckContext) -> CheckResult:
    """The downtime liquidation policy (docs/RISK.md): on or off, its limit and vaults (a setting, never a failure)."""
    return _ok("downtime_liquidation", ctx.config.kill_switch.downtime_liquidation.describe())


def _hmac_key_envs(config: Config) -> tuple[str, ...]:
    return (*config.kill_switch.recovery_key_envs, config.audit.hmac_key_env, config.http.hmac_key_env)


def _pin_envs(config: Config) -> tuple[str, ...]:
    return tuple(k.pkcs11.pin_env for k in config.signers.keys if k.backend == "pkcs11")


def _required_api_keys(ctx: CheckContext) -> tuple[str, ...]:
    """API keys the engine cannot start without: Jupiter's when it calls a ``[jupiter] base_url``
    (a localnet's quote service needs none), the quantitative engine's in production."""
    jup = ctx.config.jupiter
    names = (jup.api_key_env,) if jup.base_url and jup.api_key_env else ()
    return (*names, ctx.config.strategy.api_key_env) if ctx.production else names


def secret_env_names(config: Config) -> tuple[str, ...]:
    """Every environment variable the config names as holding a secret."""
    names = [*_hmac_key_envs(config), *_pin_envs(config), config.strategy.api_key_env, config.audit.retired_hmac_keys_env]
    if config.jupiter.api_key_env:
        names.append(config.jupiter.api_key_env)
    if config.audit.backend == "postgres":
        names.append(config.audit.postgres.password_env)
    names += [config.slack.signing_secret_env] if config.slack is not None else []
    return tuple(dict.fromkeys(names))


def check_data_dir(ctx: CheckContext) -> CheckResult:
    """The data directory is private: no one but the engine's user can write it, or read what is in it."""
    from xorj_actors.data_dir import data_dir_problem, readable_by_others

    problem = data_dir_problem(ctx.data_dir)
    if problem is not None:
        return _fail("data_dir", problem)
    if not ctx.data_dir.exists():
        return _ok("data_dir", f"{ctx.data_dir} does not exist yet: the engine creates it 0700")
    exposed = readable_by_others(ctx.data_dir)
    if exposed:
        return _ok("data_dir", f"{len(exposed)} entries readable by others (e.g. {exposed[0]}): the engine makes them private at start")
    return _ok("data_dir", f"{ctx.data_dir} is private (0700, files 0600)")


def check_slack(ctx: CheckContext) -> CheckResult:
    """The panic button in Slack (``[slack]``): off, or its signing secret set (never shown)."""
    ok, detail = (True, "off: no [slack] section") if ctx.config.slack is None else ctx.config.slack.readiness(ctx.environ)
    return CheckResult("slack", Status.OK if ok else Status.FAIL, detail)


def check_secrets(ctx: CheckContext) -> CheckResult:
    """Every required secret is in the environment, HMAC keys long enough (values are never shown)."""
    cfg = ctx.config
    keys = _hmac_key_envs(cfg)
    required = tuple(dict.fromkeys((*keys, *_pin_envs(cfg), *_required_api_keys(ctx))))
    missing = [env for env in required if not ctx.environ.get(env)]
    short = [env for env in keys if 0 < len(ctx.environ.get(env, "").encode()) < MIN_KEY_BYTES]
    if short:
        return _fail("secrets", f"shorter than {MIN_KEY_BYTES} bytes: {', '.join(short)}")
    if missing:
        return _absent("secrets", f"not set: {', '.join(missing)}")
    return _ok("secrets", f"{len(required)} set")


#: What ``/health/ready`` requires.
READINESS_CHECKS: tuple[Check, ...] = (
    check_tree,
    check_kill_switch,
    check_audit_store,
    check_signer,
    check_rpc,
    check_websocket,
    check_execution,
)
#: What ``xorj-actors check`` runs.
PRODUCTION_CHECKS: tuple[Check, ...] = (
    check_rpc,
    check_websocket,
    check_audit_store,
    check_audit_anchor,
    check_signer,
    check_quant,
    check_jupiter,
    check_dev_settings,
    check_secrets,
    check_slack,
    check_data_dir,
    check_downtime_liquidation,
    check_correlation,
)
#: ``/health/detailed``: everything, each component once.
ALL_CHECKS: tuple[Check, ...] = tuple(dict.fromkeys((*READINESS_CHECKS, *PRODUCTION_CHECKS)))


def run_checks(checks: Sequence[Check], ctx: CheckContext) -> list[CheckResult]:
    """Run ``checks`` in order; a check that raises is a failed check, never a crash."""
    results = []
    for check in checks:
        try:
            results.append(check(ctx))
        except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
            name = check.__name__.removeprefix("check_")
            results.append(_fail(name, f"check raised {type(exc).__name__}: {exc}"))
    return results


# -- the subcommand -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per network probe (default: [http] probe_timeout_s)"
    )


def main(args: argparse.Namespace) -> int:
    from xorj_actors.cli import load_config_or_exit

    config = load_config_or_exit(args)
    timeout = args.timeout if args.timeout is not None else config.http.probe_timeout_s
    if not 0 < timeout <= 60:
        print("xorj-actors: --timeout must be in (0, 60]", file=sys.stderr)
        return 2
    from xorj_actors.credentials import check_credentials  # [secrets]: env, file or AWS; the keys' ages
    environ, key_ages = check_credentials(config)
    ctx = CheckContext(config=config, data_dir=Path(args.data_dir), environ=environ, timeout_s=timeout)
    results = [*run_checks(PRODUCTION_CHECKS, ctx), key_ages]
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{'FAIL' if r.failed(ctx.production) else r.status.value:<14} {r.name:<{width}}  {r.detail}")
    failed = sum(r.failed(ctx.production) for r in results)
    print(f"{len(results)} checks, {failed} failed ({config.engine.environment} config)")
    return 1 if failed else 0
