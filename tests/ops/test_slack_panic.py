"""``POST /slack/panic`` against a real engine's HTTP API, requests signed exactly as Slack signs them."""

from __future__ import annotations

import html
import itertools
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from tests.ops.conftest import ENGINE_ENV, HTTP_FAST, REFUSALS, Api, Reply, http_audit, refusal_audit
from tests.plugins.engine import ks_status, wait_until
from xorj_actors.engine import Engine
from xorj_actors.ops import slack_headers, slack_signature

PANIC = "/slack/panic"
SECRET_ENV = "XORJ_SLACK_SIGNING_SECRET"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's example secret: 32 characters, like a real one
ALICE, BOB, MALLORY = ("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0MALLORY", "mallory")
OPS, RANDOM = "C0OPS", "C0RANDOM"


def slack_config(confirm_window_s: float = 60) -> str:
    return (
        f'[slack]\nusers = ["{ALICE[0]}", "{BOB[0]}"]\nchannels = ["{OPS}"]\nteam_id = "T0ACME"\n'
        f"confirm_window_s = {confirm_window_s}\n"
    )


_trigger = itertools.count(13345224609)


def form(text: str, user: tuple[str, str] = ALICE, channel: str = OPS, command: str = "/panic") -> bytes:
    """A slash command's body, with every field Slack sends (docs: "Slash commands", the payload);
    like Slack's, each has a trigger id of its own."""
    return urllib.parse.urlencode({
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0ACME", "team_domain": "acme",
        "channel_id": channel, "channel_name": "ops" if channel == OPS else "random",
        "user_id": user[0], "user_name": user[1], "command": command, "text": text,
        "api_app_id": "A0PANIC", "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0ACME/1234/abcd",
        "trigger_id": f"{next(_trigger)}.738474920.8088930838d88f008e0",
    }).encode()


class Slack:
    """Slack, as far as the engine can tell: signed slash commands to ``/slack/panic``."""

    def __init__(self, engine: Engine, secret: str = SECRET) -> None:
        self.api = Api(engine)
        self.engine = engine
        self.secret = secret.encode()

    def send(self, text: str, user: tuple[str, str] = ALICE, channel: str = OPS, **kw: Any) -> Reply:
        body = form(text, user, channel, **kw)
        return self.api.post_raw(PANIC, body, slack_headers(self.secret, body))


@pytest.fixture
def make_slack(engine_factory: Callable[..., Engine]) -> Callable[..., Slack]:
    def make(*, confirm_window_s: float = 60, environ: dict[str, str] | None = None) -> Slack:
        env = {**ENGINE_ENV, SECRET_ENV: SECRET} if environ is None else environ
        return Slack(engine_factory(vaults=3, environ=env, extra=HTTP_FAST + slack_config(confirm_window_s)))

    return make


@pytest.fixture
def slack(make_slack: Callable[..., Slack]) -> Slack:
    return make_slack()


def untouched(engine: Engine) -> None:
    status = ks_status(engine)
    assert (status.state, status.epoch, status.flatten_id) == ("ARMED", 0, None)


def answered(reply: Reply, response_type: str = "ephemeral") -> str:
    """Slack's message JSON: its ``text`` (checked against its blocks)."""
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    message = reply.json()
    assert message["response_type"] == response_type
    section = message["blocks"][0]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert message["text"].startswith(section["text"]["text"])
    return str(message["text"])


def entries(engine: Engine, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(k, d) for k, d in http_audit(engine, count) if d["what"] == f"slack POST {PANIC}"]


def halted(slack: Slack) -> int:
    """Halt through the panic button; the epoch once every actor acked."""
    answered(slack.send("drill"), "in_channel")
    wait_until(lambda: ks_status(slack.engine).complete, what="halt acked")
    return ks_status(slack.engine).epoch


# -- halt ----------------------------------------------------------------------------------------


def test_panic_halts_and_answers_with_the_halt_progress(slack: Slack) -> None:
    text = answered(slack.send("RPC answers <garbage> & fills look wrong"), "in_channel")
    assert text.startswith(":rotating_light: *Emergency halt* triggered by <@U0ALICE>: RPC answers &lt;garbage&gt; &amp;")
    assert "Kill switch *TRIGGERED*, epoch 1: " in text and "actors acked" in text
    status = ks_status(slack.engine)
    assert (status.state, status.mode, status.source, status.epoch) == ("TRIGGERED", "emergency", "slack", 1)
    assert status.reason == "Slack /panic by alice (U0ALICE) in #ops: RPC answers <garbage> & fills look wrong"
    [(kind, details)] = entries(slack.engine, 1)
    assert (kind, details["outcome"], details["status"], details["action"]) == ("HALT", "accepted", 200, "halt")
    assert (details["slack_user_id"], details["slack_user_name"], details["slack_channel_id"]) == ("U0ALICE", "alice", OPS)
    assert details["epoch"] == 1 and details["live"] >= details["acked"] > 0
    # Within Slack's 3 s the light engine's actors all ack: the answer shows the halt complete.
    assert details["complete"] and f"{details['acked']}/{details['live']} actors acked, complete in" in text


