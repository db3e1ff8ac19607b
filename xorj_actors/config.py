"""The engine's configuration: one TOML file, one frozen dataclass per section.

Every section lives next to the code it configures; this module only composes them and loads
the file strictly (see :mod:`xorj_actors._settings`). Secrets never live here: settings name the
environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.audit.settings import AuditSettings
from xorj_actors.breakers.settings import BreakerSettings
from xorj_actors.chain.gateway_settings import GatewaySettings
from xorj_actors.correlation.settings import CorrelationSettings
from xorj_actors.chain.settings import ConfirmationSettings
from xorj_actors.cluster.settings import ClusterSettings
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.jito.settings import JitoSettings
from xorj_actors.jupiter.settings import JupiterSettings
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.ops.settings import DebugSocketSettings, HttpSettings, SlackSettings
from xorj_actors.proofs.settings import PROOF_STORE, ProofSettings
from xorj_actors.quotas.settings import QuotaSettings
from xorj_actors.risk.settings import RiskSettings
from xorj_actors.secrets.settings import SecretsSettings
from xorj_actors.signers.settings import SignerSettings
from xorj_actors.statements.settings import ReconciliationSettings
from xorj_actors.strategy.settings import StrategySettings
from xorj_actors.tokens import DEFAULT_TOKENS, TokenRegistry, TokenSettings
from xorj_actors.vaults.settings import VaultSettings

__all__ = [
    "Config",
    "ConfigError",
    "EngineSettings",
    "SupervisionSettings",
    "development_settings",
    "load_config",
    "parse_config",
    "production_problems",
]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """``[engine]``: the process as a whole."""

    environment: Literal["development", "production"] = "development"
    #: Worker threads of the shared actor scheduler (M of the M:N runtime). One is fastest under
    #: the GIL (bench/bench_halt.py); the runtime lends the pool more while all are stuck.
    scheduler_workers: int = 1
    #: Bound of every ordinary mailbox; a full mailbox refuses the sender (MailboxFull).
    mailbox_capacity: int = 10_000

    def validate(self) -> None:
        if not 1 <= self.scheduler_workers <= 64:
            raise ValueError("scheduler_workers: must be between 1 and 64")
        if self.mailbox_capacity < 1:
            raise ValueError("mailbox_capacity: must be at least 1")


@dataclass(frozen=True, slots=True)
class SupervisionSettings:
    """``[supervision]``: the root supervisor's restart intensity."""

    max_restarts: int = 10
    period_s: float = 30.0
    shutdown_timeout_s: float = 5.0

    def validate(self) -> None:
        if self.max_restarts < 0:
            raise ValueError("max_restarts: must be >= 0")
        if self.period_s <= 0:
            raise ValueError("period_s: must be > 0")
        if self.shutdown_timeout_s <= 0:
            raise ValueError("shutdown_timeout_s: must be > 0")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    kill_switch: KillSwitchSettings = field(default_factory=KillSwitchSettings)
    debug_socket: DebugSocketSettings = field(default_factory=DebugSocketSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    localnet: LocalnetSettings = field(default_factory=LocalnetSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    signers: SignerSettings = field(default_factory=SignerSettings)
    #: The execution proofs' signing key (docs/AUDIT.md, "Execution proofs").
    proofs: ProofSettings = field(default_factory=ProofSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    #: Jupiter's APIs: the executor's quotes, routes and reference prices.
    jupiter: JupiterSettings = field(default_factory=JupiterSettings)
    #: Jito's block engine: tips, bundles, sandwich protection (off by default).
    jito: JitoSettings = field(default_factory=JitoSettings)
    confirmation: ConfirmationSettings = field(default_factory=ConfirmationSettings)
    breakers: BreakerSettings = field(default_factory=BreakerSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    vaults: VaultSettings = field(default_factory=VaultSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    #: Correlated-exposure limits (docs/RISK.md, "Correlated exposure").
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)
    #: Every external endpoint's budget (docs/QUOTAS.md).
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    #: The scheduled statement reconciliation (docs/AUDIT.md, "Statement reconciliation").
    reconciliation: ReconciliationSettings = field(default_factory=ReconciliationSettings)
    #: Several engine processes sharing the vaults through NATS (docs/CLUSTER.md); None (no
    #: ``[cluster]`` section): this process runs alone.
    cluster: ClusterSettings | None = None
    #: The panic button in Slack, ``POST /slack/panic`` (docs/OPERATIONS.md); None: off.
    slack: SlackSettings | None = None
    #: Where credentials come from (docs/SECURITY.md, "Credential sources"); default: the environment.
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    tokens: tuple[TokenSettings, ...] = DEFAULT_TOKENS

    def token_registry(self) -> TokenRegistry:
        """The ``[[tokens]]`` registry; mints left empty derive from ``[localnet] seed``."""
        return TokenRegistry.from_settings(self.tokens, self.localnet.seed)

    def jupiter_url(self) -> str:
        """Jupiter's base URL: ``[jupiter] base_url``, else ``[execution] quote_url`` (a localnet's
        quote service); empty: the in-process localnet's."""
        return self.jupiter.base_url or self.execution.quote_url

    def jupiter_api(self, environ: Mapping[str, str]) -> JupiterSettings:
        """``[jupiter]`` as the engine uses it. With no ``base_url`` (a localnet's quote service) the
        key is the localnet's (``[localnet.quote] api_key_env``), sent only when that variable is set."""
        jup = self.jupiter
        if jup.base_url:
            return jup
        local_key = self.localnet.quote.api_key_env
        return dataclasses.replace(jup, api_key_env=local_key if environ.get(local_key) else "")

    def validate(self) -> None:
        registry = self.token_registry()  # raises "tokens...: problem"
        try:
            self.localnet.check_tokens(registry.tokens)
        except ValueError as exc:
            raise ValueError(f"localnet.{exc}") from None
        ex = self.execution
        if self.jupiter.api != "swap" and ex.routes.effect_commitment != "confirmed":
            # Ultra's last valid height and its settling by state are read at confirmed: a
            # processed simulation may have seen a minority fork, a finalized one rejects a fresh
            # order's blockhash.
            raise ValueError(
                f"execution.routes.effect_commitment: must be confirmed when [jupiter] api is {self.jupiter.api}"
            )
        if ex.enabled and not self.localnet.enabled:
            missing = [f"execution.{n}" for n in ("rpc_url", "ws_url") if not getattr(ex, n)]
            if not self.jupiter_url():
                missing.append("jupiter.base_url")
            if missing:
                raise ValueError(
                    f"{missing[0]}: required when [localnet] is not enabled"
                    " (or set [execution] enabled = false)"
                )
        if ex.enabled and ex.signer:
            try:
                self.signers.key(ex.signer)
            except KeyError as exc:
                raise ValueError(f"execution.signer: {exc.args[0]}") from None
        if self.cluster is not None and self.cluster.node_id:
            try:
                self.audit.for_node(self.cluster.node_id)  # the node's audit chain is named after it
            except ValueError as exc:
                raise ValueError(f"audit.{exc}") from None
        if not self.strategy.url and not self.localnet.enabled:
            raise ValueError("strategy.url: required when [localnet] is not enabled")
        names = {p.name for p in self.strategy.profiles}
        unknown = [p for p in self.vaults.profiles if p not in names]
        if unknown:
            raise ValueError(f"vaults.profiles: unknown profile {unknown[0]!r} (known: {', '.join(sorted(names))})")
        if any(k.name == PROOF_STORE for k in self.signers.keys):
            raise ValueError(f"signers.keys: {PROOF_STORE!r} names the proof key's store ([proofs.key]); rename it")
        for vault in self.signers.keys:
            shared = self.proofs.shared_with(vault)
            if shared:
                raise ValueError(f"proofs.key: the same key store as [[signers.keys]] {vault.name!r} ({shared}); the proof "
                                 "key needs a store of its own (docs/SECURITY.md, \"The proof key\")")
        # A fresh sample at most every price_poll_s, and no more often than the price cache renews.
        corr, poll = self.correlation, max(self.gateway.price_poll_s, self.gateway.price_max_age_s)
        if corr.enabled and self.gateway.price_poll_s > 0 and corr.window_s / poll < corr.min_samples + 1:
            # Never enough returns in the window: every pair would stay unknown, the limit idle.
            raise ValueError(f"correlation.window_s: {corr.window_s:g} s holds fewer than min_samples + 1 = "
                             f"{corr.min_samples + 1} price samples, one every {poll:g} s ([gateway] price_poll_s, "
                             "price_max_age_s)")
        if ex.enabled and not self.signers.keys:
            raise ValueError("signers.keys: execution needs a signing key (or set [execution] enabled = false)")
        if self.engine.environment == "production":
            problems = production_problems(self)
            if problems:
                raise ValueError("; ".join(problems))


#: Fewest recovery keys that may end a halt in production (docs/SECURITY.md: one key holder
#: alone can do nothing).
MIN_PRODUCTION_RECOVERY_THRESHOLD = 2


def development_settings(cfg: Config) -> list[str]:
    """The development-only settings ``cfg`` uses (``check``'s ``dev_settings``: refused in production)."""
    dev = []
    if cfg.localnet.enabled:
        dev.append("localnet.enabled = true (in-process localnet)")
    if cfg.audit.backend == "sqlite":
        dev.append('audit.backend = "sqlite"')
    dev += [f'signers key {k.name}: backend = "dev_key" (derived keys)' for k in cfg.signers.keys if k.backend == "dev_key"]
    dev += ['proofs.key: backend = "dev_key" (a derived proof key)'] if cfg.proofs.key.backend == "dev_key" else []
    derived = [t.symbol for t in cfg.tokens if not t.mint]
    if derived:
        dev.append(f"tokens {', '.join(derived)}: no mint (the development mints derived from [localnet] seed)")
    return dev


def production_problems(config: Config) -> list[str]:
    """What a production config may not hold, each as ``"key: problem"`` (empty: none).

    Refused at load. Development-only settings that do not weaken a guarantee by themselves
    (SQLite, the localnet) are left to ``xorj-actors check``.
    """
    problems = []
    threshold = config.kill_switch.recovery_threshold
    if threshold < MIN_PRODUCTION_RECOVERY_THRESHOLD:
        problems.append(
            f"kill_switch.recovery_threshold: {threshold} is refused in production, it must be at least "
            f"{MIN_PRODUCTION_RECOVERY_THRESHOLD} (K of M recovery keys: one key holder alone must not end a halt)"
        )
    derived = [(i, t.symbol) for i, t in enumerate(config.tokens) if not t.mint]
    if config.execution.enabled and derived:
        keys = ", ".join(f"tokens[{i}].mint" for i, _ in derived)
        symbols = ", ".join(symbol for _, symbol in derived)
        problems.append(
            f"{keys}: required in production with [execution] enabled; without it {symbols} would trade the "
            "development mints derived from [localnet] seed, whose keypairs anyone can derive"
        )
    return problems


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse TOML text into a :class:`Config`, strictly."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return build_section(Config, table)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path | None) -> Config:
    """Load a config file; ``None`` gives the embedded defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    return parse_config(text, str(p))
