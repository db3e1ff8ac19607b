"""The engine's configuration: one TOML file, one frozen dataclass per section.

Every section lives next to the code it configures; this module only composes them and loads
the file strictly (see :mod:`xorj_actors._settings`). Secrets never live here: settings name the
environment variables that hold them.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.audit.settings import AuditSettings
from xorj_actors.breakers.settings import BreakerSettings
from xorj_actors.chain.gateway_settings import GatewaySettings
from xorj_actors.chain.settings import ConfirmationSettings
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.risk.settings import RiskSettings
from xorj_actors.signers.settings import SignerSettings
from xorj_actors.strategy.settings import StrategySettings
from xorj_actors.vaults.settings import VaultSettings

__all__ = [
    "Config",
    "ConfigError",
    "DebugSocketSettings",
    "EngineSettings",
    "HttpSettings",
    "KillSwitchSettings",
    "SupervisionSettings",
    "load_config",
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
class KillSwitchSettings:
    """``[kill_switch]``: halt triggers, acknowledgement deadline and recovery."""

    #: State file, relative to the data directory.
    state_file: str = "kill_switch.json"
    #: Kill file: its existence triggers a graceful halt. Relative to the data directory.
    kill_file: str = "KILL"
    kill_file_poll_s: float = 0.25
    #: Every live actor must acknowledge a halt within this deadline, or it is replaced.
    ack_deadline_s: float = 1.0
    #: Recovery needs HMAC authorisations from `recovery_threshold` of these key holders.
    recovery_threshold: int = 2
    #: Names of the environment variables holding the recovery keys (one per key holder).
    recovery_key_envs: tuple[str, ...] = (
        "XORJ_RECOVERY_KEY_1",
        "XORJ_RECOVERY_KEY_2",
        "XORJ_RECOVERY_KEY_3",
    )
    #: Seconds after the trigger before recovery is accepted.
    cooldown_s: float = 300.0
    #: Position-limit factors of the gradual restart, the last one must be 1.0.
    restart_factors: tuple[float, ...] = (0.5, 0.75, 1.0)
    restart_step_s: float = 60.0
    #: A flatten (REDUCING) ends after this long even if some vaults have not reported.
    flatten_timeout_s: float = 300.0

    def validate(self) -> None:
        if not 0.05 <= self.kill_file_poll_s <= 0.5:
            raise ValueError("kill_file_poll_s: must be between 0.05 and 0.5 seconds")
        if self.ack_deadline_s <= 0:
            raise ValueError("ack_deadline_s: must be > 0")
        if not 1 <= self.recovery_threshold <= len(self.recovery_key_envs):
            raise ValueError("recovery_threshold: must be between 1 and the number of recovery keys")
        if len(set(self.recovery_key_envs)) != len(self.recovery_key_envs):
            raise ValueError("recovery_key_envs: names must be distinct")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s: must be >= 0")
        factors = self.restart_factors
        if not factors or factors[-1] != 1.0 or any(not 0 < f <= 1 for f in factors):
            raise ValueError("restart_factors: must be in (0, 1] and end with 1.0")
        if list(factors) != sorted(factors):
            raise ValueError("restart_factors: must not decrease")
        if self.restart_step_s < 0:
            raise ValueError("restart_step_s: must be >= 0")
        if not 1 <= self.flatten_timeout_s <= 86_400:
            raise ValueError("flatten_timeout_s: must be between 1 and 86400 seconds")


@dataclass(frozen=True, slots=True)
class DebugSocketSettings:
    """``[debug_socket]``: the operators' Unix domain socket."""

    #: Socket path, relative to the data directory.
    path: str = "debug.sock"
    max_line_bytes: int = 65_536
    #: A client that sends nothing for this long is disconnected.
    idle_timeout_s: float = 30.0
    max_clients: int = 16

    def validate(self) -> None:
        if not 256 <= self.max_line_bytes <= 16 * 1024 * 1024:
            raise ValueError("max_line_bytes: must be between 256 and 16777216")
        if self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s: must be > 0")
        if self.max_clients < 1:
            raise ValueError("max_clients: must be >= 1")


# -- [http]: owned by the observability work (xorj_actors/ops/_http.py) --------------------------
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """``[http]``: health probes, Prometheus metrics and the authenticated kill-switch API."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0: a free port (the bound port is listed in the engine's endpoints).
    port: int = 0
    #: Any other address than loopback must be chosen on purpose.
    allow_non_loopback: bool = False
    #: Larger request bodies are refused with 413 before they are read.
    max_body_bytes: int = 65_536
    #: Environment variable holding the HMAC-SHA256 key of the kill-switch API (>= 32 bytes).
    hmac_key_env: str = "XORJ_HTTP_HMAC_KEY"
    #: Signed requests whose timestamp is further from now are refused as stale.
    max_clock_skew_s: float = 30.0
    #: Nonces remembered for replay protection; when full of live nonces, requests get 429.
    nonce_cache_size: int = 10_000
    #: Time a readiness probe of an external component (RPC, WebSocket...) may take.
    probe_timeout_s: float = 2.0

    def validate(self) -> None:
        if not self.host:
            raise ValueError("host: must not be empty")
        if not self.allow_non_loopback and not _is_loopback(self.host):
            raise ValueError(f"host: {self.host!r} is not loopback; set allow_non_loopback = true to expose it")
        if not 0 <= self.port <= 65535:
            raise ValueError("port: must be between 0 and 65535")
        if not 256 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise ValueError("max_body_bytes: must be between 256 and 16777216")
        if not _ENV_NAME.match(self.hmac_key_env):
            raise ValueError("hmac_key_env: must be an environment variable name")
        if not 1 <= self.max_clock_skew_s <= 3600:
            raise ValueError("max_clock_skew_s: must be between 1 and 3600 seconds")
        if not 16 <= self.nonce_cache_size <= 1_000_000:
            raise ValueError("nonce_cache_size: must be between 16 and 1000000")
        if not 0 < self.probe_timeout_s <= 30:
            raise ValueError("probe_timeout_s: must be in (0, 30]")


# -- end [http] ------------------------------------------------------------------------------


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
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    confirmation: ConfirmationSettings = field(default_factory=ConfirmationSettings)
    breakers: BreakerSettings = field(default_factory=BreakerSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    vaults: VaultSettings = field(default_factory=VaultSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)

    def validate(self) -> None:
        ex = self.execution
        if ex.enabled and not self.localnet.enabled:
            missing = [n for n in ("rpc_url", "ws_url", "quote_url") if not getattr(ex, n)]
            if missing:
                raise ValueError(
                    f"execution.{missing[0]}: required when [localnet] is not enabled"
                    " (or set [execution] enabled = false)"
                )
        if ex.enabled and ex.signer:
            try:
                self.signers.key(ex.signer)
            except KeyError as exc:
                raise ValueError(f"execution.signer: {exc.args[0]}") from None
        if not self.strategy.url and not self.localnet.enabled:
            raise ValueError("strategy.url: required when [localnet] is not enabled")
        names = {p.name for p in self.strategy.profiles}
        unknown = [p for p in self.vaults.profiles if p not in names]
        if unknown:
            raise ValueError(f"vaults.profiles: unknown profile {unknown[0]!r} (known: {', '.join(sorted(names))})")
        if ex.enabled and not self.signers.keys:
            raise ValueError("signers.keys: execution needs a signing key (or set [execution] enabled = false)")


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
