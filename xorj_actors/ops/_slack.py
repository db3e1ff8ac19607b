"""The Slack panic button's rules, transport free: signing, replay, allowlists, commands, two persons.

Slack signs each request to an app with the app's signing secret
(https://api.slack.com/authentication/verifying-requests-from-slack): ``X-Slack-Signature`` is
``v0=`` and the hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. A slash
command's body is ``application/x-www-form-urlencoded`` (``team_id``, ``channel_id``,
``user_id``, ``user_name``, ``command``, ``text``, ``response_url``, ``trigger_id``...).

:class:`SlackVerifier` checks the signature (in constant time), the timestamp (5 minutes at
most either way) and that the signature was never seen before; :class:`SlashCommand` is the
parsed body; :func:`sender_refusal` applies the allowlists; :func:`parse_text` turns ``text``
into a :class:`PanicRequest`; :class:`TwoPersonRule` holds ``/panic flatten`` until a second
allowed user repeats it. Nothing here acts: ``_slack_panic.py`` does, the HTTP API serves it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xorj_actors.ops._http_auth import ApiError, ReplayMemory
from xorj_actors.ops.settings import SlackSettings
from xorj_actors.vaults import VAULT_ID

__all__ = [
    "SLACK_SIGNATURE_HEADER",
    "SLACK_TIMESTAMP_HEADER",
    "USAGE",
    "PanicAction",
    "PanicRequest",
    "SlackVerifier",
    "SlashCommand",
    "TwoPersonRule",
    "Vote",
    "VoteOutcome",
    "claimed_sender",
    "is_ssl_check",
    "parse_text",
    "sender_refusal",
    "slack_headers",
    "slack_signature",
]

SLACK_SIGNATURE_HEADER = "X-Slack-Signature"
SLACK_TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
FORM = "application/x-www-form-urlencoded"
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-fA-F]{64}$")
#: Fields of a slash command a request must carry (Slack sends more; they are ignored).
_REQUIRED = ("team_id", "channel_id", "user_id", "command")
_KEPT = (*_REQUIRED, "channel_name", "user_name", "text", "response_url", "trigger_id")
#: A slash command's text is at most a message long; anything much longer is not from Slack.
MAX_TEXT_CHARS = 4_000
MAX_FIELDS = 64

USAGE = (
    "`/panic <reason>`: emergency halt of the engine, now.\n"
    "`/panic flatten <vault ids|all>`: while halted, sell the vaults' volatile holdings into the "
    "stablecoin; a second allowed user must repeat the same command to confirm.\n"
    "`/panic status`: the kill switch's state and the halt's progress.\n"
    "Recovery is not possible from Slack: it needs K of M recovery keys (`xorj-actors ctl recover`)."
)


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}``, as Slack computes it."""
    return "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def slack_headers(secret: bytes, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body`` (a client's, or a test's, signed request)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": FORM, SLACK_TIMESTAMP_HEADER: ts, SLACK_SIGNATURE_HEADER: slack_signature(secret, ts, body)}


