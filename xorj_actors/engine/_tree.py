"""The supervision tree of the engine, as child specs.

```
root (one_for_one)
├── audit                  the single writer of the hash-chained log
├── kill_switch
├── breakers (one_for_one)   one actor per breaker
├── signers (one_for_one)    one actor per key
├── chain (rest_for_one)     rpc_gateway, confirmation
├── strategy_feed
├── vaults (one_for_one)     one actor per vault
└── ops (one_for_one)        debug_socket, http_api, signal_watcher
```
The audit actor starts first so that the kill switch's first transition is recorded (if the
store is down, it writes the kill file, which the kill switch halts on); the kill switch starts
before every other actor so they read a published halt board; ops start last so that operators
only see a complete tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisors import ChildSpec, Strategy, Supervisor
from xorj_actors.audit import Audit
from xorj_actors.breakers import BREAKERS, Breaker
from xorj_actors.chain import Confirmation, RpcGateway
from xorj_actors.config import Config
from xorj_actors.kill_switch import HaltBoard, KillSwitch
from xorj_actors.metrics import Metrics
from xorj_actors.ops import DebugSocket, HttpApi, SignalWatcher
from xorj_actors.signers import KeySettings, Signer
from xorj_actors.strategy import StrategyFeed
from xorj_actors.vaults import Vault

__all__ = ["TreeContext", "root_children", "vault_spec"]


@dataclass(frozen=True, slots=True)
class TreeContext:
    """What the tree's actors are built from."""

    config: Config
    data_dir: Path
    board: HaltBoard
    environ: Mapping[str, str]
    endpoints: Callable[[], Mapping[str, str]]
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    #: Called with the signal name on SIGTERM/SIGINT; None: no signal watcher (in-process use).
    on_shutdown: Callable[[str], None] | None = None
    #: This engine's metrics (a registry of its own).
    metrics: Metrics = field(default_factory=Metrics)
    #: Called with (name, url) when a server of the tree starts listening (``http``, ``metrics``).
    register_endpoint: Callable[[str, str], None] | None = None

    def kill_switch_event(self, kind: str, details: dict[str, Any]) -> None:
        """The kill switch's ``on_event``: metrics first, then the audit trail's ``on_event``."""
        self.metrics.on_kill_switch_event(kind, details)
        if self.on_event is not None:
            self.on_event(kind, details)


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
    return Signer.start(
        ctx.board,
        key,
        environment=ctx.config.engine.environment,
        environ=ctx.environ,
        data_dir=ctx.data_dir,
        on_operation=lambda backend, result: hsm.labels(backend, result).inc(),
    )


def vault_spec(ctx: TreeContext, vault_id: str) -> ChildSpec:
    return _worker(ctx, vault_id, lambda: Vault.start(ctx.board, vault_id))


def root_children(ctx: TreeContext) -> list[ChildSpec]:
    cfg, board = ctx.config, ctx.board
    ks = _worker(
        ctx,
        "kill_switch",
        lambda: KillSwitch.start(
            cfg.kill_switch, ctx.data_dir, board, environ=ctx.environ, on_event=ctx.kill_switch_event
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
    breakers = [_worker(ctx, b, lambda b=b: Breaker.start(board, b)) for b in BREAKERS]
    signers = [_worker(ctx, f"signer:{key.name}", lambda key=key: _start_signer(ctx, key)) for key in cfg.signers.keys]
    chain = [
        _worker(ctx, "rpc_gateway", lambda: RpcGateway.start(board)),
        _worker(ctx, "confirmation", lambda: Confirmation.start(board)),
    ]
    vaults = [vault_spec(ctx, f"vault-{i:04d}") for i in range(cfg.engine.vaults)]
    ops = [
        _worker(
            ctx,
            "debug_socket",
            lambda: DebugSocket.start(
                board, ctx.data_dir / cfg.debug_socket.path, cfg.debug_socket, ctx.endpoints, ctx.data_dir
            ),
        )
    ]
    if cfg.http.enabled:
        ops.append(
            _worker(
                ctx,
                "http_api",
                lambda: HttpApi.start(
                    board, cfg, ctx.data_dir, ctx.environ, ctx.endpoints, ctx.metrics, on_listen=ctx.register_endpoint
                ),
            )
        )
    if ctx.on_shutdown is not None:
        on_shutdown = ctx.on_shutdown
        ops.append(
            _worker(
                ctx,
                "signal_watcher",
                lambda: SignalWatcher.start(board, on_shutdown, ctx.data_dir / cfg.kill_switch.kill_file),
            )
        )
    return [
        audit,
        ks,
        _supervisor(ctx, "breakers", breakers, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "signers", signers, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "chain", chain, Strategy.REST_FOR_ONE),
        _worker(ctx, "strategy_feed", lambda: StrategyFeed.start(board)),
        _supervisor(ctx, "vaults", vaults, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "ops", ops, Strategy.ONE_FOR_ONE),
    ]
