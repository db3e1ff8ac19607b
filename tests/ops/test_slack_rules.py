"""The Slack panic button without a server: signing, replay, allowlists, text, two persons, acting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.config import ConfigError, parse_config
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.ops import RequestError, SlackSettings, slack_headers, slack_signature
from xorj_actors.ops._args import FlattenArgs, HaltArgs
from xorj_actors.ops._http_auth import ApiError
from xorj_actors.ops._slack import (
    PanicAction,
    PanicRequest,
    SlackVerifier,
    SlashCommand,
    TwoPersonRule,
    VoteOutcome,
    claimed_sender,
    parse_text,
    sender_refusal,
)
from xorj_actors.ops._slack_panic import SlackPanic
from xorj_actors.redaction import Redactor

#: Slack's worked example (tests/data/slack/README.md says where it comes from).
EXAMPLE = json.loads((Path(__file__).parents[1] / "data" / "slack" / "verifying-requests-example.json").read_text())
SECRET = EXAMPLE["signing_secret"].encode()
BODY = EXAMPLE["body"].encode()
TS = EXAMPLE["headers"]["X-Slack-Request-Timestamp"]
SIGNATURE = EXAMPLE["headers"]["X-Slack-Signature"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(now: float = float(TS), secret: bytes | None = SECRET, cache: int = 16) -> tuple[SlackVerifier, Clock]:
    clock = Clock(now)
    return SlackVerifier(secret, "XORJ_SLACK_SIGNING_SECRET", 300, cache, clock=clock), clock


def refusal(v: SlackVerifier, headers: dict[str, str], body: bytes = BODY) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        v.verify(headers, body)
    return info.value.status, info.value.code


# -- signing -------------------------------------------------------------------------------------


def test_slack_documented_example_signs_and_verifies() -> None:
    assert slack_signature(SECRET, TS, BODY) == SIGNATURE
    v, _ = verifier()
    v.verify(EXAMPLE["headers"], BODY)  # raises if not


def test_a_signature_in_capitals_is_the_same_signature() -> None:
    v, _ = verifier()
    v.verify({**EXAMPLE["headers"], "X-Slack-Signature": "v0=" + SIGNATURE[3:].upper()}, BODY)


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, BODY, "unauthenticated"),
        ({"X-Slack-Request-Timestamp": TS}, BODY, "unauthenticated"),
        ({"X-Slack-Request-Timestamp": "1531420618.5", "X-Slack-Signature": SIGNATURE}, BODY, "bad_timestamp"),
        ({"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIGNATURE[3:]}, BODY, "bad_signature"),  # no v0=
        ({"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": "v1=" + SIGNATURE[3:]}, BODY, "bad_signature"),
        (EXAMPLE["headers"], BODY + b"&text=flatten", "bad_signature"),  # the body changed
        ({"X-Slack-Request-Timestamp": "1531420619", "X-Slack-Signature": SIGNATURE}, BODY, "bad_signature"),
    ],
)
def test_requests_not_signed_as_slack_signs_are_refused(headers: dict[str, str], body: bytes, code: str) -> None:
    v, _ = verifier()
    assert refusal(v, headers, body) == (401, code)


def test_a_wrong_secret_is_refused() -> None:
    v, _ = verifier()
    assert refusal(v, slack_headers(b"not-the-app-secret-" * 2, BODY, timestamp=int(TS))) == (401, "bad_signature")


def test_timestamps_more_than_five_minutes_away_are_stale() -> None:
    v, _ = verifier(now=float(TS) + 300)
    v.verify(EXAMPLE["headers"], BODY)  # 300 s: still fresh
    for skew in (301, -301):
        v, _ = verifier(now=float(TS) + skew)
        assert refusal(v, EXAMPLE["headers"]) == (401, "stale_timestamp")


def test_a_replay_is_refused_and_forgotten_only_once_stale() -> None:
    v, clock = verifier()
    v.verify(EXAMPLE["headers"], BODY)
    assert refusal(v, EXAMPLE["headers"]) == (401, "replayed")
    clock.now += 299
    assert refusal(v, EXAMPLE["headers"]) == (401, "replayed")
    clock.now += 2  # now stale: refused as such whatever the memory holds
    assert refusal(v, EXAMPLE["headers"]) == (401, "stale_timestamp")


def test_replay_memory_is_bounded_and_frees_stale_entries() -> None:
    v, clock = verifier(cache=16)
    for i in range(16):
        v.verify(slack_headers(SECRET, BODY + f"&n={i}".encode(), timestamp=int(clock.now)), BODY + f"&n={i}".encode())
    late = BODY + b"&n=late"
    assert refusal(v, slack_headers(SECRET, late, timestamp=int(clock.now)), late) == (429, "busy")
    clock.now += 301  # every remembered signature is stale now
    v.verify(slack_headers(SECRET, late, timestamp=int(clock.now)), late)


def test_without_a_secret_every_request_is_refused() -> None:
    v, _ = verifier(secret=None)
    assert refusal(v, EXAMPLE["headers"]) == (503, "slack_unconfigured")


# -- the slash command -----------------------------------------------------------------------------


def test_the_documented_body_parses_into_a_slash_command() -> None:
    command = SlashCommand.from_body(BODY)
    assert (command.team_id, command.channel_id, command.user_id, command.user_name) == (
        "T1DC2JH3J", "G8PSS9T3V", "U2CERLKJA", "roadrunner"
    )
    assert command.command == "/webhook-collect" and command.text == ""
    assert command.response_url.startswith("https://hooks.slack.com/commands/T1DC2JH3J/")
    assert claimed_sender(BODY) == "U2CERLKJA/roadrunner"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not a form-encoded slash command"),
        (b"{\"user_id\": \"U1\"}", "not a form-encoded slash command"),
        (b"", "missing team_id, channel_id, user_id, command"),
        (b"team_id=T1&channel_id=C1&user_id=U1", "missing command"),
        (b"team_id=T1&channel_id=C1&user_id=U1&user_id=U2&command=%2Fpanic", "field 'user_id' given twice"),
        (b"team_id=T1&channel_id=C1&user_id=U1&command=%2Fpanic&text=" + b"x" * 4001, "text longer than 4000"),
        (b"&".join(b"f%d=1" % i for i in range(100)), "not a form-encoded slash command"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as info:
        SlashCommand.from_body(body)
    assert (info.value.status, info.value.code) == (400, "bad_form")
    assert message in info.value.message


def test_claimed_sender_never_raises_and_keeps_only_plain_characters() -> None:
    assert claimed_sender(b"\xff") == ""
    assert claimed_sender(b"user_id=U1%0A<script>&user_name=a b") == "U1??script?/a?b"


SETTINGS = SlackSettings(users=("U2CERLKJA", "U0SECOND"), channels=("G8PSS9T3V",), team_id="T1DC2JH3J",
                         command="/webhook-collect")


def test_allowlists_and_workspace() -> None:
    command = SlashCommand.from_body(BODY)
    assert sender_refusal(SETTINGS, command) is None
    cases = {
        "user_id": ("U0OTHER", "user U0OTHER is not on the allowlist ([slack] users)"),
        "channel_id": ("C0OTHER", "channel C0OTHER is not on the allowlist ([slack] channels)"),
        "team_id": ("T0OTHER", "workspace T0OTHER is not the configured one"),
        "command": ("/deploy", "/deploy is not this engine's command (/webhook-collect)"),
    }
    for field, (value, why) in cases.items():
        assert sender_refusal(SETTINGS, dataclasses.replace(command, **{field: value})) == why


# -- the text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RPC returns garbage, halt", PanicRequest(PanicAction.HALT, reason="RPC returns garbage, halt")),
        ("  bad   fills  ", PanicRequest(PanicAction.HALT, reason="bad fills")),
        ("flatten all", PanicRequest(PanicAction.FLATTEN)),
        ("FLATTEN ALL", PanicRequest(PanicAction.FLATTEN)),
        ("flatten vault-0002 vault-0001,vault-0002", PanicRequest(PanicAction.FLATTEN, vaults=("vault-0001", "vault-0002"))),
        ("status", PanicRequest(PanicAction.STATUS)),
        ("help", PanicRequest(PanicAction.USAGE)),
        ("", PanicRequest(PanicAction.USAGE, problem="a reason is required: `/panic <reason>`")),
        ("flatten", PanicRequest(PanicAction.USAGE, problem="`/panic flatten` needs vault ids or `all`")),
        ("flatten all vault-0001", PanicRequest(PanicAction.USAGE, problem="`all` is not a vault id (vault-0007) nor `all`")),
        ("flatten vault-1", PanicRequest(PanicAction.USAGE, problem="`vault-1` is not a vault id (vault-0007) nor `all`")),
        ("status now", PanicRequest(PanicAction.USAGE, problem="`/panic status` takes nothing after it")),
        ("--force", PanicRequest(PanicAction.USAGE, problem="unknown option `--force`")),
    ],
)
def test_text_into_a_request(text: str, expected: PanicRequest) -> None:
    assert parse_text(text) == expected


def test_recovery_words_are_an_unknown_subcommand_not_a_halt_reason() -> None:
    for word in ("recover", "Resume", "unhalt", "arm"):
        request = parse_text(f"{word} epoch 3")
        assert request.action is PanicAction.USAGE
        assert request.problem.startswith(f"unknown subcommand `{word.lower()}`") and "ctl recover" in request.problem


# -- two persons -------------------------------------------------------------------------------------


def test_a_flatten_needs_a_second_user_within_the_window() -> None:
    clock = Clock(1000.0)
    rule = TwoPersonRule(60, clock=clock)
    assert rule.vote((), "U1", "alice").outcome is VoteOutcome.PENDING
    clock.now += 10
    again = rule.vote((), "U1", "alice")
    assert (again.outcome, again.first, again.left_s) == (VoteOutcome.SAME_USER, ("U1", "alice"), 50)
    assert rule.vote(("vault-0001",), "U2", "bob").outcome is VoteOutcome.PENDING  # other vaults: its own request
    clock.now += 50  # 60 s after the first: still in time
    confirmed = rule.vote((), "U2", "bob")
    assert (confirmed.outcome, confirmed.first) == (VoteOutcome.CONFIRMED, ("U1", "alice"))
    assert rule.vote(("vault-0001",), "U1", "alice").outcome is VoteOutcome.CONFIRMED  # bob's, confirmed by alice


def test_confirmation_in_time_and_after_the_window() -> None:
    clock = Clock(1000.0)
    rule = TwoPersonRule(60, clock=clock)
    rule.vote((), "U1", "alice")
    clock.now += 60
    confirmed = rule.vote((), "U2", "bob")
    assert (confirmed.outcome, confirmed.first) == (VoteOutcome.CONFIRMED, ("U1", "alice"))
    # Consumed: the next request starts over.
    assert rule.vote((), "U1", "alice").outcome is VoteOutcome.PENDING
    clock.now += 60.5
    late = rule.vote((), "U2", "bob")
    assert (late.outcome, late.first) == (VoteOutcome.PENDING, ("U1", "alice"))  # alice's expired; bob's is new
    clock.now += 1
    assert rule.vote((), "U1", "alice").outcome is VoteOutcome.CONFIRMED


def test_held_requests_are_bounded() -> None:
    rule = TwoPersonRule(60, capacity=2, clock=Clock(0.0))
    for vault in ("vault-0001", "vault-0002", "vault-0003"):
        rule.vote((vault,), "U1", "alice")
    assert rule.vote(("vault-0001",), "U2", "bob").outcome is VoteOutcome.PENDING  # dropped: the oldest
    assert rule.vote(("vault-0003",), "U2", "bob").outcome is VoteOutcome.CONFIRMED


# -- config ------------------------------------------------------------------------------------------

SLACK = '[slack]\nusers = ["U0ALICE", "U0BOB"]\nchannels = ["C0OPS"]\n'


def test_slack_is_off_unless_configured() -> None:
    assert parse_config("").slack is None
    slack = parse_config(SLACK).slack
    assert slack is not None and slack.signing_secret_env == "XORJ_SLACK_SIGNING_SECRET"
    assert (slack.max_age_s, slack.confirm_window_s, slack.command) == (300, 60, "/panic")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "slack.users: at least one Slack user id is required"),
        ('users = ["U0ALICE"]\n', "slack.channels: at least one Slack channel id is required"),
        ('users = ["alice"]\nchannels = ["C0OPS"]\n', "slack.users: 'alice' is not a Slack id like U0123ABCD"),
        ('users = ["U0ALICE"]\nchannels = ["#ops"]\n', "slack.channels: '#ops' is not a Slack id like C0123ABCD"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\nmax_age_s = 600\n', "slack.max_age_s: must be between 1 and 300"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\nsigning_secret_env = "not a name"\n', "slack.signing_secret_env"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\ncommand = "panic"\n', "slack.command: must be a slash command"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\nteam_id = "acme"\n', "slack.team_id: 'acme' is not a Slack workspace id"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\nprogress_wait_s = 5\n', "slack.progress_wait_s: must be between 0 and 2.5"),
        ('users = "U0ALICE"\nchannels = ["C0OPS"]\n', "slack.users: expected a list"),
        ('users = ["U0ALICE"]\nchannels = ["C0OPS"]\nsecret = "x"\n', "slack.secret: unknown key"),
    ],
)
def test_bad_slack_config_is_refused_at_load(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config("[slack]\n" + extra)


def test_readiness_names_the_secret_but_never_shows_it() -> None:
    slack = parse_config(SLACK).slack
    assert slack is not None
    assert slack.readiness({}) == (
        False, "/panic: 2 users, 1 channels; XORJ_SLACK_SIGNING_SECRET not set: POST /slack/panic refuses every request"
    )
    ok, detail = slack.readiness({"XORJ_SLACK_SIGNING_SECRET": "s" * 32})
    assert ok and "sss" not in detail and "$XORJ_SLACK_SIGNING_SECRET set" in detail
    assert slack.readiness({"XORJ_SLACK_SIGNING_SECRET": "short"})[0] is False


# -- acting, with a kill switch that does not answer --------------------------------------------------


class SlowKillSwitch:
    """The commands of an engine whose kill switch takes triggers but never answers an ask: each
    ask records the time it was given and times out, as ``Commands`` does."""

    def __init__(self, board: HaltBoard) -> None:
        self.board = board
        self.triggered: list[HaltArgs] = []
        self.asked: list[float] = []  # each ask's timeout
        self.flattened: list[FlattenArgs] = []

    def trigger(self, a: HaltArgs, source: str) -> None:
        self.board.trip()  # as KillSwitchRef does before it tells
        self.triggered.append(a)

    def kill_switch_status(self, timeout_s: float) -> dict[str, Any]:
        self.asked.append(timeout_s)
        raise RequestError("timeout", f"the kill switch did not answer within {timeout_s:g} s")

    def flatten(self, a: FlattenArgs, *, timeout_s: float) -> dict[str, Any]:
        self.asked.append(timeout_s)
        self.flattened.append(a)
        raise RequestError("timeout", f"the kill switch did not answer within {timeout_s:g} s")

    def status(self, _: None) -> dict[str, Any]:
        raise AssertionError("the whole status (a cluster round trip too) is not Slack's to wait for")


def test_a_panic_halts_even_when_the_kill_switch_answers_no_ask() -> None:
    board = HaltBoard()
    commands = SlowKillSwitch(board)
    panic = SlackPanic(SETTINGS, commands, board, Redactor(()), SECRET)  # type: ignore[arg-type]
    command = dataclasses.replace(SlashCommand.from_body(BODY), text="fills look wrong")
    details: dict[str, Any] = {}
    event, answer = panic.handle(command, details)
    assert [a.reason for a in commands.triggered] == ["Slack /webhook-collect by roadrunner (U2CERLKJA) in #foobar: fills look wrong"]
    assert event == "HALT" and answer["response_type"] == "in_channel"
    assert "Kill switch *TRIGGERED*, epoch 1; acks unknown: the kill switch did not answer within" in answer["text"]
    assert (details["outcome"], details["epoch"], details["complete"]) == ("accepted", 1, False)
    # The ask waited only for what was left of Slack's patience.
    assert len(commands.asked) == 1 and 0 < commands.asked[0] <= SETTINGS.progress_wait_s
    # Status and a flatten's state check: the board's word when the kill switch does not answer.
    answer = panic.handle(dataclasses.replace(command, text="status"), details := {})[1]
    assert "Kill switch *TRIGGERED*, epoch 1; acks unknown" in answer["text"]
    answer = panic.handle(dataclasses.replace(command, text="flatten all"), details := {})[1]
    assert details["outcome"] == "pending" and "asks to *flatten all*" in answer["text"]
    assert len(commands.asked) == 3 and all(0 < t <= SETTINGS.progress_wait_s for t in commands.asked)
    # Confirmed by a second user: told to the kill switch, which does not answer in time either.
    second = dataclasses.replace(command, text="flatten all", user_id="U0SECOND", user_name="second")
    answer = panic.handle(second, details := {})[1]
    assert details["outcome"] == "refused" and "did not answer" in answer["text"] and len(commands.flattened) == 1
    assert 0 < commands.asked[-1] <= SETTINGS.progress_wait_s


def test_past_the_deadline_slack_is_answered_from_the_board_without_asking() -> None:
    board = HaltBoard()
    commands = SlowKillSwitch(board)
    ticks = iter([0.0] + [SETTINGS.progress_wait_s + 1] * 10)  # the deadline is past at the first look
    panic = SlackPanic(SETTINGS, commands, board, Redactor(()), SECRET, clock=lambda: next(ticks))  # type: ignore[arg-type]
    answer = panic.handle(dataclasses.replace(SlashCommand.from_body(BODY), text="status"), {})[1]
    assert "Kill switch *STARTING*, epoch 0; acks unknown: no time left" in answer["text"]
    assert commands.asked == []