class SlackVerifier:
    """Checks Slack's signature and timestamp; remembers the signatures it accepted.

    A signature is remembered until its timestamp is stale anyway (``max_age_s`` after it).
    When ``cache_size`` live signatures are remembered, requests are refused (429) rather than
    forgetting one that could still be replayed. Thread-safe.
    """

    def __init__(
        self, secret: bytes | None | Callable[[], bytes | None], secret_env: str, max_age_s: float, cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if callable(secret) else (lambda: secret)
        self._secret_env = secret_env
        self._max_age_s = max_age_s
        self._clock = clock
        self._seen = ReplayMemory(cache_size)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`ApiError` unless the request is Slack's, fresh and not replayed."""
        secret = self._secret()  # a callable: ``ctl reload-secrets`` rotates the secret
        if secret is None:
            raise ApiError(503, "slack_unconfigured", f"Slack panic button disabled: {self._secret_env} is not set")
        ts_text = headers.get(SLACK_TIMESTAMP_HEADER, "")
        signature = headers.get(SLACK_SIGNATURE_HEADER, "")
        if not ts_text or not signature:
            raise ApiError(401, "unauthenticated", f"{SLACK_TIMESTAMP_HEADER} and {SLACK_SIGNATURE_HEADER} are required")
        if not _UNIX_SECONDS.match(ts_text):
            raise ApiError(401, "bad_timestamp", f"{SLACK_TIMESTAMP_HEADER} must be Unix seconds")
        if not _SIGNATURE.match(signature):
            raise ApiError(401, "bad_signature", f"{SLACK_SIGNATURE_HEADER} must be v0= and 64 hex digits")
        now = self._clock()
        timestamp = int(ts_text)
        if abs(now - timestamp) > self._max_age_s:
            raise ApiError(401, "stale_timestamp", f"timestamp is more than {self._max_age_s:g} s from the server's clock")
        signature = signature.lower()
        if not hmac.compare_digest(slack_signature(secret, ts_text, body), signature):
            raise ApiError(401, "bad_signature", "signature does not match the request")
        # Forgotten only once its timestamp is stale: a replay from then on is refused as stale.
        self._seen.admit(
            signature, now, max(now, timestamp) + self._max_age_s,
            replayed="this signed request was already received: replayed",
            busy="too many Slack requests in the replay window; retry later",
        )


# -- the slash command ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """The fields of a slash command the panic button reads (Slack's names)."""

    team_id: str
    channel_id: str
    user_id: str
    command: str
    channel_name: str = ""
    user_name: str = ""
    text: str = ""
    response_url: str = ""
    trigger_id: str = ""

    @classmethod
    def from_body(cls, body: bytes) -> SlashCommand:
        """Parse a form-encoded body; a body that is not one (or lacks a field) is refused (400)."""
        try:
            text = body.decode("utf-8")
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                           max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, "bad_form", f"body is not a form-encoded slash command: {str(exc)[:100]}") from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name not in _KEPT:
                continue  # Slack adds fields over time (the schema allows more): unread, ignored
            if name in fields:  # which of two user ids pressed? refused, not guessed
                raise ApiError(400, "bad_form", f"field {name[:40]!r} given twice")
            fields[name] = value
        missing = [f for f in _REQUIRED if not fields.get(f)]
        if missing:
            raise ApiError(400, "bad_form", f"not a slash command: missing {', '.join(missing)}")
        if len(fields.get("text", "")) > MAX_TEXT_CHARS:
            raise ApiError(400, "bad_form", f"text longer than {MAX_TEXT_CHARS} characters")
        return cls(**{f: fields[f] for f in _KEPT if f in fields})

    def sender(self) -> dict[str, str]:
        """Who pressed, and where: what the audit trail records of every authenticated request."""
        return {
            "slack_user_id": self.user_id[:40], "slack_user_name": self.user_name[:100],
            "slack_team_id": self.team_id[:40], "slack_channel_id": self.channel_id[:40],
            "slack_channel_name": self.channel_name[:100], "command": self.command[:40],
        }


def is_ssl_check(body: bytes) -> bool:
    """Slack's check of the request URL's certificate (``ssl_check=1``, no command): answered 200,
    acting on nothing, as Slack's own SDK does (slash commands docs, "SSL")."""
    if len(body) > 1024 or b"ssl_check=1" not in body:
        return False
    fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    return fields.get("ssl_check") == "1" and "command" not in fields


def claimed_sender(body: bytes) -> str:
    """``user_id/user_name`` as an unauthenticated body claims it (never trusted; never raises)."""
    try:
        fields = dict(urllib.parse.parse_qsl(body[:8192].decode("utf-8", "replace"), max_num_fields=MAX_FIELDS))
    except ValueError:
        return ""
    user_id, name = (re.sub(r"[^A-Za-z0-9._-]", "?", fields.get(f, "")[:n]) for f, n in (("user_id", 20), ("user_name", 40)))
    return f"{user_id}/{name}" if user_id or name else ""


def sender_refusal(settings: SlackSettings, command: SlashCommand) -> str | None:
    """Why this authenticated command's sender may not press the button, or None."""
    if settings.team_id and command.team_id != settings.team_id:
        return f"workspace {command.team_id[:40]} is not the configured one"
    if command.command != settings.command:
        return f"{command.command[:40]} is not this engine's command ({settings.command})"
    if command.user_id not in settings.users:
        return f"user {command.user_id[:40]} is not on the allowlist ([slack] users)"
    if command.channel_id not in settings.channels:
        return f"channel {command.channel_id[:40]} is not on the allowlist ([slack] channels)"
    return None


# -- what the text asks ----------------------------------------------------------------------------


