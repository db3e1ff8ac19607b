"""The route checks of one attempt, before it is signed: allowlist, aggregator decoding, effects.

The lookup tables a route names are read through a :class:`LookupTableCache` over the
executor's own RPC client; the effects are read by an :class:`EffectReader` (on the same
client's session). A refusal is recorded in the audit log with its named reason and
raised as the trade's :class:`TradeError`; nothing after it (the gate again, the signature) runs.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from solders.message import MessageV0
from solders.pubkey import Pubkey

from xorj_actors.audit import Severity
from xorj_actors.chain import (
    CompileRefusal,
    LookupTable,
    LookupTableCache,
    LookupTableError,
    LookupTableProblem,
    compile_v0,
)
from xorj_actors.execution._allowlist import (
    ProgramAllowlist,
    RouteParties,
    associated_account,
    check_allowlist,
    fee_bound,
    resolve_message,
    tip_lamports,
)
from xorj_actors.execution._effects import AccountState, EffectTerms, check_effects
from xorj_actors.execution._clients import ChainClient
from xorj_actors.execution._effects_io import EffectReader, SimulatedEffects
from xorj_actors.execution._errors import ErrorClass, TradeError, classify_exception
from xorj_actors.execution._jupiter import RouteTerms, check_aggregator
from xorj_actors.execution._money import MoneyCheck
from xorj_actors.execution._refusal import RouteRefusal, RouteRefusalReason
from xorj_actors.execution._transaction import unsigned_transaction
from xorj_actors.jupiter import TradeApi
from xorj_actors.programs import NATIVE_MINT
from xorj_actors.quotas import Quotas

__all__ = ["BuiltRoute", "RouteChecks", "RouteStage", "RouteVault"]

class RouteStage(enum.StrEnum):
    """Where a route was refused (audit detail)."""

    LOOKUP = "lookup_tables"
    ALLOWLIST = "allowlist"
    DECODE = "aggregator"
    EFFECTS = "effects"


@dataclass(frozen=True, slots=True)
class RouteVault:
    """Who trades, and which of its accounts the trade may touch."""

    parties: RouteParties
    input_mint: Pubkey
    output_mint: Pubkey
    source: Pubkey
    destination: Pubkey

    @property
    def holdings(self) -> frozenset[Pubkey]:
        """The vault's own token accounts for this trade (its wSOL account included)."""
        wsol = associated_account(self.parties.authority, NATIVE_MINT)
        return frozenset({self.source, self.destination, wsol})


