"""Adversarial routes on command: the quote service serves routes the engine's checks must refuse.

``POST {quote}/admin/route-fault {"mode": "<mode>", "count": n}`` (``"mode": null`` clears it)
makes the next ``n`` routes bad in one way each. The table below names, per mode, the check of
:mod:`xorj_actors.execution` that refuses it and its reason (tests/localnet/test_localnet_jupiter.py
proves each, and that nothing moved). See docs/LOCALNET.md, "Adversarial routes".
"""

from __future__ import annotations

import enum
import hashlib
import struct
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import TokenAccount

from xorj_actors.chain import LOOKUP_TABLE_PROGRAM_ID, LookupTable
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID
from xorj_actors.localnet.jupiter_desk import (
    NATIVE_MINT,
    approve_ix,
    close_account_ix,
    create_ata_ix,
    set_owner_ix,
    sync_native_ix,
    system_transfer_ix,
    transfer_ix,
)
from xorj_actors.localnet.jupiter_swap import QuoteRefused
from xorj_actors.programs import JUPITER_V6_PROGRAM_ID

__all__ = ["EXPECTED_REASON", "RouteFault", "RouteFaults", "STRANGER", "SWAP_FAULTS", "ULTRA_FAULTS"]

#: Whoever a bad route sends things to.
STRANGER = Pubkey.from_string("Stranger11111111111111111111111111111111111")
_OVERSPEND_LAMPORTS = 2_000_000


class RouteFault(enum.StrEnum):
    """The bad routes the service can serve."""

    FOREIGN_TRANSFER = "foreign_transfer"
    APPROVAL_LEFT = "approval_left"
    SET_AUTHORITY = "set_authority"
    CLOSE_TO_STRANGER = "close_to_stranger"
    SOL_OVERSPEND = "sol_overspend"
    OUTPUT_ELSEWHERE = "output_elsewhere"
    PROGRAM_NOT_ALLOWED = "program_not_allowed"
    TABLE_MISMATCH = "table_mismatch"
    AGGREGATOR_AMOUNTS = "aggregator_amounts"
    #: Not a bad route: Ultra's ``/order`` finds none ("Failed to get quotes"), the Swap API does.
    ULTRA_NO_ROUTE = "ultra_no_route"
    #: ``/execute`` answers a gateway's 500 without a code, and lands nothing.
    EXECUTE_SILENT = "execute_silent"
    #: ``/execute`` lands the transaction, then answers a gateway's 500 without a code.
    EXECUTE_LANDS_SILENT = "execute_lands_silent"


#: The modes that spoil a Swap API route, and those that act on Ultra's orders.
ULTRA_FAULTS: tuple[RouteFault, ...] = (
    RouteFault.TABLE_MISMATCH,
    RouteFault.ULTRA_NO_ROUTE,
    RouteFault.EXECUTE_SILENT,
    RouteFault.EXECUTE_LANDS_SILENT,
)
SWAP_FAULTS: tuple[RouteFault, ...] = tuple(m for m in RouteFault if m not in ULTRA_FAULTS)


#: The reason (``RouteRefusalReason`` value) each mode is refused with, and by which check.
EXPECTED_REASON: dict[RouteFault, tuple[str, str]] = {
    RouteFault.FOREIGN_TRANSFER: ("effects", "other_account_changed"),
    RouteFault.APPROVAL_LEFT: ("effects", "delegate_changed"),
    RouteFault.SET_AUTHORITY: ("effects", "owner_changed"),
    RouteFault.CLOSE_TO_STRANGER: ("effects", "account_closed"),
    RouteFault.SOL_OVERSPEND: ("effects", "sol_overspend"),
    RouteFault.OUTPUT_ELSEWHERE: ("effects", "output_short"),
    RouteFault.PROGRAM_NOT_ALLOWED: ("allowlist", "program_not_allowed"),
    RouteFault.TABLE_MISMATCH: ("allowlist", "ata_for_another_owner"),
    RouteFault.AGGREGATOR_AMOUNTS: ("decode", "aggregator_amount_mismatch"),
}