def test_panic_status_shows_the_kill_switch(slack: Slack) -> None:
    assert "Kill switch *ARMED*, epoch 0" in answered(slack.send("status"))
    untouched(slack.engine)


# -- refused before authentication ------------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong_secret", "stale", "future", "replay", "no_headers", "other_body"])
def test_requests_not_from_slack_are_refused_counted_and_change_nothing(slack: Slack, case: str) -> None:
    body = form("halt everything")
    headers = slack_headers(slack.secret, body)
    code = "bad_signature"
    if case == "wrong_secret":
        headers = slack_headers(b"a-different-app-signing-secret!!", body)
    elif case in ("stale", "future"):
        ts = int(time.time()) + (-301 if case == "stale" else 301)
        headers = slack_headers(slack.secret, body, timestamp=ts)
        code = "stale_timestamp"
    elif case == "replay":
        body = form("status")
        headers = slack_headers(slack.secret, body)
        answered(slack.api.post_raw(PANIC, body, headers))  # Slack's request: accepted once
        code = "replayed"
    elif case == "no_headers":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        code = "unauthenticated"
    elif case == "other_body":  # signed for one text, sent with another
        headers = slack_headers(slack.secret, form("status"))
    reply = slack.api.post_raw(PANIC, body, headers)
    assert reply.status == 401, reply.body
    assert reply.json()["error"]["code"] == code
    untouched(slack.engine)
    # Unauthenticated: counted with whom the body claims to be, never an entry of its own.
    [(kind, tally)] = refusal_audit(slack.engine, 1)
    assert (kind, tally["count"], tally["refusals"], tally["paths"]) == (
        "SECURITY_VIOLATION", 1, {f"401 {code} (claims U0ALICE/alice)": 1}, {PANIC: 1}
    )
    authenticated = entries(slack.engine, 1 if case == "replay" else 0)
    assert [(k, d["action"]) for k, d in authenticated] == ([("SYSTEM_EVENT", "status")] if case == "replay" else [])


def test_the_signature_is_over_the_raw_body_as_slack_sent_it(slack: Slack) -> None:
    body = form("bad fills everywhere")
    headers = slack_headers(slack.secret, body)
    assert headers["X-Slack-Signature"] == slack_signature(slack.secret, headers["X-Slack-Request-Timestamp"], body)
    reencoded = urllib.parse.urlencode(urllib.parse.parse_qsl(body.decode()), quote_via=urllib.parse.quote).encode()
    assert reencoded != body  # the same fields, encoded otherwise (%20, not +): not what Slack signed
    assert slack.api.post_raw(PANIC, reencoded, headers).status == 401
    untouched(slack.engine)


# -- refused after authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "channel", "why"),
    [
        (MALLORY, OPS, "user U0MALLORY is not on the allowlist ([slack] users)"),
        (ALICE, RANDOM, "channel C0RANDOM is not on the allowlist ([slack] channels)"),
    ],
)
def test_users_and_channels_off_the_allowlists_are_refused_and_audited(
    slack: Slack, user: tuple[str, str], channel: str, why: str
) -> None:
    text = answered(slack.send("halt now", user, channel))
    assert text == f":no_entry: Refused: {why}. Nothing was done."
    untouched(slack.engine)
    [(kind, details)] = entries(slack.engine, 1)
    assert (kind, details["outcome"], details["status"], details["reason"]) == ("SECURITY_VIOLATION", "refused", 200, why)
    assert (details["slack_user_id"], details["slack_user_name"], details["slack_channel_id"]) == (*user, channel)