class RouteChecks:
    """Lookup tables and the three checks, on the executor's loop."""

    def __init__(self, chain: ChainClient, settings: Any, quotas: Quotas | None = None) -> None:
        """``chain``: the executor's node (its session carries the reads); ``settings``:
        ``[execution]`` (its ``routes`` section and request timeout)."""
        self.settings = settings
        self.quotas = quotas
        self.routes = settings.routes
        self.allowlist = ProgramAllowlist.from_settings(self.routes)
        self.chain = chain
        self.cache = LookupTableCache(chain.account_fetcher(self.routes.effect_commitment))
        self.reader: EffectReader | None = None

    async def open(self) -> None:
        """After the chain client's :meth:`~ChainClient.open` (its session is shared)."""
        self.reader = EffectReader(
            self.chain.url, self.chain.session, commitment=self.routes.effect_commitment,
            timeout_s=self.settings.request_timeout_s, max_attempts=self.routes.effect_read_attempts,
            quotas=self.quotas,
        )

    async def close(self) -> None:
        self.reader = None  # the session is the chain client's to close

    def _reading(self) -> EffectReader:
        assert self.reader is not None, "RouteChecks.open() first"
        return self.reader

    async def last_valid_block_height(self, min_slot: int) -> int:
        """The last valid height of any blockhash the node knew at ``min_slot``."""
        return await self._reading().last_valid_block_height(min_slot)

    async def height_and_states(self, addresses: Sequence[Pubkey]) -> tuple[int, dict[Pubkey, AccountState | None]]:
        """The block height at ``confirmed`` and the accounts at that slot or later."""
        return await self._reading().height_and_states(addresses)

    def allow_tips(self, accounts: Sequence[Pubkey]) -> None:
        """Add the block engine's tip accounts to those a route may pay (and never load from a table)."""
        extra = frozenset(accounts) - self.allowlist.tip_accounts
        if extra:
            self.allowlist = dataclasses.replace(self.allowlist, tip_accounts=self.allowlist.tip_accounts | extra)

    @property
    def static_only(self) -> frozenset[Pubkey]:
        """Accounts never loaded through a table (the tip accounts)."""
        return self.allowlist.tip_accounts

    async def tables(self, keys: Sequence[Pubkey]) -> tuple[LookupTable, ...]:
        """The route's tables; a table that cannot be read refuses the attempt (retried: it may
        be a passing RPC failure, and the cache reads it again)."""
        try:
            return await self.cache.tables(list(keys))
        except LookupTableError as exc:
            if exc.problem is LookupTableProblem.UNREADABLE and exc.__cause__ is not None:
                # The read itself failed: classified as every other RPC call is (a 429 is
                # rate_limited, with its Retry-After), not as a network failure.
                raise classify_exception(exc.__cause__) from exc
            raise TradeError(ErrorClass.NETWORK, f"lookup table: {exc}") from exc

    def compile(self, payer: Pubkey, instructions: Sequence[Any], tables: Sequence[LookupTable], blockhash: Any) -> MessageV0:
        """The v0 message with the route's tables; a refusal (too large...) is never retried."""
        compiled = compile_v0(payer, instructions, tables, blockhash, static_only=self.static_only)
        if isinstance(compiled, CompileRefusal):
            raise TradeError(ErrorClass.UNKNOWN, f"transaction refused: {compiled}")
        return compiled.message

    async def check(
        self,
        message: MessageV0,
        vault: RouteVault,
        *,
        terms: RouteTerms,
        min_out: int,
        amount_in: int,
        audit: Any,
        height: bool = False,
    ) -> SimulatedEffects:
        """Allowlist, then aggregator decoding, then the simulated effects of ``message`` exactly
        (``height``: with the last valid height of the newest blockhash, read in the same batch).

        ``audit(details, severity)`` records a refusal; the refusal is then raised.
        """
        stage = RouteStage.LOOKUP
        try:
            loaded = await self.cache.resolve(message)
        except LookupTableError as exc:
            self._refuse(RouteRefusal(RouteRefusalReason.LOOKUP_TABLE_UNRESOLVED, str(exc)), stage, audit)
        resolved = resolve_message(message, loaded)
        if isinstance(resolved, RouteRefusal):
            self._refuse(resolved, stage, audit)
        stage = RouteStage.ALLOWLIST
        refusal = check_allowlist(resolved, self.allowlist, vault.parties)
        if refusal is None:
            stage = RouteStage.DECODE
            refusal, _ = check_aggregator(resolved, self.allowlist.aggregators, terms)
        if refusal is not None:
            self._refuse(refusal, stage, audit)
        stage = RouteStage.EFFECTS
        # The vault's own accounts too, read or not by the message: its pre-state settles an
        # Ultra attempt whose id never becomes known.
        watched = [*resolved.writable_keys, vault.parties.authority, *sorted(vault.holdings, key=str)]
        effects = await self._reading().read(unsigned_transaction(message), watched, height=height)
        if isinstance(effects, RouteRefusal):
            self._refuse(effects, stage, audit)
        effect_terms = EffectTerms(
            parties=vault.parties,
            input_mint=vault.input_mint,
            output_mint=vault.output_mint,
            amount_in=amount_in,
            min_out=min_out,
            holdings=vault.holdings,
            fee_lamports=fee_bound(resolved),
            tip_lamports=tip_lamports(resolved, self.allowlist),
            max_sol_spend=self.routes.max_sol_spend_lamports,
        )
        refusal = check_effects(effects.pre, effects.post, effect_terms)
        if refusal is not None:
            self._refuse(refusal, stage, audit)
        return effects

    @staticmethod
    def _refuse(refusal: RouteRefusal, stage: RouteStage, audit: Any) -> NoReturn:
        details: Mapping[str, Any] = {
            "phase": "route_refused", "stage": stage.value, "reason": refusal.reason.value,
            "instruction": refusal.instruction, "detail": refusal.detail[:2000],
        }
        audit(details, Severity.WARNING)
        raise refusal.to_error()



@dataclass(frozen=True, slots=True)
class BuiltRoute:
    """A route an API built and the checks passed: the exact message to sign, and its record."""

    api: TradeApi
    message: MessageV0
    money: MoneyCheck
    effects: SimulatedEffects
    #: The block height after which the message can never land.
    last_valid_block_height: int
    #: Ultra's ``requestId``; None for the Swap API.
    request_id: str | None
    #: API-specific figures for the signed record (tables, compute budget, router...).
    details: Mapping[str, Any]
