"""The operators' surface: the debug socket, the ctl client, the signal watcher, the HTTP API."""

from xorj_actors.ops._args import RequestError, VaultAddArgs, VaultRemoveArgs
from xorj_actors.ops._commands import COMMANDS, Commands
from xorj_actors.ops._debug_socket import DebugSocket, DebugSocketServer
from xorj_actors.ops._http import HttpApi, HttpApiServer
from xorj_actors.ops._http_auth import sign_request, signed_headers
from xorj_actors.ops._slack import slack_headers, slack_signature
from xorj_actors.ops._signals import HANDLED_SIGNALS, SignalWatcher, block_signals
from xorj_actors.ops._trade_window import TRADE_WINDOW_S, TradeWindow
from xorj_actors.ops.settings import DebugSocketSettings, HttpSettings, SlackSettings

__all__ = [
    "COMMANDS",
    "HANDLED_SIGNALS",
    "Commands",
    "DebugSocket",
    "DebugSocketServer",
    "DebugSocketSettings",
    "HttpApi",
    "HttpApiServer",
    "HttpSettings",
    "RequestError",
    "SignalWatcher",
    "SlackSettings",
    "TRADE_WINDOW_S",
    "TradeWindow",
    "VaultAddArgs",
    "VaultRemoveArgs",
    "block_signals",
    "sign_request",
    "signed_headers",
    "slack_headers",
    "slack_signature",
]