def test_another_slash_command_of_the_app_is_refused(slack: Slack) -> None:
    assert "/deploy is not this engine's command (/panic)" in answered(slack.send("prod", command="/deploy"))
    untouched(slack.engine)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"\xff\xfe not a form", None, 400, "bad_form"),
        (b"team_id=T0ACME&user_id=U0ALICE&user_name=alice", None, 400, "bad_form"),
        (b'{"user_id": "U0ALICE", "text": "halt"}', "application/json", 415, "unsupported_media_type"),
    ],
)
def test_signed_malformed_bodies_get_4xx_are_audited_and_change_nothing(
    slack: Slack, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    headers = slack_headers(slack.secret, body)
    if content_type:
        headers["Content-Type"] = content_type
    reply = slack.api.post_raw(PANIC, body, headers)
    assert reply.status == status and reply.json()["error"]["code"] == code, reply.body
    untouched(slack.engine)
    [(kind, details)] = entries(slack.engine, 1)
    assert (kind, details["outcome"], details["status"]) == ("SYSTEM_EVENT", "refused", status)  # nothing halted
    if b"U0ALICE" in body and status == 400:
        assert details["slack_user"] == "U0ALICE/alice"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "a reason is required: `/panic &lt;reason&gt;`"),
        ("   ", "a reason is required: `/panic &lt;reason&gt;`"),
        ("recover 1", "unknown subcommand `recover`: recovery needs K of M recovery keys"),
        ("flatten", "`/panic flatten` needs vault ids or `all`"),
    ],
)
def test_usage_errors_answer_the_usage_and_change_nothing(slack: Slack, text: str, problem: str) -> None:
    answer = answered(slack.send(text))
    assert answer.startswith(f":warning: {problem}") and "`/panic flatten &lt;vault ids|all&gt;`" in answer
    untouched(slack.engine)
    [(kind, details)] = entries(slack.engine, 1)
    assert (kind, details["outcome"], details["action"]) == ("SYSTEM_EVENT", "refused", "usage")  # nothing halted
    assert details["reason"].startswith(html.unescape(problem)) and details["slack_user_id"] == "U0ALICE"


# -- flatten: two persons ---------------------------------------------------------------------------


def test_flatten_while_armed_is_refused(slack: Slack) -> None:
    text = answered(slack.send("flatten all"))
    assert "flatten only while halted: the kill switch is ARMED; halt first with `/panic &lt;reason&gt;`" in text
    assert answered(slack.send("flatten all", BOB)).startswith(":no_entry: Refused")  # no vote was held
    untouched(slack.engine)
    assert [k for k, _ in entries(slack.engine, 2)] == ["SYSTEM_EVENT", "SYSTEM_EVENT"]  # refused here: nothing asked


def test_flatten_by_one_user_alone_never_happens(slack: Slack) -> None:
    epoch = halted(slack)
    first = answered(slack.send("flatten all"), "in_channel")
    assert first.startswith(":warning: <@U0ALICE> asks to *flatten all*. Another allowed user must run")
    assert "`/panic flatten all` within 60 s to confirm" in first
    again = answered(slack.send("flatten all"))
    assert again.startswith(":hourglass: You already asked. A *different* allowed user")
    # Mallory is not allowed: her repeat confirms nothing.
    assert "not on the allowlist" in answered(slack.send("flatten all", MALLORY))
    status = ks_status(slack.engine)
    assert (status.state, status.epoch, status.flatten_id) == ("TRIGGERED", epoch, None)
    outcomes = [(k, d["outcome"], d.get("action")) for k, d in entries(slack.engine, 4)]
    # A flatten's first vote, and its repeat, flatten nothing: system events; the halt is a HALT.
    assert outcomes == [("HALT", "accepted", "halt"), ("SYSTEM_EVENT", "pending", "flatten"),
                        ("SYSTEM_EVENT", "pending", "flatten"), ("SECURITY_VIOLATION", "refused", None)]


def test_flatten_confirmed_by_a_second_allowed_user_within_the_window(slack: Slack) -> None:
    epoch = halted(slack)
    answered(slack.send("flatten vault-0001 vault-0000"), "in_channel")
    # Another set of vaults is another request: it confirms nothing.
    assert "asks to *flatten all*" in answered(slack.send("flatten all", BOB), "in_channel")
    assert ks_status(slack.engine).flatten_id is None
    text = answered(slack.send("flatten vault-0000,vault-0001", BOB), "in_channel")
    status = ks_status(slack.engine)
    assert status.flatten_id is not None and status.epoch == epoch
    assert text.startswith(f":rotating_light: *Flatten* `{status.flatten_id}` of 2 vaults started: asked by <@U0ALICE>, "
                           "confirmed by <@U0BOB>.")
    # No chain in this engine: each vault reports at once that it sold nothing, and the halt holds.
    wait_until(lambda: {r[0] for r in ks_status(slack.engine).flatten_results} == {"vault-0000", "vault-0001"},
               what="both vaults reported")
    wait_until(lambda: ks_status(slack.engine).state == "TRIGGERED", what="back to TRIGGERED")
    kind, details = entries(slack.engine, 4)[-1]
    assert (kind, details["outcome"], details["flatten_id"], details["vaults"]) == (
        "HALT", "accepted", status.flatten_id, ["vault-0000", "vault-0001"]
    )
    assert (details["first_user_id"], details["slack_user_id"], details["operator"]) == ("U0ALICE", "U0BOB", "slack:alice+bob")


