"""Lookup tables the localnet serves: made through the real program, or placed with given contents.

Every function runs on the chain's thread (the :class:`~xorj_actors.localnet.runner.Localnet`
controls and the ``/admin`` actions call them there). A table made through the program is
usable from the next slot on, as on mainnet: advance the clock before a transaction uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj_actors.chain import ACTIVE_TABLE, LookupTable, decode_lookup_table
from xorj_actors.localnet.chain import Chain
from xorj_actors.localnet.lookup_tables import (
    close_lookup_table,
    create_lookup_table,
    deactivate_lookup_table,
    extend_lookup_table,
    place_table,
    table_transaction,
)

__all__ = ["EXTEND_CHUNK", "TableAdmin"]

#: Addresses per ``ExtendLookupTable`` transaction: 32 bytes each, well inside one packet.
EXTEND_CHUNK = 20
_AUTHORITY_LAMPORTS = 10 * 10**9


class TableAdmin:
    """The localnet's lookup tables and the authorities that made them."""

    def __init__(self, chain: Chain, seed: str) -> None:
        self.chain = chain
        #: The default authority of tables the localnet creates (a public development key).
        self.authority = Keypair.from_seed(hashlib.sha256(f"{seed}:lookup-table-authority".encode()).digest())
        self._authorities: dict[Pubkey, Keypair] = {}

    def _fund(self, authority: Keypair) -> None:
        if (self.chain.svm.get_balance(authority.pubkey()) or 0) < _AUTHORITY_LAMPORTS // 2:
            self.chain.airdrop(authority.pubkey(), _AUTHORITY_LAMPORTS)

    def _send(self, authority: Keypair, instructions: list[Instruction]) -> None:
        _, blockhash, _ = self.chain.latest_blockhash("processed")
        self.chain.land(table_transaction(authority, instructions, blockhash), verified=True)  # our own keys

    def create(self, addresses: Sequence[Pubkey] = (), authority: Keypair | None = None) -> Pubkey:
        """Create a table through the program (derived from the previous slot) and extend it with
        ``addresses``; returns its address. The chain must be past slot 0 (a recent slot is needed)."""
        authority = authority or self.authority
        if self.chain.slot() < 1:
            self.chain.advance(1)
        self._fund(authority)
        ix, table = create_lookup_table(authority.pubkey(), authority.pubkey(), self.chain.slot() - 1)
        self._send(authority, [ix])
        self._authorities[table] = authority
        self.extend(table, addresses)
        return table

    def _authority_of(self, table: Pubkey) -> Keypair:
        authority = self._authorities.get(table)
        if authority is None:
            raise ValueError(f"table {table} was not created by the localnet")
        return authority

    def extend(self, table: Pubkey, addresses: Sequence[Pubkey]) -> None:
        """Append ``addresses`` through the program, in transactions of :data:`EXTEND_CHUNK`."""
        authority = self._authority_of(table)
        for start in range(0, len(addresses), EXTEND_CHUNK):
            chunk = list(addresses[start : start + EXTEND_CHUNK])
            self._send(authority, [extend_lookup_table(table, authority.pubkey(), authority.pubkey(), chunk)])

    def deactivate(self, table: Pubkey) -> None:
        authority = self._authority_of(table)
        self._send(authority, [deactivate_lookup_table(table, authority.pubkey())])

    def close(self, table: Pubkey) -> None:
        """Close a table past its cool-down (the program refuses earlier); the rent goes back."""
        authority = self._authority_of(table)
        self._send(authority, [close_lookup_table(table, authority.pubkey(), authority.pubkey())])
        del self._authorities[table]

    def place(
        self,
        key: Pubkey,
        addresses: Sequence[Pubkey],
        *,
        authority: Pubkey | None = None,
        deactivation_slot: int = ACTIVE_TABLE,
        last_extended_slot: int = 0,
    ) -> LookupTable:
        """Write a table account at ``key`` holding ``addresses`` (a recorded mainnet table),
        every address usable at once (as a table extended long ago: the start index of its last
        extension is its length)."""
        table = LookupTable(
            key=key,
            addresses=tuple(addresses),
            authority=authority,
            deactivation_slot=deactivation_slot,
            last_extended_slot=last_extended_slot,
            last_extended_slot_start_index=len(addresses),
        )
        place_table(self.chain.svm, table)
        return table

    def read(self, key: Pubkey) -> LookupTable | None:
        """The table at ``key`` as the chain holds it now, or ``None``."""
        account = self.chain.svm.get_account(key)
        if account is None:
            return None
        return decode_lookup_table(key, account.owner, bytes(account.data), self.chain.slot())
