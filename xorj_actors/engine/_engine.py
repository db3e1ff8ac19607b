"""The engine process: runtime, tree, data directory, and the exit code systemd sees."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervisors import ActorState, Runtime, Strategy, Supervisor
from xorj_actors.audit import (
    KILL_SWITCH_ACTOR,
    KILL_SWITCH_ALIVE_ACTOR,
    KILL_SWITCH_STARTING,
    AuditEntry,
    KeyRing,
    append_durable,
    audit_event,
    audit_key_in_use,
    halt_history,
    record,
)
from xorj_actors.check import secret_env_names
from xorj_actors.credentials import open_credentials
from xorj_actors.engine._audit_keys import (
    audit_secrets_answer, rotate_audit_key, rotates_shared_keys, state_keys_now,
)
from xorj_actors.engine._reload import SecretsReload
from xorj_actors.engine._rotation import KeyRotator
from xorj_actors.engine._rotation_gate import ctl_rotation_recorded, schedule_postponed
from xorj_actors.secrets import CredentialProvider
from xorj_actors.redaction import Redactor
from xorj_actors.config import Config
from xorj_actors.correlation import ExposureBoard, correlation_report, exposure_usd
from xorj_actors.breakers import BREAKERS, BreakerBoard
from xorj_actors.data_dir import DataDirError, DataDirInUse, lock_data_dir, secure_data_dir
from xorj_actors.cluster import ClusterError
from xorj_actors.engine._cluster import open_cluster_node, start_ownership
from xorj_actors.engine._cluster_vaults import ClusterVaults
from xorj_actors.engine._leased import LeasedVaults
from xorj_actors.engine._tree import TreeContext, root_children, vault_authorities, vault_spec
from xorj_actors.metrics import TRADE_STATUSES, Metrics
from xorj_actors.ops import TradeWindow
from xorj_actors.quotas import Quotas
from xorj_actors.risk import read_chain_time
from xorj_actors.strategy import StrategyBoard
from xorj_actors.kill_switch import (
    KILL_SWITCH_ALIVE,
    KILL_SWITCH_NAME,
    GetStatus,
    HaltBoard,
    HaltHistory,
    Participant,
)
from xorj_actors.signers import vault_id

if TYPE_CHECKING:
    from xorj_actors.cluster import Fence, Ownership

__all__ = ["EXIT_ESCALATED", "EXIT_OK", "Engine", "EngineError", "secret_envs"]

EXIT_OK = 0
#: The root supervisor passed its restart intensity: let systemd / Kubernetes restart us.
EXIT_ESCALATED = 3


class EngineError(RuntimeError):
    """The engine cannot start (data directory taken, tree did not come up...)."""


def secret_envs(config: Config) -> tuple[str, ...]:
    """The environment variables whose values the redactor masks, besides the ones whose names
    look secret: every secret the config names, and the recovery keys."""
    return tuple(dict.fromkeys((*secret_env_names(config), *config.kill_switch.recovery_key_envs)))


def _kill_switch_entry(kind: str, details: dict[str, Any]) -> Any:
    severity = {"HALT": "CRITICAL", "SECURITY_VIOLATION": "WARNING", "ERROR_EVENT": "ERROR"}.get(kind, "INFO")
    # Its liveness entries under an actor of their own: the kill switch's start-up read stays small.
    actor = KILL_SWITCH_ALIVE_ACTOR if details.get("what") == KILL_SWITCH_ALIVE else KILL_SWITCH_ACTOR
    return audit_event(kind, actor, details, severity=severity)


class Engine:
    """One engine process's worth of actors.

    Args:
        config: the loaded configuration.
        data_dir: every file the engine writes lives below it.
        environ: environment (secrets, KILL_SWITCH_ACTIVE); default ``os.environ``.
        handle_signals: run the signal watcher (the ``run`` command); off for in-process use.
        redactor: the process's one redactor (``configure_logging`` returns it), applied to
            every free-text field the engine writes; default: one for ``environ`` and ``config``.
        credentials: the provider ``environ``'s secrets came from (``run``); default: one
            reading ``environ`` alone.
    """

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        environ: Mapping[str, str] | None = None,
        handle_signals: bool = False,
        redactor: Redactor | None = None,
        credentials: CredentialProvider | None = None,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir).resolve()
        self.environ = dict(os.environ if environ is None else environ)
        self.redactor = Redactor.from_environ(self.environ, secret_envs(config)) if redactor is None else redactor
        if credentials is None:  # in-process use: the environment given is the only source
            credentials = open_credentials(config, self.environ)[0]
        #: ``ctl reload-secrets`` and SIGHUP (docs/OPERATIONS.md, "Rotating credentials").
        self.reload_secrets = SecretsReload(
            credentials, config, self.environ, self.redactor, self._audit_reload, rotate_audit_key=self._rotate_audit_key,
            writer_fingerprint=lambda: audit_key_in_use(self.runtime, self.config.audit.append_timeout_s),
        )
        #: ``[secrets.rotation]``: the engine's own keys rotated on schedule (docs/SECURITY.md, "Key rotation").
        self.board = HaltBoard()
        self.key_rotation = KeyRotator(
            credentials, config, self.reload_secrets, self.redactor, self._audit_rotation, self._rotates_keys,
            postpone=lambda: schedule_postponed(self.board, self.runtime),
            before_ctl=ctl_rotation_recorded(lambda: self.runtime, config.audit.append_timeout_s),
        )
        self.handle_signals = handle_signals
        self.shutdown_requested = threading.Event()
        self.shutdown_reason: str | None = None
        self.runtime: Runtime | None = None
        self.root: Any = None
        # Outlives every breaker actor: a restarted breaker resumes from its slot.
        self.breaker_board = BreakerBoard(BREAKERS)
        #: The latest accepted ranked traders, read by every vault (written by the StrategyFeed).
        self.strategy_board = StrategyBoard(config.strategy.stale_after_s)
        #: Token clusters (the price watch's estimate) and every vault's stake in them (docs/RISK.md).
        self.exposure = ExposureBoard(config.correlation)
        self.metrics = Metrics()
        #: The last minute's trades, read by ``trades`` (``xorj-actors top``) without a message.
        self.trades = TradeWindow()
        #: Every external endpoint's budget (docs/QUOTAS.md): outlives the actors that take turns.
        self.quotas = Quotas(config.quotas, registry=self.metrics.registry)
        self.metrics.watch_exposure(lambda: exposure_usd(self.exposure))
        self._lock_fd: int | None = None
        self._endpoints: dict[str, str] = {}
        self.localnet: Any = None
        #: The node runtime with ``[cluster]`` (docs/CLUSTER.md); None: this process runs alone.
        self.cluster: Any = None
        #: ``[cluster]``: the leases this node holds, which the executor signs under; the lease
        #: loop fills it (docs/CLUSTER.md). None: this engine runs alone.
        self.fence: Fence | None = None
        if config.cluster is not None:
            from xorj_actors.cluster import Fence, LeaseClock

            self.fence = Fence(LeaseClock.from_settings(config.cluster))
        else:  # every vault of the engine counts before any of them trades (each also registers as it starts)
            self.exposure.expect(self.vault_ids())
        #: The lease loop with ``[cluster]``, once the tree is up (None before, and alone).
        self.ownership: Ownership | None = None
        self._stop_ownership: Callable[[float], None] = lambda timeout: None
        self._ctx: TreeContext | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / self.config.debug_socket.path

    def endpoints(self) -> Mapping[str, str]:
        return dict(self._endpoints)

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        try:
            for change in secure_data_dir(self.data_dir):
                logger.warning("data directory: mode of {} (only the engine's user may read it)", change)
        except DataDirError as exc:
            raise EngineError(str(exc)) from None
        self._lock_data_dir()
        try:
            self._start_tree(timeout)
        except BaseException:
            self.stop()
            raise

    def _lock_data_dir(self) -> None:
        try:
            self._lock_fd = lock_data_dir(self.data_dir)
        except DataDirInUse as exc:
            raise EngineError(str(exc)) from None

    def _start_localnet(self) -> None:
        """The offline cluster, quote service and quant engine, in-process (development only)."""
        from xorj_actors.localnet import Localnet

        self.localnet = Localnet(self.config.localnet, tokens=self.config.token_registry()).start()
        for name, url in self.localnet.urls.items():
            if url:
                self._endpoints[f"localnet_{name}"] = url
        logger.info("localnet in-process: {}", self.localnet.urls)

    def _start_tree(self, timeout: float) -> None:
        cfg = self.config
        try:  # before any actor: a node started during a cluster halt starts halted
            self.cluster = open_cluster_node(cfg, self.board, lambda: self.runtime, self._owned_vaults, self.vault_ids())
        except (ClusterError, ValueError) as exc:
            raise EngineError(f"cluster: {exc}") from None
        cluster = self.cluster
        if cluster is not None:
            self.metrics.watch_cluster(cluster.member_counts)
        if cfg.localnet.enabled:
            self._start_localnet()
        self.runtime = Runtime(
            workers=cfg.engine.scheduler_workers, mailbox_capacity=cfg.engine.mailbox_capacity, name="xorj"
        )
        self._endpoints["debug_socket"] = f"unix://{self.socket_path}"
        ctx = TreeContext(
            config=cfg,
            data_dir=self.data_dir,
            board=self.board,
            breaker_board=self.breaker_board,
            strategy_board=self.strategy_board,
            exposure=self.exposure,
            metrics=self.metrics,
            redactor=self.redactor,
            views={
                "progress": self.progress, "trades": self.trades.snapshot, "quotas": self.quotas.snapshot,
                "reload_secrets": self.reload_secrets, "correlation": lambda: correlation_report(self.exposure),
                "http_key_grace": functools.partial(self.key_rotation.rotated, cfg.http.hmac_key_env),
                "keys": self.key_rotation.ages, "rotate_key": functools.partial(self.key_rotation.rotate, trigger="ctl"),
                "vault_gone": self.exposure.forget,
                **self._cluster_views(),
            },
            trades=self.trades,
            quotas=self.quotas,
            environ=self.environ,
            endpoints=self.endpoints,
            register_endpoint=self._endpoints.__setitem__,
            on_event=self._record_kill_switch_event,
            on_event_durable=self._record_kill_switch_event_durable,
            halt_history=self._kill_switch_history,
            state_keys=self._kill_switch_state_keys,
            chain_time=self._chain_time,
            on_shutdown=self.request_shutdown if self.handle_signals else None,
            start_trigger=cluster.start_trigger if cluster else None,
            cluster_halt=cluster,
            fence=self.fence,
        )
        self._ctx = ctx
        self.root = Supervisor.start(
            root_children(ctx),
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=cfg.supervision.max_restarts,
            period=cfg.supervision.period_s,
            name="root",
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.root.actor_inbox.closed:
                raise EngineError(f"the supervision tree failed to start: {self.root.actor_inbox.exit_reason}")
            if time.monotonic() > deadline:
                raise EngineError(f"the supervision tree did not come up within {timeout} s")
            time.sleep(0.01)
        if cluster is not None:
            cluster.start()
            assert self.fence is not None
            self.ownership, self._stop_ownership = start_ownership(cluster, self.fence, self.leased_vaults())
        self.key_rotation.start()
        logger.info(
            "engine up: {} actors, kill switch {}, data dir {}",
            len(self.runtime),
            self.board.status.state,
            self.data_dir,
        )

    def _ready(self) -> bool:
        """Every actor started, and known to the kill switch: a halt now reaches all of them."""
        assert self.runtime is not None
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        if ks is None or not self.socket_path.exists():
            return False
        if self.config.http.enabled and "http" not in self._endpoints:  # the HTTP API is listening
            return False
        actors = self.runtime.actors()
        if any(a.state is ActorState.STARTING for a in actors):
            return False
        participants = sum(issubclass(a.actor_class, Participant) and a.ref is not None for a in actors)
        return ks.ask(GetStatus(), timeout=5).registered >= participants

    def _record_kill_switch_event(self, kind: str, details: dict[str, Any]) -> None:
        if self.cluster is not None:  # first: a local trigger opens a cluster halt (never blocks)
            self.cluster.on_kill_switch_event(kind, details)
        runtime = self.runtime
        if runtime is not None:
            record(runtime, _kill_switch_entry(kind, details))

    def _record_kill_switch_event_durable(self, kind: str, details: dict[str, Any]) -> None:
        """Returns once the entry is committed; raises if it cannot be (the kill switch then
        does not resume)."""
        if self.runtime is None:
            raise RuntimeError("the engine is not running")
        append_durable(self.runtime, _kill_switch_entry(kind, details), self.config.audit.append_timeout_s)

    def _audit_reload(self, answer: dict[str, Any]) -> None:
        """One SYSTEM_EVENT per secrets reload: names and sources, never a value."""
        audit_secrets_answer(self.runtime, answer, ok=answer["reloaded"])

    def _audit_rotation(self, answer: dict[str, Any]) -> None:
        """One SYSTEM_EVENT per key rotation, done, refused or failed: fingerprints, never a value."""
        audit_secrets_answer(self.runtime, answer, ok=answer["rotated"])

    def _rotates_keys(self) -> bool:
        return rotates_shared_keys(self.cluster)

    def _kill_switch_history(self) -> HaltHistory:
        """The audit log's kill-switch history, after every entry told before is committed."""
        cfg = self.config
        return halt_history(
            cfg.audit,
            self.data_dir,
            cfg.engine.environment,
            flush=lambda: self._record_kill_switch_event_durable("SYSTEM_EVENT", {"what": KILL_SWITCH_STARTING}),
        )

    def _chain_time(self) -> float:
        """The chain's time now (getBlockTime of a recent slot at ``[risk] clock_commitment``, the
        clock-skew monitor's read): the downtime policy flattens only if it confirms the downtime."""
        cfg = self.config
        url = cfg.execution.rpc_url or self._endpoints.get("localnet_rpc", "")
        r = cfg.risk
        return read_chain_time(url, commitment=r.clock_commitment, timeout_s=r.clock_rpc_timeout_s, quotas=self.quotas).block_time

    def _kill_switch_state_keys(self) -> dict[str, Any]:
        return state_keys_now(self.config.audit, self.config.engine.environment, self.data_dir, self.environ)

    def _rotate_audit_key(self, keys: KeyRing, reason: str) -> AuditEntry | None:
        return rotate_audit_key(self.runtime, self.config.audit, self.data_dir, keys, reason)

    # -- cluster -------------------------------------------------------------------------------

    def vault_ids(self) -> tuple[str, ...]:
        """Every vault ``[vaults] count`` configures (in a cluster: the vault set if it has none yet)."""
        return tuple(vault_id(i) for i in range(self.config.vaults.count))

    def _cluster_views(self) -> dict[str, Any]:
        """The debug socket's cluster views and, in a cluster, ``vault-add`` / ``vault-remove``
        on the cluster's vault set (docs/CLUSTER.md, "The vault set")."""
        cluster = self.cluster
        if cluster is None:
            return {}
        vaults = ClusterVaults(cluster, lambda: self.runtime, self.config, self.data_dir, self._key_known)
        return {**cluster.debug_views(), "cluster_vault_add": vaults.add, "cluster_vault_remove": vaults.remove}

    def _key_known(self, vault: str) -> bool:
        """Whether this node's key store shows a key for ``vault`` (vault authorities board)."""
        return self._ctx is not None and vault_authorities(self._ctx).get(vault) is not None

    def _owned_vaults(self) -> int:
        """How many vault leases this node holds (its member record)."""
        ownership = self.ownership
        return len(ownership.owned()) if ownership is not None else 0

    def leased_vaults(self) -> LeasedVaults:
        """The lease loop's ``activate``/``passivate`` hooks (cluster mode; after :meth:`start`)."""
        if self.fence is None or self.runtime is None or self._ctx is None:
            raise RuntimeError("leased vaults need [cluster] and a started engine")
        return LeasedVaults(
            self.runtime,
            functools.partial(vault_spec, self._ctx),
            self.config.supervision.shutdown_timeout_s * 2,
            # The executor's read of the store is bounded at 60 s (as at its start).
            adopt_timeout_s=65.0 if self.config.execution.enabled else None,
            on_gone=self.exposure.forget,
        )

    # -- run -----------------------------------------------------------------------------------

    def request_shutdown(self, reason: str) -> None:
        self.shutdown_reason = reason
        self.shutdown_requested.set()

    def progress(self) -> dict[str, Any]:
        """What an operator watches: rounds, trades, breakers, the kill switch (no actor asked)."""
        registry = self.metrics.registry

        def count(name: str, label: str, values: tuple[str, ...]) -> dict[str, int]:
            return {v: int(registry.get_sample_value(name, {label: v}) or 0) for v in values}

        snapshot = self.breaker_board.snapshot
        return {
            "kill_switch": self.board.status.state,
            "position_factor": self.board.status.factor,
            "strategy_round": getattr(self.strategy_board.latest, "round", None),
            "strategy_fresh": self.strategy_board.fresh(),
            "rounds": count("xorj_vault_rounds_total", "result", ("done", "skipped")),
            "trades": count("xorj_trades_total", "status", TRADE_STATUSES),
            # Plain values: the progress line prints this dict, and an enum's repr is not its value.
            "breakers_not_closed": {
                s.breaker.value: s.state.value for s in snapshot.statuses.values() if s.state != "CLOSED"
            },
        }

    def wait(self, *, progress_every_s: float = 0.0) -> int:
        """Block until a shutdown is requested (exit 0) or the root gives up (non-zero).

        With ``progress_every_s``, log :meth:`progress` that often (the `make run` display).
        """
        assert self.root is not None
        root_box = self.root.actor_inbox
        next_progress = time.monotonic() + progress_every_s
        while not self.shutdown_requested.wait(0.2):
            if progress_every_s and time.monotonic() >= next_progress:
                next_progress += progress_every_s
                p = self.progress()
                logger.info(
                    "progress: kill switch {} x{:.2f} | strategy round {} {} | rounds {} | trades {} | breakers {}",
                    p["kill_switch"], p["position_factor"], p["strategy_round"],
                    "fresh" if p["strategy_fresh"] else "STALE", p["rounds"], p["trades"],
                    p["breakers_not_closed"] or "all closed",
                )
            if root_box.closed:
                logger.critical("root supervisor ended: {}", root_box.exit_reason)
                return EXIT_ESCALATED
        logger.info("shutdown requested ({})", self.shutdown_reason)
        return EXIT_OK

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stop the tree in order, then the runtime. Returns the actors that had to be abandoned."""
        timeout = timeout if timeout is not None else self.config.supervision.shutdown_timeout_s * 4
        hung: list[str] = []
        self.key_rotation.stop()
        if self.ownership is not None:  # first: every vault passivated, its lease released
            try:
                self._stop_ownership(timeout)
            except Exception as exc:  # noqa: BLE001 - the leases then expire after their TTL
                logger.error("cluster: leases not released: {!r}", exc)
            self.ownership = None
        if self.cluster is not None:  # no more beats or cluster halts into a stopping tree
            self.cluster.stop()
            self.cluster = None
        if self.root is not None and not self.root.actor_inbox.closed:
            try:
                self.root.stop(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - still stop the runtime below
                logger.error("ordered shutdown incomplete: {!r}", exc)
        if self.runtime is not None:
            hung = self.runtime.shutdown(timeout=timeout)
            self.runtime = None
        if self.localnet is not None:
            self.localnet.stop()
            self.localnet = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        return hung
