"""What a forger holding the proof key does to a proof: edit an audit entry consistently."""

from __future__ import annotations

import copy
from typing import Any

from xorj_actors.audit import chain_hash, entry_bytes


def rehash(entry: dict[str, Any]) -> None:
    """Recompute ``entry``'s hash from its (edited) contents."""
    entry["hash"] = chain_hash(entry["prev_hash"], entry_bytes(
        entry["id"], entry["sequence"], entry["timestamp"], entry["event_type"], entry["severity"], entry["actor"],
        entry["correlation_id"], entry["details"]))


def edited_intent(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its intent's ``amount_in`` 5 made 6 consistently (entry, its hash, the intent
    part); unsigned."""
    forged = copy.deepcopy(doc)
    entry = forged["audit"]["entries"][0]
    entry["details"] = entry["details"].replace('"amount_in":5', '"amount_in":6')
    rehash(entry)
    forged["intent"]["amount_in"] = 6
    return forged
