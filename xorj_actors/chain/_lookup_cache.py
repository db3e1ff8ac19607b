"""Reading address lookup tables, and a bounded cache of them (docs/EXECUTION.md, "Address
lookup tables").

Solana has no ``getAddressLookupTable`` method: tables are read with ``getMultipleAccounts``
(base64, at most 100 per call) and decoded here. A cached table is read again when it is older
than ``max_age_s``, when a lookup needs an index past its cached end (it was extended), when a
transaction failed because of it (:meth:`LookupTableCache.after_failure`), and on every use once
it was seen deactivated (so its closing is seen too).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from solders.message import MessageV0
from solders.pubkey import Pubkey

from xorj_actors.chain._budget import solana_call
from xorj_actors.chain._lookup_tables import (
    LoadedAddresses,
    LookupTable,
    LookupTableError,
    LookupTableProblem,
    decode_lookup_table,
    lookup_table_fault,
    resolve_lookups,
    table_keys,
)
from xorj_actors.chain.lookup_settings import LookupTableSettings
from xorj_actors.quotas import Endpoint, Quotas

__all__ = ["AccountFetcher", "LookupTableCache", "RawAccount", "rpc_account_fetcher"]

#: ``getMultipleAccounts``' limit on keys per call.
MAX_ACCOUNTS_PER_CALL = 100


@dataclass(frozen=True, slots=True)
class RawAccount:
    """What a table read needs of an account: its owner and its data."""

    owner: Pubkey
    data: bytes


class AccountFetcher(Protocol):
    """``getMultipleAccounts`` for up to 100 keys: ``(context slot, account or None per key)``."""

    def __call__(self, keys: Sequence[Pubkey]) -> Awaitable[tuple[int, Sequence[RawAccount | None]]]: ...


def rpc_account_fetcher(client: Any, commitment: str = "confirmed", quotas: Quotas | None = None) -> AccountFetcher:
    """An :class:`AccountFetcher` over solana-py's ``AsyncClient`` (base64 encoding), each call
    within the ``rpc_read`` budget of ``quotas`` (None: unbudgeted)."""
    from solana.rpc.commitment import Commitment

    async def fetch(keys: Sequence[Pubkey]) -> tuple[int, Sequence[RawAccount | None]]:
        resp = await solana_call(
            quotas,
            Endpoint.RPC_READ,
            lambda: client.get_multiple_accounts(list(keys), commitment=Commitment(commitment), encoding="base64"),
        )
        accounts = [None if a is None else RawAccount(a.owner, bytes(a.data)) for a in resp.value]
        return resp.context.slot, accounts

    return fetch


class LookupTableCache:
    """Tables by address, least recently used first out; all methods run on one event loop."""

    def __init__(
        self,
        fetch: AccountFetcher,
        settings: LookupTableSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or LookupTableSettings()
        self.settings.validate()
        self._fetch = fetch
        self._clock = clock
        self._tables: OrderedDict[Pubkey, tuple[float, LookupTable]] = OrderedDict()
        self._lock = asyncio.Lock()
        #: Accounts read, for metrics and tests.
        self.reads = 0

    def __len__(self) -> int:
        return len(self._tables)

    def __contains__(self, key: object) -> bool:
        return key in self._tables

    def cached(self, key: Pubkey) -> LookupTable | None:
        """The cached table, whatever its age (no read)."""
        entry = self._tables.get(key)
        return entry[1] if entry is not None else None

    def forget(self, keys: Sequence[Pubkey]) -> None:
        for key in keys:
            self._tables.pop(key, None)

    def _fresh(self, key: Pubkey) -> LookupTable | None:
        entry = self._tables.get(key)
        if entry is None or self._clock() - entry[0] > self.settings.max_age_s:
            return None
        self._tables.move_to_end(key)
        return entry[1]

    async def tables(self, keys: Sequence[Pubkey]) -> tuple[LookupTable, ...]:
        """The tables at ``keys``, in order: cached when fresh, else read (one call per 100).

        :class:`LookupTableError` when one is missing, not a table, or cannot be read; a
        deactivated table is returned (the compiler leaves it out) but not kept.
        """
        found = {k: t for k in keys if (t := self._fresh(k)) is not None}
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            async with self._lock:  # many trades naming the same tables at once: one read
                found.update({k: t for k in missing if (t := self._fresh(k)) is not None})
                still = [k for k in missing if k not in found]
                if still:
                    found.update(await self._read(still))
        return tuple(found[k] for k in keys)

    async def refresh(self, keys: Sequence[Pubkey]) -> tuple[LookupTable, ...]:
        """Read ``keys`` again whatever the cache holds."""
        self.forget(keys)
        return await self.tables(keys)

    async def resolve(self, message: MessageV0) -> LoadedAddresses:
        """The accounts ``message`` loads through its tables (for the effect check of a
        transaction built elsewhere, such as an Ultra order).

        An index past a table's cached end reads that table again once (it may have been
        extended since); :class:`LookupTableError` if it still does not resolve.
        """
        keys = table_keys(message)
        tables = dict(zip(keys, await self.tables(keys)))
        try:
            return resolve_lookups(message, tables)
        except LookupTableError as exc:
            if exc.problem is not LookupTableProblem.INDEX_OUT_OF_RANGE:
                raise
            tables[exc.key] = (await self.refresh([exc.key]))[0]
            return resolve_lookups(message, tables)

    def after_failure(self, error: Any, keys: Sequence[Pubkey]) -> LookupTableProblem | None:
        """A transaction using tables ``keys`` failed with ``error`` (an RPC error, a simulation's
        ``err``): if a table caused it, forget the tables so the next build reads them again."""
        problem = lookup_table_fault(error)
        if problem is not None:
            self.forget(keys)
        return problem

    async def _read(self, keys: list[Pubkey]) -> dict[Pubkey, LookupTable]:
        read: dict[Pubkey, LookupTable] = {}
        for start in range(0, len(keys), MAX_ACCOUNTS_PER_CALL):
            chunk = keys[start : start + MAX_ACCOUNTS_PER_CALL]
            try:
                slot, accounts = await self._fetch(chunk)
            except Exception as exc:  # noqa: BLE001 - any failure of the read is one named problem
                raise LookupTableError(LookupTableProblem.UNREADABLE, chunk[0], f"{type(exc).__name__}: {exc}") from exc
            if len(accounts) != len(chunk):
                raise LookupTableError(LookupTableProblem.UNREADABLE, chunk[0], "wrong number of accounts")
            self.reads += len(chunk)
            for key, account in zip(chunk, accounts):
                if account is None:
                    self._tables.pop(key, None)
                    raise LookupTableError(LookupTableProblem.NOT_FOUND, key, f"no account at slot {slot}")
                table = decode_lookup_table(key, account.owner, account.data, slot)
                read[key] = table
                if table.deactivated:
                    self._tables.pop(key, None)
                else:
                    self._keep(table)
        return read

    def _keep(self, table: LookupTable) -> None:
        self._tables[table.key] = (self._clock(), table)
        self._tables.move_to_end(table.key)
        while len(self._tables) > self.settings.capacity:
            self._tables.popitem(last=False)
