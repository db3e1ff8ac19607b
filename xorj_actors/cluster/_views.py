"""What an operator sees of the cluster: ``ctl cluster`` and the cluster halt in ``ctl status``.

The snapshots read NATS (the members, the halt record, the acks of its epoch) on the node's loop;
when NATS does not answer they say so, with the halt record as this node last saw it. The
renderers turn the JSON answers into the ``ctl`` tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xorj_actors.cluster._halt import HaltBoard
from xorj_actors.cluster._halt_report import halt_report
from xorj_actors.cluster._leases import NodeIdentity
from xorj_actors.cluster._members import Membership
from xorj_actors.cluster._membership import Liveness, liveness
from xorj_actors.cluster._records import HaltAck, HaltRecord, MemberRecord
from xorj_actors.cluster._store import ClusterStore
from xorj_actors.cluster._vault_set import VaultSetFollower

__all__ = ["ClusterViews", "render_cluster", "render_cluster_halt"]


def _record(record: HaltRecord) -> dict[str, Any]:
    proof = record.proof
    return {"epoch": record.epoch, "state": record.state.value, "mode": record.mode.value,
            "reason": record.reason, "node_id": record.node_id, "at": record.at,
            # As written in NATS, not verified here: each node's kill switch verifies it.
            "proof": None if proof is None else {
                "cluster_epoch": proof.cluster_epoch, "key_ids": [k for k, _ in proof.authorisations],
                "operator": proof.operator, "local_epoch": proof.local_epoch, "timestamp": proof.timestamp,
            },
            "proof_problem": record.proof_problem or None}


def _ack(ack: HaltAck | None) -> dict[str, Any] | None:
    return None if ack is None else {"epoch": ack.epoch, "acked": ack.acked, "missing": list(ack.missing), "at": ack.at}


class ClusterViews:
    """The snapshots behind ``ctl cluster`` and ``ctl status`` (coroutines on the node's loop)."""

    def __init__(
        self,
        store: ClusterStore,
        board: HaltBoard,
        membership: Membership,
        identity: NodeIdentity,
        last_record: Callable[[], HaltRecord],
        vault_set: Callable[[], VaultSetFollower | None] = lambda: None,
    ) -> None:
        self._store = store
        self._board = board
        self._membership = membership
        self._me = identity
        self._last_record = last_record
        self._vault_set = vault_set

    def _nats(self) -> dict[str, Any]:
        contact = self._store.last_contact
        return {
            "url": self._store.settings.nats_url,
            "connected": self._store.connected,
            "last_contact_s": None if contact is None else round(time.monotonic() - contact, 3),
        }

    def unavailable(self, error: str) -> dict[str, Any]:
        """What both views answer when NATS does not: the record as last seen, marked stale."""
        return {"node_id": self._me.node_id, "nats": self._nats(), "error": error, "stale": True,
                "halt": _record(self._last_record())}

    async def _read(self) -> tuple[tuple[MemberRecord, ...], HaltRecord, dict[str, HaltAck]]:
        members = await self._membership.members()
        record, _ = await self._board.current()
        acks = await self._board.acks(record.epoch) if record.epoch else {}
        return members, record, acks

    async def cluster(self) -> dict[str, Any]:
        """``ctl cluster``: every node (alive, last heartbeat, vaults owned, kill switch, its ack
        of the current epoch) and the halt record."""
        members, record, acks = await self._read()
        now = time.time()
        dead_after = self._store.settings.dead_after_s
        nodes = [
            {
                "node_id": m.node_id,
                "this_node": m.node_id == self._me.node_id and m.incarnation == self._me.incarnation,
                "alive": liveness(m, now, dead_after).value,
                "incarnation": m.incarnation,
                "started_at": m.started_at,
                "heartbeat_at": m.heartbeat_at,
                "heartbeat_age_s": round(max(0.0, now - m.heartbeat_at), 3),
                "owned_vaults": m.owned_vaults,
                "kill_switch": m.kill_switch.value,
                "halt_ack": _ack(acks.get(m.node_id)),
            }
            for m in members
        ]
        return {"node_id": self._me.node_id, "nats": self._nats(), "halt": _record(record), "nodes": nodes,
                "vaults": await self._vaults(sum(m.owned_vaults for m in members if liveness(m, now, dead_after) is Liveness.ALIVE))}

    async def _vaults(self, leased: int) -> dict[str, Any] | None:
        """The cluster's vault set (``ctl cluster``): how many, its revision and last change."""
        follower = self._vault_set()
        if follower is None:
            return None
        record, revision = await follower.board.current()
        if record is None:
            return None
        return {"count": len(record.vaults), "revision": revision, "change": record.change, "node_id": record.node_id,
                "at": record.at, "leased_by_live_nodes": leased}

    async def halt(self) -> dict[str, Any]:
        """``ctl status``'s cluster section: the halt epoch and, per node, complete, incomplete
        (with the missing actors), waiting or not answering within ``halt_ack_deadline_s``."""
        members, record, acks = await self._read()
        out: dict[str, Any] = {"node_id": self._me.node_id, "nats": self._nats(), "halt": _record(record)}
        if record.epoch == 0:
            return {**out, "complete": None, "nodes": [], "not_answering": []}
        settings = self._store.settings
        # A node is expected to answer if it was alive when the halt opened, or has beaten since.
        expected = [m.node_id for m in members if m.heartbeat_at >= record.at - settings.dead_after_s]
        report = halt_report(record, acks, expected, time.time(), settings.halt_ack_deadline_s)
        nodes = [{"node_id": n.node_id, "status": n.status.value, **(_ack(n.ack) or {})} for n in report.nodes]
        return {
            **out,
            "complete": report.complete,
            "nodes": nodes,
            "not_answering": [n["node_id"] for n in nodes if n["status"] == "not_answering"],
        }


def _ago(at: float) -> str:
    return f"{max(0.0, time.time() - at):.1f} s ago"


def _halt_line(halt: dict[str, Any]) -> str:
    if halt["epoch"] == 0:
        return "no cluster halt ever opened"
    what = "HALTED" if halt["state"] == "halted" else "clear"
    return f"epoch {halt['epoch']} {what} ({halt['mode']}, by node {halt['node_id'] or '-'}, {_ago(halt['at'])}): {halt['reason']}"


def render_cluster(r: dict[str, Any]) -> str:
    """``ctl cluster`` as a table."""
    if r.get("error"):
        return f"NATS NOT ANSWERING ({r['error']}); halt as last seen: {_halt_line(r['halt'])}"
    rows = []
    for n in r["nodes"]:
        ack = n["halt_ack"]
        ack_text = "-" if ack is None else ("complete" if not ack["missing"] else f"{len(ack['missing'])} missing")
        if ack is not None:
            ack_text = f"{ack_text} ({ack['acked']} acked)"
        rows.append([
            n["node_id"] + (" *" if n["this_node"] else ""), n["alive"], f"{n['heartbeat_age_s']:.1f} s ago",
            str(n["owned_vaults"]), n["kill_switch"], ack_text,
        ])
    header = ["NODE", "ALIVE", "HEARTBEAT", "VAULTS", "KILL SWITCH", "HALT ACK"]
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    vaults = r.get("vaults")
    if vaults:
        lines.append(f"vaults        {vaults['count']} in the vault set (revision {vaults['revision']}: {vaults['change']}, "
                     f"by node {vaults['node_id']}, {_ago(vaults['at'])}); {vaults['leased_by_live_nodes']} leased by live nodes")
    return "\n".join([*lines, f"halt          {_halt_line(r['halt'])}", "(* this node)"])


def render_cluster_halt(c: dict[str, Any]) -> list[str]:
    """``ctl status``'s lines for the cluster halt."""
    lines = [f"cluster halt  {_halt_line(c['halt'])}" + (" (STALE: NATS not answering)" if c.get("stale") else "")]
    if c.get("error"):
        return [*lines, f"cluster       {c['error']}"]
    if c["halt"]["epoch"] and c["halt"]["state"] == "halted":
        done = [n["node_id"] for n in c["nodes"] if n["status"] == "complete"]
        lines.append(f"              {'COMPLETE' if c['complete'] else 'not complete'}: {len(done)} of {len(c['nodes'])} node(s) complete")
        for n in c["nodes"]:
            if n["status"] == "incomplete":
                lines.append(f"              node {n['node_id']}: missing {', '.join(n['missing'][:20])}")
            elif n["status"] != "complete":
                lines.append(f"              node {n['node_id']}: {n['status'].upper().replace('_', ' ')}")
    return lines
