"""The operators' surface: the debug socket, the ctl client, the signal watcher, the HTTP API."""

from xorj_actors.ops._debug_socket import COMMANDS, DebugSocket, DebugSocketServer
from xorj_actors.ops._http import HttpApi, HttpApiServer, sign_request, signed_headers
from xorj_actors.ops._signals import HANDLED_SIGNALS, SignalWatcher, block_signals
from xorj_actors.ops.settings import DebugSocketSettings, HttpSettings

__all__ = [
    "COMMANDS",
    "HANDLED_SIGNALS",
    "DebugSocket",
    "DebugSocketServer",
    "DebugSocketSettings",
    "HttpApi",
    "HttpApiServer",
    "HttpSettings",
    "SignalWatcher",
    "block_signals",
    "sign_request",
    "signed_headers",
]
