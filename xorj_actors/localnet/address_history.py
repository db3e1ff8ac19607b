"""``getSignaturesForAddress``: the landed transactions that name an account, newest first.

As Agave answers it: ``limit`` (1..1000, default 1000), ``before`` and ``until`` (signatures,
both exclusive), ``commitment`` (``confirmed`` or ``finalized``; not ``processed``), each item
``{signature, slot, err, memo, blockTime, confirmationStatus}``. An account counts when it is
among the message's keys or its lookup tables' loaded addresses. Only the localnet's own history
(``history_slots``) is searched.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AddressHistory"]

#: Agave's largest ``limit``.
MAX_LIMIT = 1000


class AddressHistory:
    """A mix-in of :class:`~xorj_actors.localnet.rpc.JsonRpc` (its ``chain``)."""

    chain: Any

    def m_getSignaturesForAddress(self, params: list[Any]) -> list[dict[str, Any]]:
        from xorj_actors.localnet.rpc import commitment_of, config_at, invalid_params, param_at, parse_pubkey, parse_signature

        address = parse_pubkey(param_at(params, 0))
        config = config_at(params, 1)
        commitment = commitment_of(config)
        if commitment == "processed":
            raise invalid_params("Method does not support commitment below `confirmed`")
        limit = config.get("limit", MAX_LIMIT)
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            raise invalid_params(f"Invalid limit; max {MAX_LIMIT}")
        before = parse_signature(config["before"]) if config.get("before") is not None else None
        until = parse_signature(config["until"]) if config.get("until") is not None else None
        out: list[dict[str, Any]] = []
        started = before is None
        for landed in reversed(self.chain._landing_order):  # landing order: slots ascending
            if not started:
                started = landed.signature == before
                continue
            if landed.signature == until or len(out) == limit:
                break
            if not self.chain.slot_reached(landed.slot, commitment):
                continue
            loaded = landed.loaded
            if address not in landed.tx.message.account_keys and address not in (*loaded.writable, *loaded.readonly):
                continue
            _, status = self.chain.status_of(landed)
            out.append({
                "signature": str(landed.signature), "slot": landed.slot, "err": landed.err_json, "memo": None,
                "blockTime": self.chain.block_time(landed.slot), "confirmationStatus": status,
            })
        return out
