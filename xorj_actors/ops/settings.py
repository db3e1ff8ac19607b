"""Settings of the operators' surface: ``[debug_socket]``, ``[http]`` and ``[slack]``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from xorj_actors.limits import MIN_KEY_BYTES

__all__ = ["DebugSocketSettings", "HttpSettings", "SlackSettings"]


@dataclass(frozen=True, slots=True)
class DebugSocketSettings:
    """``[debug_socket]``: the operators' Unix domain socket."""

    #: Socket path, relative to the data directory.
    path: str = "debug.sock"
    max_line_bytes: int = 65_536
    #: A client that sent a request and got its reply must send its next one within this, or is
    #: disconnected. Whatever it is, a client idle between requests is evicted when a newcomer
    #: finds every slot taken (see docs/DEBUG_SOCKET.md, "Connections").
    idle_timeout_s: float = 30.0
    #: A new client must send its first request within this.
    first_request_timeout_s: float = 5.0
    #: Clients served at once; one more slot is kept for a single request when all of them run a
    #: command (each client runs one command at a time, on a thread of its own).
    max_clients: int = 16

    def validate(self) -> None:
        if not 256 <= self.max_line_bytes <= 16 * 1024 * 1024:
            raise ValueError("max_line_bytes: must be between 256 and 16777216")
        if not 0 < self.idle_timeout_s <= 3600:
            raise ValueError("idle_timeout_s: must be in (0, 3600]")
        if not 0 < self.first_request_timeout_s <= 300:
            raise ValueError("first_request_timeout_s: must be in (0, 300]")
        if self.max_clients < 1:
            raise ValueError("max_clients: must be >= 1")
        if self.max_clients > 256:
            raise ValueError("max_clients: must be <= 256 (a thread each)")


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
    #: After an engine's own rotation (``[secrets.rotation]``, ``ctl rotate-key``; another node's,
    #: proven by its mark), requests signed with the previous key are still accepted this long:
    #: clients read the new key from the same store when they will. Any other change (an
    #: operator's, perhaps after a leak) ends the previous key at once. 0: never any grace.
    previous_key_grace_s: float = 300.0
    #: Nonces remembered for replay protection; when full of live nonces, requests get 429.
    nonce_cache_size: int = 10_000
    #: Time a readiness probe of an external component (RPC, WebSocket...) may take.
    probe_timeout_s: float = 2.0
    #: A connection must send a whole request head (line and headers) within this long of
    #: opening, or of its previous answer; else it is closed. Trickled bytes do not extend it.
    header_timeout_s: float = 10.0
    #: A kill-switch request must deliver its whole body within this long of its head: else 408.
    body_timeout_s: float = 10.0
    #: Open connections in all. When full, a new one evicts the connection idle the longest (no
    #: request in progress: slow headers, idle keep-alive); only if none is, it is refused (503).
    max_connections: int = 256
    #: Open connections from one client address, with the same eviction when full.
    max_connections_per_ip: int = 32
    #: Unauthenticated refusals (and refused, evicted or timed-out connections) are counted per
    #: source and written as one audit entry per source and window of this length.
    refusal_window_s: float = 60.0

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
        if not 0 <= self.previous_key_grace_s <= 3600:
            raise ValueError("previous_key_grace_s: must be between 0 and 3600 seconds")
        if not 16 <= self.nonce_cache_size <= 1_000_000:
            raise ValueError("nonce_cache_size: must be between 16 and 1000000")
        if not 0 < self.probe_timeout_s <= 30:
            raise ValueError("probe_timeout_s: must be in (0, 30]")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not 0 < getattr(self, name) <= 300:
                raise ValueError(f"{name}: must be in (0, 300]")
        if not 1 <= self.max_connections <= 100_000:
            raise ValueError("max_connections: must be between 1 and 100000")
        if not 1 <= self.max_connections_per_ip <= self.max_connections:
            raise ValueError("max_connections_per_ip: must be between 1 and max_connections")
        if not 0 < self.refusal_window_s <= 3600:
            raise ValueError("refusal_window_s: must be in (0, 3600]")


