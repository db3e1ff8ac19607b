"""The panic button in Slack: an authenticated ``/panic`` command, acted on and answered.

The rules live in ``_slack.py``; this module applies them to the engine through the same
commands ``ctl`` and the HTTP API use: ``/panic <reason>`` is :meth:`Commands.trigger` (an
emergency halt, source ``slack``), ``/panic flatten`` is :meth:`Commands.flatten` once a second
allowed user confirmed it. Each answer is Slack's message JSON (``response_type``, ``text``,
``blocks``); each request fills the details of its one audit entry. Blocking: the HTTP API runs
it on its executor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xorj_actors.kill_switch import HaltBoard
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode
from xorj_actors.ops._args import MAX_OPERATOR_CHARS, FlattenArgs, HaltArgs, RequestError
from xorj_actors.ops._commands import Commands
from xorj_actors.ops._slack import (
    USAGE,
    PanicAction,
    PanicRequest,
    SlackVerifier,
    SlashCommand,
    TwoPersonRule,
    VoteOutcome,
    parse_text,
    sender_refusal,
)
from xorj_actors.ops.settings import SlackSettings
from xorj_actors.redaction import Redactor

__all__ = ["SlackPanic", "slack_answer"]

_HALTED = ("TRIGGERED", "MAINTENANCE")
#: Slack's limit on a section block's text.
_BLOCK_CHARS = 3_000
_POLL_S = 0.05
#: A confirmed flatten is asked for even past the deadline (two users asked for it): this long at least.
_MIN_FLATTEN_ASK_S = 0.2


def _escape(text: str) -> str:
    """Text shown as Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, as Slack asks (no mentions or links smuggled in)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_answer(text: str, context: str = "", *, in_channel: bool = False) -> dict[str, Any]:
    """Slack's answer to a slash command: ``text`` (the notification), and the same as blocks."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:_BLOCK_CHARS]}}]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:_BLOCK_CHARS]}]})
    return {
        "response_type": "in_channel" if in_channel else "ephemeral",
        "text": f"{text}\n{context}" if context else text,
        "blocks": blocks,
    }


def _progress(ks: dict[str, Any]) -> str:
    """One line of the halt's progress: state, epoch, actors acked of those live, who is missing."""
    head = f"Kill switch *{ks['state']}*, epoch {ks['epoch']}"
    if "unknown" in ks:  # the board's word only: the kill switch did not answer
        return f"{head}; acks unknown: {_escape(ks['unknown'])}"
    acked, missing = len(ks["acked"]), list(ks["missing"])
    line = f"{head}: {acked}/{acked + len(missing)} actors acked"
    if ks["complete"] and ks.get("halt_latency_s") is not None:
        line += f", complete in {ks['halt_latency_s'] * 1000:.0f} ms"
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        line += f"; waiting for {', '.join(_escape(m) for m in missing[:5])}{more}"
    return line


