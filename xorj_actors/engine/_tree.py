"""The supervision tree of the engine, as child specs.

```
root (one_for_one; past its restart intensity the process exits 3)
├── audit                    the single writer of the hash-chained log
├── kill_switch              halt epochs, persisted state, acks, recovery
├── breakers (one_for_one)   one actor per breaker (7)
├── signers (one_for_one)    one actor per key
├── chain (rest_for_one)     confirmation, then executor (a new Confirmation means a new Executor)
├── rpc_gateway              the vaults' batched reads, the price watch (uses neither of the above)
├── strategy_feed            polls the quantitative engine
├── risk (one_for_one)       drawdown, heartbeat, clock-skew triggers
├── vaults (one_for_one)     one actor per vault
└── ops (one_for_one)        debug_socket, http_api, signal_watcher
```
The audit actor starts first so that the kill switch's first transition is recorded (if the
store is down, it writes the kill file, which the kill switch halts on); the kill switch starts
before every other actor so they read a published halt board; ops start last so that operators
only see a complete tree. ``tests/engine`` checks this order against the running tree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solders.pubkey import Pubkey

from supervisors import ChildSpec, Strategy, Supervisor
from xorj_actors.audit import Audit
from xorj_actors.engine._reconciler import reconciler_children
from xorj_actors.breakers import BREAKERS, Breaker, BreakerBoard, TradeGate, breaker_table, report
from xorj_actors.chain import CONFIRMATION_NAME, GATEWAY_NAME, Confirmation, RpcGateway
from xorj_actors.config import Config, ConfigError
from xorj_actors.correlation import ExposureBoard
from xorj_actors.execution import Executor, ExecutorOptions, TradeRequest
from xorj_actors.jupiter import api_headers
from xorj_actors.kill_switch import ClusterHalt, HaltBoard, HaltHistory, KillSwitch
from xorj_actors.messages import Trigger
from xorj_actors.metrics import Metrics
from xorj_actors.ops import DebugSocket, HttpApi, SignalWatcher, TradeWindow
from xorj_actors.quotas import Quotas
from xorj_actors.redaction import Redactor
from xorj_actors.risk import ClockSkewMonitor, DrawdownMonitor, HeartbeatWatchdog
from xorj_actors.signers import (
    LOCALNET_DEV_SEED, KeySettings, Signer, SignerError, VaultKeys, dev_vault_keypair, vault_id, vault_key_board,
)
from xorj_actors.strategy import StrategyBoard, StrategyFeed
from xorj_actors.tokens import vault_token_account
from xorj_actors.vaults import Vault

if TYPE_CHECKING:
    from xorj_actors.cluster import Fence

__all__ = ["TreeContext", "root_children", "vault_authorities", "vault_spec"]

#: How long a starting vault waits for its key store's Signer to show its key.
_KEY_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class TreeContext:
    """What the tree's actors are built from."""

    config: Config
    data_dir: Path
    board: HaltBoard
    breaker_board: BreakerBoard
    strategy_board: StrategyBoard
    environ: Mapping[str, str]
    endpoints: Callable[[], Mapping[str, str]]
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    #: Called with the signal name on SIGTERM/SIGINT; None: no signal watcher (in-process use).
    on_shutdown: Callable[[str], None] | None = None
    #: This engine's metrics (a registry of its own).
    metrics: Metrics = field(default_factory=Metrics)
    #: Read-only views for the debug socket (``progress``) that need the engine, not an actor.
    views: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    #: Called with (name, url) when a server of the tree starts listening (``http``, ``metrics``).
    register_endpoint: Callable[[str, str], None] | None = None
    #: The kill switch's audit wiring (the engine's; None in-process without one): entries that
    #: must be durable before it goes on, its history read at every start, its state file's key.
    on_event_durable: Callable[[str, dict[str, Any]], None] | None = None
    halt_history: Callable[[], HaltHistory] | None = None
    state_keys: Callable[[], dict[str, Any]] = dict
    chain_time: Callable[[], float] | None = None  # the chain's time now (the downtime policy's check)
    #: The engine's one redaction of secrets in free text (every free-text field an actor
    #: writes passes it); None: each actor's default (the kill switch's: one of ``environ``).
    redactor: Redactor | None = None
    #: Each key store's board of vault keys, by store name (made on first use, kept across
    #: restarts of its Signer: a vault's key never changes under a reader).
    vault_keys: dict[str, VaultKeys] = field(default_factory=dict)
    #: Every external endpoint's budget, for the actors that call out (None: no budgets).
    quotas: Quotas | None = None
    #: With ``[cluster]``: the halt the kill switch starts in while the cluster is halted.
    start_trigger: Callable[[], Trigger | None] | None = None
    #: With ``[cluster]``: the node runtime, to which a recovery of the cluster's halt is handed.
    cluster_halt: ClusterHalt | None = None
    #: ``[cluster]``: the leases this node holds (docs/CLUSTER.md). The executor signs only under
    #: them, and no vault starts with the tree: the lease loop activates each one it holds.
    #: None: this engine runs alone, every configured vault is its own.
    fence: Fence | None = None
    #: The last minute's trade outcomes (the ``trades`` command, ``xorj-actors top``); None: none kept.
    trades: TradeWindow | None = None
    exposure: ExposureBoard | None = None  #: token clusters, vaults' stakes (docs/RISK.md); None: no limit

    @property
    def budgets(self) -> Quotas | None:
        """The budgets the calling actors enforce: none against the in-process localnet (it
        imposes no provider's limits) unless ``[quotas] on_localnet``."""
        cfg = self.config
        return self.quotas if (not cfg.localnet.enabled or cfg.quotas.on_localnet) else None

    def kill_switch_event(self, kind: str, details: dict[str, Any]) -> None:
        """The kill switch's ``on_event``: metrics first, then the audit trail's ``on_event``."""
        self.metrics.on_kill_switch_event(kind, details)
        if self.on_event is not None:
            self.on_event(kind, details)

    def kill_switch_event_durable(self, kind: str, details: dict[str, Any]) -> None:
        """The kill switch's ``on_event_durable``: returns once the entry is committed, or raises."""
        if self.on_event_durable is None:
            return self.kill_switch_event(kind, details)
        self.on_event_durable(kind, details)
        self.metrics.on_kill_switch_event(kind, details)
        return None