#: Slack's ids: channels (C public, G private, D direct message), users (U, or W in Enterprise Grid).
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_TEAM_ID = re.compile(r"^T[A-Z0-9]{2,20}$")
_COMMAND = re.compile(r"^/[a-z0-9_-]{1,31}$")
#: Slack refuses requests older than five minutes itself, and asks apps to do the same.
SLACK_MAX_AGE_S = 300.0
#: Slack waits 3 s for a slash command's answer; the halt's progress is awaited less than that.
SLACK_ANSWER_S = 2.5


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """``[slack]``: the panic button in chat, ``POST /slack/panic`` (off without this section).

    Requests are verified with the Slack app's signing secret (docs/SECURITY.md, "The panic
    button in Slack"); only the listed users, in the listed channels, may press it.
    """

    #: Slack user ids (``U0123ABCD``) allowed to press the button. Required.
    users: tuple[str, ...] = ()
    #: Slack channel ids (``C0123ABCD``) it may be pressed in. Required.
    channels: tuple[str, ...] = ()
    #: The workspace (``T0123ABCD``) requests must come from; empty: the signing secret's app only.
    team_id: str = ""
    #: Environment variable holding the Slack app's signing secret (Basic Information page).
    signing_secret_env: str = "XORJ_SLACK_SIGNING_SECRET"
    #: The slash command as created in the Slack app.
    command: str = "/panic"
    #: Requests whose ``X-Slack-Request-Timestamp`` is further from now are refused as stale.
    max_age_s: float = SLACK_MAX_AGE_S
    #: Signatures remembered for replay protection; when full of live ones, requests get 429.
    replay_cache_size: int = 10_000
    #: ``/panic flatten`` waits this long for a second allowed user to repeat it.
    confirm_window_s: float = 60.0
    #: How long a request may wait on the kill switch: ``/panic <reason>`` for every actor to ack
    #: before it answers with the progress; status and a flatten's state check for its answer
    #: (past it, the halt board answers).
    progress_wait_s: float = 2.0

    def validate(self) -> None:
        if not self.users:
            raise ValueError("users: at least one Slack user id is required (U0123ABCD)")
        if not self.channels:
            raise ValueError("channels: at least one Slack channel id is required (C0123ABCD)")
        for key, ids, pattern, example in (
            ("users", self.users, _USER_ID, "U0123ABCD"), ("channels", self.channels, _CHANNEL_ID, "C0123ABCD")
        ):
            bad = [i for i in ids if not pattern.match(i)]
            if bad:
                raise ValueError(f"{key}: {bad[0][:40]!r} is not a Slack id like {example} (names are not ids)")
        if self.team_id and not _TEAM_ID.match(self.team_id):
            raise ValueError(f"team_id: {self.team_id[:40]!r} is not a Slack workspace id like T0123ABCD")
        if not _ENV_NAME.match(self.signing_secret_env):
            raise ValueError("signing_secret_env: must be an environment variable name")
        if not _COMMAND.match(self.command):
            raise ValueError("command: must be a slash command like /panic (lower case)")
        if not 1 <= self.max_age_s <= SLACK_MAX_AGE_S:
            raise ValueError(f"max_age_s: must be between 1 and {SLACK_MAX_AGE_S:g} seconds (Slack's limit)")
        if not 16 <= self.replay_cache_size <= 1_000_000:
            raise ValueError("replay_cache_size: must be between 16 and 1000000")
        if not 1 <= self.confirm_window_s <= 600:
            raise ValueError("confirm_window_s: must be between 1 and 600 seconds")
        if not 0 <= self.progress_wait_s <= SLACK_ANSWER_S:
            raise ValueError(f"progress_wait_s: must be between 0 and {SLACK_ANSWER_S:g} (Slack waits 3 s for an answer)")

    def secret(self, environ: Mapping[str, str]) -> bytes | None:
        """The signing secret from the environment; None if unset or shorter than 32 bytes."""
        value = environ.get(self.signing_secret_env, "").encode()
        return value if len(value) >= MIN_KEY_BYTES else None

    def readiness(self, environ: Mapping[str, str]) -> tuple[bool, str]:
        """Whether the button works, and what ``xorj-actors check`` says of it (never the secret)."""
        where = f"{self.command}: {len(self.users)} users, {len(self.channels)} channels"
        if self.secret(environ) is None:
            state = "shorter than 32 bytes" if environ.get(self.signing_secret_env) else "not set"
            return False, f"{where}; {self.signing_secret_env} {state}: POST /slack/panic refuses every request"
        return True, f"{where}; signing secret ${self.signing_secret_env} set"
