"""The supervision tree of the engine, as child specs.

```
root (one_for_one)
├── kill_switch
├── breakers (one_for_one)   one actor per breaker
├── signers (one_for_one)    one actor per key
├── chain (rest_for_one)     rpc_gateway, confirmation
├── strategy_feed
├── vaults (one_for_one)     one actor per vault
└── ops (one_for_one)        debug_socket, signal_watcher
```
The kill switch starts first so that everything after it reads a published halt board; ops
start last so that operators only see a complete tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisors import ChildSpec, Strategy, Supervisor
from xorj_actors.breakers import BREAKERS, Breaker
from xorj_actors.chain import Confirmation, RpcGateway
from xorj_actors.config import Config
from xorj_actors.kill_switch import HaltBoard, KillSwitch
from xorj_actors.ops import DebugSocket, SignalWatcher
from xorj_actors.signers import Signer
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


def _supervisor(ctx: TreeContext, name: str, children: list[ChildSpec], strategy: Strategy) -> ChildSpec:
    sup = ctx.config.supervision
    return ChildSpec(
        name,
        lambda: Supervisor.start(children, strategy=strategy, max_restarts=sup.max_restarts, period=sup.period_s, name=name),
        shutdown_timeout=sup.shutdown_timeout_s * 2,
    )


def _worker(ctx: TreeContext, name: str, start: Callable[[], Any]) -> ChildSpec:
    return ChildSpec(name, start, shutdown_timeout=ctx.config.supervision.shutdown_timeout_s)


def vault_spec(ctx: TreeContext, vault_id: str) -> ChildSpec:
    return _worker(ctx, vault_id, lambda: Vault.start(ctx.board, vault_id))


def root_children(ctx: TreeContext) -> list[ChildSpec]:
    cfg, board = ctx.config, ctx.board
    ks = _worker(
        ctx,
        "kill_switch",
        lambda: KillSwitch.start(cfg.kill_switch, ctx.data_dir, board, environ=ctx.environ, on_event=ctx.on_event),
    )
    breakers = [_worker(ctx, b, lambda b=b: Breaker.start(board, b)) for b in BREAKERS]
    signers = [_worker(ctx, "signer:vault-authority", lambda: Signer.start(board, "vault-authority"))]
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
        ks,
        _supervisor(ctx, "breakers", breakers, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "signers", signers, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "chain", chain, Strategy.REST_FOR_ONE),
        _worker(ctx, "strategy_feed", lambda: StrategyFeed.start(board)),
        _supervisor(ctx, "vaults", vaults, Strategy.ONE_FOR_ONE),
        _supervisor(ctx, "ops", ops, Strategy.ONE_FOR_ONE),
    ]