def _supervisor(ctx: TreeContext, name: str, children: list[ChildSpec], strategy: Strategy) -> ChildSpec:
    sup = ctx.config.supervision
    return ChildSpec(
        name,
        lambda: Supervisor.start(children, strategy=strategy, max_restarts=sup.max_restarts, period=sup.period_s, name=name),
        # A supervisor stops its children one by one: it needs all their timeouts (OTP: infinity),
        # or its parent would abandon it and start new children beside the old ones.
        shutdown_timeout=sum(c.shutdown_timeout for c in children) + sup.shutdown_timeout_s,
    )


def _worker(ctx: TreeContext, name: str, start: Callable[[], Any]) -> ChildSpec:
    return ChildSpec(name, start, shutdown_timeout=ctx.config.supervision.shutdown_timeout_s)


def _start_signer(ctx: TreeContext, key: KeySettings) -> Any:
    hsm = ctx.metrics.hsm_operations
    cfg = ctx.config
    # The signing store must hold every configured vault's key before it signs anything.
    vaults = tuple(vault_id(i) for i in range(cfg.vaults.count)) if key == _signing_key(cfg) else ()
    return Signer.start(
        ctx.board,
        key,
        _key_board(ctx, key),
        vaults,
        environment=cfg.engine.environment,
        environ=ctx.environ,
        data_dir=ctx.data_dir,
        on_operation=lambda backend, result: hsm.labels(backend, result).inc(),
        # Cluster: the signer checks the vault's lease itself, right before the key signs.
        fence=ctx.fence.fence if ctx.fence is not None and key == _signing_key(cfg) else None,
    )


def _signing_key(cfg: Config) -> KeySettings:
    """The store whose vault keys sign swaps: ``[execution] signer``, else the first ``[[signers.keys]]``."""
    return cfg.signers.key(cfg.execution.signer) if cfg.execution.signer else cfg.signers.keys[0]


def _key_board(ctx: TreeContext, key: KeySettings) -> VaultKeys:
    board = ctx.vault_keys.get(key.name)
    if board is None:
        try:
            board = ctx.vault_keys.setdefault(key.name, vault_key_board(key, ctx.data_dir))
        except SignerError as exc:
            raise ConfigError(f"signers.keys {key.name!r}: {exc}") from None
    return board