class PanicAction(enum.Enum):
    HALT = "halt"
    FLATTEN = "flatten"
    STATUS = "status"
    #: Not a command: the answer is the usage, and ``problem`` says what was wrong.
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class PanicRequest:
    action: PanicAction
    #: The halt's reason (HALT).
    reason: str = ""
    #: The vaults to flatten (FLATTEN); empty: every vault.
    vaults: tuple[str, ...] = ()
    #: What was wrong with the text (USAGE); empty: help was asked for.
    problem: str = ""


#: Words a reason may not start with: they look like commands the button does not have.
_NOT_HERE = {
    "recover": "recovery needs K of M recovery keys: `xorj-actors ctl recover`, never Slack",
    "resume": "recovery needs K of M recovery keys: `xorj-actors ctl recover`, never Slack",
    "unhalt": "recovery needs K of M recovery keys: `xorj-actors ctl recover`, never Slack",
    "arm": "recovery needs K of M recovery keys: `xorj-actors ctl recover`, never Slack",
}


def parse_text(text: str) -> PanicRequest:
    """The request in a ``/panic`` command's text (anything but a subcommand is a halt's reason)."""
    words = text.split()
    if not words:
        return PanicRequest(PanicAction.USAGE, problem="a reason is required: `/panic <reason>`")
    first = words[0].lower()
    if first in ("help", "-h", "--help"):
        return PanicRequest(PanicAction.USAGE)
    if first == "status":
        if len(words) > 1:
            return PanicRequest(PanicAction.USAGE, problem="`/panic status` takes nothing after it")
        return PanicRequest(PanicAction.STATUS)
    if first == "flatten":
        return _flatten(words[1:])
    if first in _NOT_HERE:
        return PanicRequest(PanicAction.USAGE, problem=f"unknown subcommand `{first}`: {_NOT_HERE[first]}")
    if first.startswith("-"):
        return PanicRequest(PanicAction.USAGE, problem=f"unknown option `{words[0][:40]}`")
    return PanicRequest(PanicAction.HALT, reason=" ".join(words))


def _flatten(words: list[str]) -> PanicRequest:
    names = [v for w in words for v in w.split(",") if v]
    if not names:
        return PanicRequest(PanicAction.USAGE, problem="`/panic flatten` needs vault ids or `all`")
    if [n.lower() for n in names] == ["all"]:
        return PanicRequest(PanicAction.FLATTEN)
    bad = [n for n in names if not VAULT_ID.fullmatch(n)]
    if bad:
        return PanicRequest(PanicAction.USAGE, problem=f"`{bad[0][:40]}` is not a vault id (vault-0007) nor `all`")
    return PanicRequest(PanicAction.FLATTEN, vaults=tuple(sorted(set(names))))


# -- two persons for a flatten -----------------------------------------------------------------------


class VoteOutcome(enum.Enum):
    #: The first request: held until another allowed user repeats it.
    PENDING = "pending"
    #: The same user asked again: still held.
    SAME_USER = "same_user"
    #: A second user repeated it in time: go.
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class Vote:
    outcome: VoteOutcome
    #: (user id, user name) of the first request (CONFIRMED, SAME_USER), or of the one that
    #: expired before this vote (PENDING; None if there was none).
    first: tuple[str, str] | None = None
    #: Seconds left to confirm (PENDING, SAME_USER).
    left_s: float = 0.0


class TwoPersonRule:
    """Holds each flatten request (by its vaults) until another user repeats it within ``window_s``.

    A repeat after the window is a new first request. At most ``capacity`` requests are held
    (only allowed users reach this; the oldest is dropped first). Thread-safe.
    """

    def __init__(self, window_s: float, capacity: int = 64, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._capacity = capacity
        self._clock = clock
        self._held: OrderedDict[tuple[str, ...], tuple[str, str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def vote(self, vaults: tuple[str, ...], user_id: str, user_name: str) -> Vote:
        """Record this user's request to flatten ``vaults`` (empty: every vault)."""
        now = self._clock()
        with self._lock:
            held = self._held.pop(vaults, None)
            if held is not None and now - held[2] <= self.window_s:
                if held[0] != user_id:
                    return Vote(VoteOutcome.CONFIRMED, first=held[:2])
                self._held[vaults] = held
                return Vote(VoteOutcome.SAME_USER, first=held[:2], left_s=self.window_s - (now - held[2]))
            while len(self._held) >= self._capacity:
                self._held.popitem(last=False)
            self._held[vaults] = (user_id, user_name, now)
            return Vote(VoteOutcome.PENDING, first=None if held is None else held[:2], left_s=self.window_s)
