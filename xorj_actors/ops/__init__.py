"""The operators' surface: the debug socket, the ctl client, the signal watcher."""

from xorj_actors.ops._debug_socket import COMMANDS, DebugSocket, DebugSocketServer
from xorj_actors.ops._signals import HANDLED_SIGNALS, SignalWatcher, block_signals

__all__ = ["COMMANDS", "HANDLED_SIGNALS", "DebugSocket", "DebugSocketServer", "SignalWatcher", "block_signals"]