def _settling(board: ExposureBoard | None, hook: Callable[[Any, float], None]) -> Callable[[Any, float], None]:
    """The executor's outcome hook: ``hook``, then the exposure board hears each final outcome (a buy's reservation ends)."""
    return hook if board is None else board.after(hook)


def vault_authorities(ctx: TreeContext) -> VaultKeys:
    """Vault id -> its own authority: the signing store's board; with no store (nothing
    trades), the localnet's vaults as its genesis has them."""
    cfg = ctx.config
    if cfg.signers.keys:
        return _key_board(ctx, _signing_key(cfg))
    board = ctx.vault_keys.get("")
    if board is None:
        listed = {vault_id(i): Pubkey.from_string(k) for i, k in enumerate(cfg.localnet.vault_authorities)}

        def derive(vault: str) -> Pubkey:
            return listed.get(vault) or dev_vault_keypair(LOCALNET_DEV_SEED, vault).pubkey()

        board = ctx.vault_keys.setdefault("", VaultKeys("localnet", derive=derive))
    return board


def _node_urls(ctx: TreeContext) -> tuple[str, str, str]:
    """``(rpc, ws, jupiter)``: ``[execution]``'s URLs and ``[jupiter] base_url``, else the in-process localnet's."""
    cfg, endpoints = ctx.config, ctx.endpoints()
    ex = cfg.execution
    return (
        ex.rpc_url or endpoints.get("localnet_rpc", ""),
        ex.ws_url or endpoints.get("localnet_ws", ""),
        cfg.jupiter_url() or endpoints.get("localnet_quote", ""),
    )


def _chain_children(ctx: TreeContext) -> list[ChildSpec]:
    """Confirmation, then the Executor that relies on it.

    ``rest_for_one`` (the ``chain`` supervisor): a new Confirmation has forgotten every watch, so
    it means a new Executor, which reads its open trades back from the audit log and watches them
    again. The RPC gateway is not here (see :func:`_gateway_children`).
    """
    cfg, board = ctx.config, ctx.board
    ex = cfg.execution
    if not ex.enabled:
        return []
    rpc, ws, quote = _node_urls(ctx)
    key = _signing_key(cfg)
    authorities = vault_authorities(ctx)
    metrics = ctx.metrics
    if ws and rpc:  # a node: slots must flow (xorj_confirmation_slot_age_seconds)
        metrics.expect_slots()
    return [
        _worker(
            ctx,
            CONFIRMATION_NAME,
            lambda: Confirmation.start(
                board, cfg.confirmation, ws_url=ws, rpc_url=rpc, on_reconnect=metrics.ws_reconnects.inc,
                on_slot=metrics.on_slot, quotas=ctx.budgets,
            ),
        ),
        _worker(
            ctx,
            "executor",
            lambda: Executor.start(
                board,
                ex,
                ExecutorOptions(
                    rpc_url=rpc,
                    quote_url=quote,
                    jupiter=ctx.config.jupiter_api(ctx.environ),
                    environ=ctx.environ,
                    audit=cfg.audit,
                    data_dir=ctx.data_dir,
                    environment=cfg.engine.environment,
                    vault_authority=authorities.require,
                    signer=key.name,
                    gate=TradeGate(ctx.breaker_board, cfg.breakers).admit,
                    decimals=tradable_mints(cfg),
                    stable_mint=_stable_mint(cfg),
                    vault_account=_vault_accounts(authorities),
                    report=report,
                    on_outcome=_settling(ctx.exposure, metrics.on_trade_outcome if ctx.trades is None else ctx.trades.after(metrics.on_trade_outcome)),
                    on_route_skip=metrics.on_route_skip,
                    on_bundle_status=metrics.on_bundle_status,
                    jito=cfg.jito,
                    quotas=ctx.budgets,
                    block_engine_url=cfg.jito.block_engine_url or ctx.endpoints().get("localnet_block_engine", ""),
                    fence=ctx.fence.fence if ctx.fence is not None else None,
                    held_vaults=ctx.fence.usable if ctx.fence is not None else None,
                ),
            ),
        ),
    ]