def _aggregator_route(wallet: Pubkey, source: Pubkey, dest: Pubkey, out_mint: Pubkey, in_amount: int, out_amount: int, slippage: int) -> Instruction:
    """A v6 ``route`` instruction (layout: xorj_actors/execution/_jupiter.py) with one plan step."""
    discriminator = hashlib.sha256(b"global:route").digest()[:8]
    step = bytes([0, 100, 0, 1])  # a variant without fields, 100 %, input index 0, output index 1
    data = discriminator + struct.pack("<I", 1) + step + struct.pack("<QQHB", in_amount, out_amount, slippage, 0)
    metas = [
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
        AccountMeta(wallet, True, False),
        AccountMeta(source, False, True),
        AccountMeta(dest, False, True),
        AccountMeta(JUPITER_V6_PROGRAM_ID, False, False),  # destination_token_account: absent
        AccountMeta(out_mint, False, False),
        AccountMeta(JUPITER_V6_PROGRAM_ID, False, False),  # platform_fee_account: absent
    ]
    return Instruction(JUPITER_V6_PROGRAM_ID, data, metas)


class RouteFaults:
    """The current fault mode and how many more routes it spoils."""

    def __init__(self) -> None:
        self.mode: RouteFault | None = None
        self.remaining = 0
        #: Orders an /execute fault spoilt, and how (every repeat answers alike).
        self._silenced: dict[str, RouteFault] = {}

    def set(self, mode: Any, count: Any = 1) -> dict[str, Any]:
        """Serve the next ``count`` routes bad in ``mode``'s way; ``None`` clears. Bad input changes nothing."""
        if mode is not None:
            try:
                mode = RouteFault(mode)
            except ValueError:
                raise QuoteRefused("INVALID_REQUEST", f"mode: one of {', '.join(RouteFault)}") from None
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
            raise QuoteRefused("INVALID_REQUEST", "count: an integer between 1 and 1000000")
        self.mode, self.remaining = mode, (count if mode is not None else 0)
        return {"mode": None if mode is None else mode.value, "count": self.remaining}

    def _take(self, *modes: RouteFault) -> RouteFault | None:
        if self.mode is None or self.mode not in modes:
            return None
        mode = self.mode
        self.remaining -= 1
        if self.remaining <= 0:
            self.mode = None
        return mode

    # -- the Swap API ------------------------------------------------------------------------

    def apply(self, api: Any, wallet: Pubkey, q: Any, built: dict[str, Any]) -> dict[str, Any]:
        """Spoil a Swap API route (``built``: setup, swap, cleanup, tables) if a mode is on."""
        mode = self._take(*SWAP_FAULTS)
        if mode is None:
            return built
        desk = api.desk
        setup: list[Instruction] = list(built["setup"])
        ata_in = get_associated_token_address(wallet, q.input_mint)
        ata_out = get_associated_token_address(wallet, q.output_mint)
        swap, cleanup = built["swap"], built["cleanup"]
        if mode is RouteFault.FOREIGN_TRANSFER:
            victim, mint = self._foreign(desk, wallet, q)
            setup.append(transfer_ix(victim, mint, desk.mm_account(mint), wallet, 1, desk.decimals(mint)))
        elif mode is RouteFault.APPROVAL_LEFT:
            setup.append(approve_ix(ata_in, STRANGER, wallet, 1))
        elif mode is RouteFault.SET_AUTHORITY:
            if cleanup is not None:
                raise QuoteRefused("INVALID_REQUEST", "fault set_authority: ask for a route without SOL legs")
            cleanup = set_owner_ix(ata_in, wallet, STRANGER)  # after the payment: the input account handed over
        elif mode is RouteFault.CLOSE_TO_STRANGER:
            empty = self._empty_account(desk, wallet, q)
            setup += [create_ata_ix(wallet, wallet, empty[1]), close_account_ix(empty[0], STRANGER, wallet)]
        elif mode is RouteFault.SOL_OVERSPEND:
            wsol = get_associated_token_address(wallet, NATIVE_MINT)
            setup += [
                create_ata_ix(wallet, wallet, NATIVE_MINT),
                system_transfer_ix(wallet, wsol, _OVERSPEND_LAMPORTS),
                sync_native_ix(wsol),
                transfer_ix(wsol, NATIVE_MINT, desk.mm_account(NATIVE_MINT), wallet, _OVERSPEND_LAMPORTS, 9),
            ]
            cleanup = cleanup or close_account_ix(wsol, wallet, wallet)
        elif mode is RouteFault.OUTPUT_ELSEWHERE:
            leg = q.legs(desk)[-1]
            escrow = desk.escrow(wallet, leg.mint)
            setup[-1] = transfer_ix(escrow, leg.mint, desk.mm_account(leg.mint), desk.multisig(wallet), leg.amount, leg.decimals, [wallet])
        elif mode is RouteFault.PROGRAM_NOT_ALLOWED:
            setup.append(Instruction(LOOKUP_TABLE_PROGRAM_ID, bytes([1, 0, 0, 0]), [AccountMeta(wallet, True, True)]))
        elif mode is RouteFault.AGGREGATOR_AMOUNTS:
            # What the quote says, but selling one more unit than quoted: refused at decoding.
            swap = _aggregator_route(wallet, ata_in, ata_out, q.output_mint, q.route.in_amount + 1, q.route.out_amount, q.slippage_bps)
        return {**built, "setup": setup, "swap": swap, "cleanup": cleanup}

    @staticmethod
    def _foreign(desk: Any, wallet: Pubkey, q: Any) -> tuple[Pubkey, Pubkey]:
        """A token account the wallet controls that is not the trade's, with a balance: its holding
        of a third token (with a key per vault, no other vault's account is the wallet's to move)."""
        svm = desk.chain.svm
        mine = {get_associated_token_address(wallet, m) for m in q.path}
        candidates = [get_associated_token_address(wallet, t.mint) for t in desk.genesis.tokens]
        for key in candidates:
            account = svm.get_account(key)
            if key in mine or account is None or len(account.data) != 165:
                continue
            token = TokenAccount.from_bytes(bytes(account.data))
            if token.amount > 0:
                return key, token.mint
        raise QuoteRefused("INVALID_REQUEST", "fault foreign_transfer: the wallet holds no other token account with a balance")

    @staticmethod
    def _empty_account(desk: Any, wallet: Pubkey, q: Any) -> tuple[Pubkey, Pubkey]:
        """An associated account of the wallet outside the trade (preferably one that exists, empty)."""
        svm = desk.chain.svm
        others = [t.mint for t in desk.genesis.tokens if t.mint not in q.path]
        absent = None
        for mint in others:
            key = get_associated_token_address(wallet, mint)
            account = svm.get_account(key)
            if account is None:
                absent = absent or (key, mint)
            elif TokenAccount.from_bytes(bytes(account.data)).amount == 0:
                return key, mint
        if absent is None:
            raise QuoteRefused("INVALID_REQUEST", "fault close_to_stranger: every other token account of the wallet holds tokens")
        return absent  # created by the route, its rent paid to the stranger: refused as SOL spent

    # -- Ultra -------------------------------------------------------------------------------

    def execute_fault(self, request_id: str) -> str | None:
        """EXECUTE_SILENT or EXECUTE_LANDS_SILENT for this ``/execute`` call: ``count`` counts
        orders, and an order once spoilt stays spoilt for every repeat."""
        sticky = self._silenced.get(request_id)
        if sticky is not None:
            return sticky.value
        mode = self._take(RouteFault.EXECUTE_SILENT, RouteFault.EXECUTE_LANDS_SILENT)
        if mode is None:
            return None
        if len(self._silenced) >= 10_000:
            self._silenced.clear()
        self._silenced[request_id] = mode
        return mode.value

    def ultra_no_route(self) -> bool:
        """ULTRA_NO_ROUTE: this order finds no route."""
        return self._take(RouteFault.ULTRA_NO_ROUTE) is not None

    def ultra_tables(self, ultra: Any, taker: Pubkey, out_mint: Pubkey, tables: list[LookupTable]) -> list[LookupTable]:
        """TABLE_MISMATCH: compile the order against a table that, on chain, holds the market
        maker's account where the order says the taker's output account is."""
        if self._take(RouteFault.TABLE_MISMATCH) is None:
            return tables
        desk = ultra.desk
        key = Pubkey(hashlib.sha256(b"xorj-localnet-fault-table:" + bytes(taker)).digest())
        on_chain = desk.tables.place(key, [desk.mm_account(out_mint)])
        claimed = LookupTable(
            key=key,
            addresses=(get_associated_token_address(taker, out_mint),),
            authority=None,
            deactivation_slot=on_chain.deactivation_slot,
            last_extended_slot=0,
            last_extended_slot_start_index=1,
        )
        return [claimed, *tables]
