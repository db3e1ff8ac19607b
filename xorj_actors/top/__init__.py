"""``xorj-actors top``: the operator's live view over the debug socket.

The model (:mod:`._model`, :mod:`._poll`, :mod:`._render`) turns the socket's replies into what
each panel shows and needs no terminal; the screen (``_app``, textual) is imported only by
:func:`main`, so that ``xorj-actors`` and ``ctl`` start without it.
"""

from xorj_actors._lazy import lazy_exports
from xorj_actors.top._cli import add_arguments, main
from xorj_actors.top._model import Connection, ViewModel, build_view, tree_rows
from xorj_actors.top._poll import PANELS, Poller
from xorj_actors.top._render import bar, render_halt, render_header, render_trades, render_trades_reply

__all__ = [
    "CONFIRM_WORD",
    "PANELS",
    "Connection",
    "Poller",
    "TopApp",
    "ViewModel",
    "add_arguments",
    "bar",
    "build_view",
    "main",
    "render_halt",
    "render_header",
    "render_trades",
    "render_trades_reply",
    "tree_rows",
]

#: The screen loads textual: only when asked for.
__getattr__ = lazy_exports(__name__, {"TopApp": "_app", "CONFIRM_WORD": "_app"})