def _gateway_children(ctx: TreeContext) -> list[ChildSpec]:
    """The RPC gateway (with execution enabled), a root child of its own.

    Neither the Confirmation nor the Executor uses it (the executor reads prices itself), and it
    uses neither: it serves the vaults' snapshots and feeds the volatility breaker. It used to
    come first in the chain's ``rest_for_one`` list, where its crash restarted both, and the
    trades in flight lost their watches for nothing. Beside them under the root's
    ``one_for_one``, a crash of either side restarts only that side.
    """
    cfg = ctx.config
    if not cfg.execution.enabled:
        return []
    rpc, _, quote = _node_urls(ctx)
    authorities = vault_authorities(ctx)
    return [
        _worker(
            ctx,
            GATEWAY_NAME,
            lambda: RpcGateway.start(
                ctx.board,
                cfg.gateway,
                rpc_url=rpc,
                quote_url=quote,
                owner=authorities.get,
                price_headers=api_headers(ctx.config.jupiter_api(ctx.environ), ctx.environ),
                watch_mints=tuple(m for m in tradable_mints(cfg) if m != _stable_mint(cfg)),
                volatility=cfg.breakers.volatility,
                quotas=ctx.budgets, exposure=ctx.exposure,
            ),
        )
    ]


def _risk_children(ctx: TreeContext) -> list[ChildSpec]:
    """The automatic kill-switch triggers: drawdown and daily loss, heartbeats, clock skew."""
    cfg, board, r = ctx.config, ctx.board, ctx.config.risk
    kill_file = ctx.data_dir / cfg.kill_switch.kill_file
    state = ctx.data_dir / r.drawdown_state_file if r.drawdown_state_file else None

    def rpc() -> str | None:
        return cfg.execution.rpc_url or ctx.endpoints().get("localnet_rpc", "") or None

    out = []
    if r.drawdown_enabled:
        out.append(
            _worker(
                ctx,
                "risk_drawdown",
                lambda: DrawdownMonitor.start(board, r, state_file=state, kill_file=kill_file, redactor=ctx.redactor),
            )
        )
    if r.heartbeat_enabled:
        out.append(_worker(ctx, "risk_heartbeat", lambda: HeartbeatWatchdog.start(board, r, kill_file=kill_file)))
    if r.clock_skew_enabled:
        out.append(_worker(ctx, "risk_clock_skew", lambda: ClockSkewMonitor.start(board, r, rpc, kill_file=kill_file, quotas=ctx.budgets)))
    if cfg.execution.enabled:  # the statement reconciliation: a mismatch may halt, as the monitors do
        out += reconciler_children(ctx, _worker, vault_authorities(ctx).require, _node_urls(ctx)[0])
    return out


def _vault_accounts(authorities: VaultKeys) -> Callable[[str, str], Pubkey]:
    """(vault id, mint) -> the vault's token account: its own authority's ATA."""

    def account(vault: str, mint: str) -> Pubkey:
        return vault_token_account(authorities.require(vault), Pubkey.from_string(mint))

    return account


def _stable_mint(cfg: Config) -> str:
    return str(cfg.token_registry().stable.mint)


def tradable_mints(cfg: Config) -> Mapping[str, int]:
    """Mint -> decimals of every token the engine trades: the ``[[tokens]]`` registry."""
    return cfg.token_registry().decimals()


def _start_strategy_feed(ctx: TreeContext) -> Any:
    cfg = ctx.config
    url = cfg.strategy.url or ctx.endpoints().get("localnet_quant", "")
    return StrategyFeed.start(
        ctx.board, cfg.strategy, ctx.strategy_board, url, tradable_mints(cfg), ctx.environ, cfg.engine.environment
    )


def vault_spec(ctx: TreeContext, index: int) -> ChildSpec:
    """Vault ``index``: its id, token accounts (its own authority's ATAs), profile.

    The accounts are read when the vault starts, after the signers: a vault whose key store
    shows no key for it fails its start (fail closed).
    """
    cfg = ctx.config
    vid = vault_id(index)
    authorities = vault_authorities(ctx)
    registry = cfg.token_registry()

    def accounts() -> dict[str, str]:
        # The signers start first, but a store opens on its Signer's own thread: wait for it.
        authority = authorities.require(vid, wait_s=_KEY_WAIT_S)
        return {str(t.mint): str(vault_token_account(authority, t.mint)) for t in registry}

    names = cfg.vaults.profiles or tuple(p.name for p in cfg.strategy.profiles)
    profile = cfg.strategy.profile(names[index % len(names)])
    stable = str(registry.stable.mint)
    metrics = ctx.metrics
    return _worker(
        ctx,
        vid,
        lambda: Vault.start(
            ctx.board,
            vid,
            profile=profile,
            settings=cfg.vaults,
            strategy=ctx.strategy_board,
            accounts=accounts(),
            decimals=tradable_mints(cfg),
            stable_mint=stable,
            on_round=metrics.on_vault_round,
            on_slippage=metrics.on_realised_slippage, exposure=ctx.exposure,
        ),
    )


