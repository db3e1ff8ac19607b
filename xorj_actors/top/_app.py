"""The live view's screen (textual): panels from :mod:`._render`, keys, confirmations.

Every request runs on a worker thread, never on the screen's loop: a slow engine makes the view
stale, not frozen. Nothing destructive happens on one key: ``h`` and ``g`` open a prompt where
the operator types :data:`CONFIRM_WORD`; anything else changes nothing.
"""

from __future__ import annotations

import contextlib
import getpass
from typing import Any, ClassVar, Final

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from xorj_actors.ops.ctl import CtlError
from xorj_actors.top._model import Connection, ViewModel
from xorj_actors.top._poll import Poller
from xorj_actors.top._render import (
    TREE_COLUMNS,
    render_breakers,
    render_halt,
    render_header,
    render_nodes,
    render_quotas,
    render_strategy,
    render_trades,
    tree_cells,
)

__all__ = ["CONFIRM_WORD", "TopApp"]

#: What the operator types to confirm a halt (``h`` emergency, ``g`` graceful).
CONFIRM_WORD: Final = "HALT"
_FOLD_KEY: Final = "vaults:fold"


class Prompt(ModalScreen[str | None]):
    """A one-line question; dismissed with the typed text (Enter) or None (Escape)."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    Prompt { align: center middle; }
    Prompt > Vertical { width: 80; height: auto; border: heavy red; padding: 1 2; background: $panel; }
    """

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question, self.placeholder = question, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Input(placeholder=self.placeholder, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class StackScreen(ModalScreen[None]):
    """One actor's details and the live stack of the thread running it, asked again every second."""

    BINDINGS: ClassVar = [Binding("escape,q,s", "close", "close")]
    DEFAULT_CSS = """
    StackScreen > VerticalScroll { border: heavy $accent; background: $panel; }
    """

    def __init__(self, poller: Poller, who: str) -> None:
        super().__init__()
        self.poller, self.who = poller, who

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"asking for {self.who} ...", id="stack")

    def on_mount(self) -> None:
        self._asking = False
        self.tick()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        if not self._asking:  # one request at a time, however slow the engine
            self._asking = True
            self.refresh_stack()

    @work(thread=True, group="stack", exit_on_error=False)
    def refresh_stack(self) -> None:
        args = {"urn": self.who} if self.who.startswith("urn:") else {"name": self.who}
        try:
            text = _actor_text(self.poller.ask("actor", args))
        except (CtlError, OSError, ValueError) as exc:
            text = f"{self.who}: {exc}"
        except (KeyError, TypeError, AttributeError) as exc:
            text = f"{self.who}: unexpected reply: {type(exc).__name__}: {exc}"
        finally:
            self._asking = False
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str) -> None:
        if self.is_attached:  # the answer may come after the screen was closed
            self.query_one("#stack", Static).update(text)

    def action_close(self) -> None:
        self.dismiss(None)


