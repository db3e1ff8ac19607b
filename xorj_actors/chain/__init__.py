"""The chain: the RPC gateway and the Confirmation actor (WebSocket slot and signature
subscriptions). Placeholders in the tree until the execution issue lands."""

from __future__ import annotations

from xorj_actors.kill_switch import Participant

__all__ = ["Confirmation", "RpcGateway"]


class RpcGateway(Participant):
    """Will own the JSON-RPC client; restarting it restarts Confirmation (rest_for_one)."""


class Confirmation(Participant):
    """Will track WebSocket slot and signature subscriptions; in-flight work survives a graceful halt."""