def test_a_confirmation_after_the_window_is_a_new_request(make_slack: Callable[..., Slack]) -> None:
    slack = make_slack(confirm_window_s=1)
    halted(slack)
    answered(slack.send("flatten all"), "in_channel")
    asked = time.monotonic()
    wait_until(lambda: time.monotonic() - asked > 1.5, what="the confirmation window to pass")
    late = answered(slack.send("flatten all", BOB), "in_channel")
    assert late.startswith(":warning: <@U0BOB> asks to *flatten all* (the request of <@U0ALICE> expired: not "
                           "confirmed within 1 s).")
    assert ks_status(slack.engine).flatten_id is None
    kind, details = entries(slack.engine, 3)[-1]
    assert (details["outcome"], details["expired_request_of"], details["slack_user_id"]) == ("pending", "U0ALICE", "U0BOB")


# -- off, or without its secret -----------------------------------------------------------------------


def test_without_a_slack_section_the_route_is_off(api: Api) -> None:
    body = form("drill")
    reply = api.post_raw(PANIC, body, slack_headers(SECRET.encode(), body))
    assert reply.status == 404 and reply.json()["error"]["code"] == "not_found"
    untouched(api.engine)
    [(kind, tally)] = refusal_audit(api.engine, 1)
    assert tally["refusals"] == {"404 slack_off": 1} and tally["what"] == REFUSALS


def test_without_its_signing_secret_every_request_is_refused(make_slack: Callable[..., Slack]) -> None:
    slack = make_slack(environ=dict(ENGINE_ENV))
    reply = slack.send("drill")
    assert reply.status == 503 and reply.json()["error"]["code"] == "slack_unconfigured"
    assert SECRET_ENV in reply.json()["error"]["message"]
    untouched(slack.engine)


# -- xorj-actors check -------------------------------------------------------------------------------


def test_check_reports_whether_slack_is_configured_and_its_secret_set(tmp_path, capsys, monkeypatch) -> None:
    from tests.ops.test_check_cli import _set_env, run_check

    _set_env(monkeypatch, {})
    monkeypatch.delenv(SECRET_ENV, raising=False)
    code, lines = run_check(tmp_path, capsys, None)
    assert code == 0 and lines["slack"].split() == ["ok", "slack", "off:", "no", "[slack]", "section"]
    code, lines = run_check(tmp_path, capsys, slack_config())
    assert code == 1 and lines["slack"].startswith("FAIL")
    assert "XORJ_SLACK_SIGNING_SECRET not set: POST /slack/panic refuses every request" in lines["slack"]
    monkeypatch.setenv(SECRET_ENV, SECRET)
    code, lines = run_check(tmp_path, capsys, slack_config())
    assert code == 0 and lines["slack"].startswith("ok") and SECRET not in lines["slack"]
    assert "/panic: 2 users, 1 channels; signing secret $XORJ_SLACK_SIGNING_SECRET set" in lines["slack"]


def test_a_secret_pasted_into_the_reason_is_masked_everywhere(slack: Slack) -> None:
    text = answered(slack.send(f"leaked {SECRET} in the channel"), "in_channel")
    assert SECRET not in text
    status = ks_status(slack.engine)
    assert status.state == "TRIGGERED" and SECRET not in (status.reason or "") and "leaked" in (status.reason or "")
    [(_, details)] = entries(slack.engine, 1)
    assert SECRET not in str(details)


def test_slacks_certificate_check_is_answered_and_acts_on_nothing(slack: Slack) -> None:
    # Slack's ssl_check request (slash commands docs, "SSL"): no command, no user, maybe unsigned.
    reply = slack.api.post_raw(PANIC, b"ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO",
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200 and reply.json()["response_type"] == "ephemeral"
    # With a command it is a command, signed or refused.
    body = form("drill") + b"&ssl_check=1"
    assert slack.api.post_raw(PANIC, body, {"Content-Type": "application/x-www-form-urlencoded"}).status == 401
    untouched(slack.engine)
    assert entries(slack.engine, 0) == []