def root_children(ctx: TreeContext) -> list[ChildSpec]:
    cfg, board = ctx.config, ctx.board
    ks = _worker(
        ctx,
        "kill_switch",
        lambda: KillSwitch.start(
            cfg.kill_switch,
            ctx.data_dir,
            board,
            environ=ctx.environ,
            on_event=ctx.kill_switch_event,
            on_event_durable=ctx.kill_switch_event_durable,
            history=ctx.halt_history, chain_time=ctx.chain_time,
            **ctx.state_keys(),  # read at each start: an audit key rotation changes them
            redact=ctx.redactor or Redactor.from_environ(ctx.environ),
            start_trigger=ctx.start_trigger,
            cluster=ctx.cluster_halt,
        ),
    )
    audit = _worker(
        ctx,
        "audit",
        lambda: Audit.start(
            board,
            cfg.audit,
            ctx.data_dir,
            cfg.engine.environment,
            ctx.data_dir / cfg.kill_switch.kill_file,
            metrics=ctx.metrics,
        ),
    )
    breakers = [
        _worker(
            ctx,
            b,
            lambda b=b: Breaker.start(
                board, b, cfg.breakers, breakers=ctx.breaker_board, on_change=ctx.metrics.on_breaker_change
            ),
        )
        for b in BREAKERS
    ]
    signers = [_worker(ctx, f"signer:{key.name}", lambda key=key: _start_signer(ctx, key)) for key in cfg.signers.keys]
    chain = _chain_children(ctx)
    # Cluster: a vault starts only once this node holds its lease (engine/_leased.py).
    vaults = [] if ctx.fence is not None else [vault_spec(ctx, i) for i in range(cfg.vaults.count)]
    ops = [
        _worker(
            ctx,
            "debug_socket",
            lambda: DebugSocket.start(
                board,
                ctx.data_dir / cfg.debug_socket.path,
                cfg.debug_socket,
                ctx.endpoints,
                ctx.data_dir,
                views={
                    "breakers": lambda: breaker_table(ctx.breaker_board, cfg.breakers),
                    "vault_spec": functools.partial(vault_spec, ctx),
                    **ctx.views,
                },
                redactor=ctx.redactor,
                kill_file=ctx.data_dir / cfg.kill_switch.kill_file,
            ),
        )
    ]
    if cfg.http.enabled:
        ops.append(
            _worker(
                ctx,
                "http_api",
                lambda: HttpApi.start(
                    board, cfg, ctx.data_dir, ctx.environ, ctx.endpoints, ctx.metrics, on_listen=ctx.register_endpoint,
                    redactor=ctx.redactor, key_grace=ctx.views.get("http_key_grace"),
                ),
            )
        )
    if ctx.on_shutdown is not None:
        on_shutdown = ctx.on_shutdown
        ops.append(
            _worker(
                ctx,
                "signal_watcher",
                lambda: SignalWatcher.start(
                    board, on_shutdown, ctx.data_dir / cfg.kill_switch.kill_file, on_reload=ctx.views.get("reload_secrets")
                ),
            )
        )
    return [
        audit,
        ks,
        _supervisor(ctx, "breakers", breakers, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "signers", signers, Strategy.ONE_FOR_ONE),
        # rest_for_one: a new Confirmation means a new Executor (see _chain_children).
        _supervisor(ctx, "chain", chain, Strategy.REST_FOR_ONE),
        # Beside the chain, not in it: neither side uses the other (see _gateway_children).
        *_gateway_children(ctx),
        _worker(ctx, "strategy_feed", lambda: _start_strategy_feed(ctx)),
        _supervisor(ctx, "risk", _risk_children(ctx), Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "vaults", vaults, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "ops", ops, Strategy.ONE_FOR_ONE),
    ]