class TopApp(App[None]):
    """``xorj-actors top``."""

    TITLE = "xorj-actors top"
    #: No command palette: every action is a key above, each destructive one confirmed.
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar = [
        Binding("q", "quit", "quit"),
        Binding("h", "halt('emergency')", "halt"),
        Binding("g", "halt('graceful')", "graceful halt"),
        Binding("slash", "filter", "filter"),
        Binding("s", "stack", "stack"),
        Binding("v", "toggle_vaults", "vaults"),
    ]
    DEFAULT_CSS = """
    #header { height: 1; }
    #top { height: auto; max-height: 50%; }
    .column { width: 1fr; height: auto; }
    .panel { border: round $primary; padding: 0 1; height: auto; }
    #tree { height: 1fr; }
    #errors { height: auto; color: $error; }
    #message { height: auto; color: $warning; }
    """

    def __init__(self, poller: Poller, *, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.poller, self.refresh_s = poller, refresh_s
        self.filter_text = ""
        self.vaults_open = False
        self._polling = False

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="top"):
            with Vertical(classes="column"):
                yield Static(id="halt", classes="panel")
                yield Static(id="trades", classes="panel")
            with Vertical(classes="column"):
                yield Static(id="breakers", classes="panel")
                yield Static(id="strategy", classes="panel")
            with Vertical(classes="column"):
                yield Static(id="quotas", classes="panel")
                yield Static(id="nodes", classes="panel")
        yield DataTable(id="tree", cursor_type="row", zebra_stripes=True)
        yield Static(id="errors")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tree", DataTable).add_columns(*TREE_COLUMNS)
        self.show(self.poller.view())
        self.tick()
        self.set_interval(self.refresh_s, self.tick)

    # -- refresh ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Start a refresh unless the last one is still waiting for the engine: never two at once."""
        if not self._polling:
            self._polling = True
            self.poll()

    @work(thread=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        try:
            self.poller.poll()
        finally:
            self._polling = False
        with contextlib.suppress(RuntimeError):  # the app quit meanwhile
            self.call_from_thread(self.redraw)

    def redraw(self) -> None:
        with contextlib.suppress(NoMatches):  # a refresh that lands while the app tears its screen down
            self.show(self.poller.view(vaults_open=self.vaults_open, text=self.filter_text))

    def show(self, vm: ViewModel) -> None:
        lost = None if self.poller.lost_at is None else self.poller.last.at - self.poller.lost_at
        self.query_one("#header", Static).update(render_header(vm, lost_for_s=lost, text=self.filter_text))
        self.query_one("#halt", Static).update(render_halt(vm.halt))
        self.query_one("#trades", Static).update(render_trades(vm.trades))
        self.query_one("#strategy", Static).update(render_strategy(vm.strategy))
        self.query_one("#breakers", Static).update(render_breakers(vm.breakers))
        self.query_one("#quotas", Static).update(render_quotas(vm.quotas))
        nodes = self.query_one("#nodes", Static)
        nodes.update(render_nodes(vm.nodes))
        nodes.display = bool(vm.nodes)
        self._show_tree(vm)
        errors = {k: v for k, v in vm.errors.items() if k != "engine"}
        shown = vm.connection is Connection.CONNECTED and errors
        self.query_one("#errors", Static).update("; ".join(f"{k}: {v}" for k, v in sorted(errors.items())) if shown else "")

    def _show_tree(self, vm: ViewModel) -> None:
        table = self.query_one("#tree", DataTable)
        selected, old_row = self._selected_key(), table.cursor_row
        table.clear()
        index = None
        for i, row in enumerate(vm.tree):
            table.add_row(*tree_cells(row), key=row.key)
            if row.key == selected:
                index = i
        if index is None and vm.tree:  # the row went (the vaults opened or folded): stay where it was
            index = min(old_row, len(vm.tree) - 1)
        if index is not None:
            table.move_cursor(row=index, animate=False, scroll=True)

    def _selected_key(self) -> str | None:
        table = self.query_one("#tree", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    # -- keys ---------------------------------------------------------------------------------

    def action_halt(self, mode: str) -> None:
        question = (f"{mode.upper()} HALT of the engine. Type {CONFIRM_WORD} and press Enter to trigger it;"
                    " Escape cancels.")

        def answered(value: str | None) -> None:
            if value is not None and value.strip() == CONFIRM_WORD:
                self.halt(mode)
            else:
                self.say(f"{mode} halt NOT triggered (not confirmed): nothing changed")

        self.say("")
        self.push_screen(Prompt(question, placeholder=CONFIRM_WORD), answered)

    @work(thread=True, group="halt", exit_on_error=False)
    def halt(self, mode: str) -> None:
        reason = f"operator halt from xorj-actors top by {_user()}"
        try:
            self.poller.ask("halt", {"mode": mode, "reason": reason})
        except (CtlError, OSError, ValueError) as exc:
            self.call_from_thread(self.say, f"{mode} halt FAILED: {exc}")
            return
        self.call_from_thread(self.say, f"{mode} halt triggered; watch the kill switch panel")
        self.call_from_thread(self.tick)

    def action_filter(self) -> None:
        def answered(value: str | None) -> None:
            if value is not None:
                self.filter_text = value.strip()
                self.redraw()

        self.push_screen(Prompt("Filter actors by name, class or state (empty: all)", self.filter_text), answered)

    def action_stack(self) -> None:
        key = self._selected_key()
        if key is None or key == _FOLD_KEY:
            self.say("select an actor first (arrow keys; enter on the vaults line opens them)")
            return
        self.push_screen(StackScreen(self.poller, key))

    def action_toggle_vaults(self) -> None:
        self.vaults_open = not self.vaults_open
        self.redraw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value == _FOLD_KEY or (self.vaults_open and event.row_key.value == _vaults_urn(self)):
            self.action_toggle_vaults()


def _actor_text(a: dict[str, Any]) -> str:
    """The ``actor`` reply: its details, then the stack of the thread running it."""
    head = (f"{a['name']} ({a['class']})  state {a['state']}  mailbox {a['mailbox']}  restarts "
            f"{a['restarts']}  processed {a.get('processed')}  last message {a.get('last_message') or '-'}")
    stack = a.get("stack")
    body = "\n".join(stack) if stack else "(not running a message now: no stack)"
    return f"{head}\n\n{body}\n\n(escape closes)"


def _vaults_urn(app: TopApp) -> Any:
    """The ``vaults`` supervisor's urn in the last tree (Enter on it folds the vaults again)."""
    for a in app.poller.last.replies.get("tree") or ():
        if a.get("name") == "vaults" and a.get("class") == "Supervisor":
            return a["urn"]
    return None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "unknown"