class SlackPanic:
    """Acts on authenticated slash commands; holds the verifier and the two-person rule."""

    def __init__(
        self, settings: SlackSettings, commands: Commands, board: HaltBoard, redactor: Redactor,
        secret: bytes | None | Callable[[], bytes | None],
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.commands = commands
        self.board = board
        self.redact = redactor
        self.verifier = SlackVerifier(secret, settings.signing_secret_env, settings.max_age_s, settings.replay_cache_size)
        self.rule = TwoPersonRule(settings.confirm_window_s, clock=clock)
        self._clock = clock

    def handle(self, command: SlashCommand, details: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Act on ``command`` (its signature verified): its audit event type and Slack's answer.

        ``details`` gets the sender, the action, the outcome (``accepted``, ``pending``,
        ``refused``, ``answered``) and the reason of a refusal.
        """
        details.update(command.sender())
        refusal = sender_refusal(self.settings, command)
        if refusal is not None:  # Slack vouches for who asked: an entry of its own, a security one
            details.update(outcome="refused", reason=refusal)
            return "SECURITY_VIOLATION", slack_answer(f":no_entry: Refused: {_escape(refusal)}. Nothing was done.")
        # Slack waits 3 s for the answer: no ask of this request outlasts progress_wait_s.
        deadline = self._clock() + self.settings.progress_wait_s
        request = parse_text(command.text)
        details.update(action=request.action.value, text=self.redact(command.text)[:REASON_LIMIT])
        try:
            answer = self._act(command, request, details, deadline)
        except RequestError as exc:
            details.update(outcome="refused", reason=exc.message)
            answer = slack_answer(f":no_entry: Refused: {_escape(exc.message)}")
        # HALT (CRITICAL) only for what asked the kill switch to halt or flatten, done or refused
        # by it; status, usage errors, a flatten's first vote or one refused here: a system event.
        halting = request.action is PanicAction.HALT or "operator" in details  # operator: a flatten told
        return ("HALT" if halting else "SYSTEM_EVENT"), answer

    def _act(
        self, command: SlashCommand, request: PanicRequest, details: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        if request.action is PanicAction.HALT:
            return self._halt(command, request, details, deadline)
        if request.action is PanicAction.FLATTEN:
            return self._flatten(command, request, details, deadline)
        if request.action is PanicAction.STATUS:
            details.update(outcome="answered")
            return slack_answer(_progress(self._status(deadline)))
        details.update(outcome="refused" if request.problem else "answered", reason=request.problem or None)
        head = f":warning: {request.problem}\n" if request.problem else ""
        return slack_answer(_escape(head + USAGE.replace("/panic", self.settings.command)))

    def _status(self, deadline: float) -> dict[str, Any]:
        """The kill switch's status as ``ctl status`` shows it, asked for no longer than the time
        left before ``deadline``; past it, or if the kill switch does not answer, the board's word
        (state and epoch; ``unknown`` says why the acks are not known)."""
        left = deadline - self._clock()
        if left > 0:
            try:
                return self.commands.kill_switch_status(left)
            except RequestError as exc:
                unknown = exc.message
        else:
            unknown = "no time left to ask the kill switch before Slack's 3 s"
        board = self.board.status
        return {"state": board.state, "epoch": board.epoch, "acked": [], "missing": [], "complete": False,
                "unknown": unknown}

    # -- halt ---------------------------------------------------------------------------------

    def _halt(
        self, command: SlashCommand, request: PanicRequest, details: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        sender = f"{command.user_name or '?'} ({command.user_id})"
        reason = self.redact(f"Slack {command.command} by {sender} in #{command.channel_name}: {request.reason}")
        reason = reason[:REASON_LIMIT]
        before = self.board.status.epoch  # read without asking: a slow kill switch must not delay the halt
        held = self.commands.trigger(HaltArgs(mode=HaltMode.EMERGENCY, reason=reason), source="slack")
        ks = self._await_halt(before, deadline)
        details.update(
            outcome="accepted", mode=HaltMode.EMERGENCY.value, reason_given=reason, epoch=ks["epoch"],
            acked=len(ks["acked"]), live=len(ks["acked"]) + len(ks["missing"]), complete=ks["complete"],
        )
        text = f":rotating_light: *Emergency halt* triggered by <@{command.user_id}>: {_escape(self.redact(request.reason))}"
        if held:  # the halt holds all the same
            details.update(held=held)
            text += f"\n:warning: {_escape(held)}"
        return slack_answer(text, _progress(ks), in_channel=True)

    def _await_halt(self, before: int, deadline: float) -> dict[str, Any]:
        """The kill switch's status once this trigger's halt is complete, or at ``deadline``
        (Slack's patience): each ask waits only for the time left."""
        while True:
            ks = self._status(deadline)
            if "unknown" in ks or (ks["epoch"] > before and ks["complete"]) or self._clock() >= deadline:
                return ks  # triggered all the same (the board tripped): what is known
            time.sleep(max(0.0, min(_POLL_S, deadline - self._clock())))

    # -- flatten ------------------------------------------------------------------------------

    def _flatten(
        self, command: SlashCommand, request: PanicRequest, details: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        what = ", ".join(request.vaults) if request.vaults else "all"
        details.update(vaults=list(request.vaults) if request.vaults else "all")
        state = self._status(deadline)["state"]  # the kill switch checks it again when told to flatten
        if state not in _HALTED:
            raise RequestError("refused", f"flatten only while halted: the kill switch is {state}; halt first with "
                                          f"`{self.settings.command} <reason>`")
        vote = self.rule.vote(request.vaults, command.user_id, command.user_name)
        again = f"`{self.settings.command} flatten {what}`"
        if vote.outcome is VoteOutcome.SAME_USER:
            details.update(outcome="pending", reason="the same user asked again: another allowed user must confirm")
            return slack_answer(f":hourglass: You already asked. A *different* allowed user must run {again} "
                                f"within {vote.left_s:.0f} s to confirm.")
        if vote.outcome is VoteOutcome.PENDING:
            expired = ""
            if vote.first is not None:
                expired = f" (the request of <@{vote.first[0]}> expired: not confirmed within {self.rule.window_s:g} s)"
                details.update(expired_request_of=vote.first[0])
            details.update(outcome="pending", reason="waiting for a second allowed user")
            return slack_answer(
                f":warning: <@{command.user_id}> asks to *flatten {_escape(what)}*{expired}. Another allowed user "
                f"must run {again} within {self.rule.window_s:g} s to confirm.", in_channel=True,
            )
        assert vote.first is not None
        first_id, first_name = vote.first
        details.update(first_user_id=first_id, first_user_name=first_name)
        operator = f"slack:{first_name or first_id}+{command.user_name or command.user_id}"[:MAX_OPERATOR_CHARS]
        reason = self.redact(f"Slack {command.command} flatten {what}: asked by {first_name} ({first_id}), "
                             f"confirmed by {command.user_name} ({command.user_id})")[:REASON_LIMIT]
        details.update(operator=operator)
        out = self.commands.flatten(FlattenArgs(vaults=request.vaults, operator=operator, reason=reason),
                                    timeout_s=max(deadline - self._clock(), _MIN_FLATTEN_ASK_S))
        details.update(outcome="accepted", flatten_id=out.get("flatten_id"))
        flattened = out.get("vaults") or []
        return slack_answer(
            f":rotating_light: *Flatten* `{out.get('flatten_id')}` of {len(flattened)} vaults started: asked by "
            f"<@{first_id}>, confirmed by <@{command.user_id}>.",
            "The kill switch is REDUCING: only exposure-reducing trades pass; it returns to halted when every "
            f"vault reports (`{self.settings.command} status`).", in_channel=True,
        )
