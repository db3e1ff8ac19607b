"""Jupiter v6's swap instructions, decoded far enough to check their amounts. Pure.

Layouts read (Anchor; the IDL of ``JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4``, see
docs/EXECUTION.md, "The aggregator's instruction"): 8 bytes of discriminator,
``sha256("global:<name>")[:8]``, then Borsh arguments.

- ``route``: ``route_plan: Vec<RoutePlanStep>, in_amount: u64, quoted_out_amount: u64,
  slippage_bps: u16, platform_fee_bps: u8``; accounts token_program, user_transfer_authority
  (signer), user_source_token_account, user_destination_token_account,
  destination_token_account (optional: the program id when absent), destination_mint,
  platform_fee_account (optional), then the route's.
- ``shared_accounts_route``: ``id: u8`` first, then the same; accounts token_program,
  program_authority, user_transfer_authority (signer), source_token_account,
  program_source_token_account, program_destination_token_account, destination_token_account,
  source_mint, destination_mint, platform_fee_account, token_2022_program, then the route's.

The route plan's steps are a Borsh enum with a variant per AMM (some with fields), so the plan
is not decoded: the four amounts are the fixed 19-byte tail after it. The vector's length is
only checked to be possible (at least 4 bytes a step).

``exact_out_route`` and ``shared_accounts_exact_out_route`` are refused (we trade ExactIn);
the ``*_with_token_ledger`` variants carry no input amount and are refused. Any other
instruction under the aggregator's id is an unknown layout: :func:`decode_route` answers
``None`` and the route is allowed only through its simulated effects.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.pubkey import Pubkey

from xorj_actors.execution._allowlist import ResolvedMessage
from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal
from xorj_actors.jupiter import Terms

__all__ = ["DecodedRoute", "RouteKind", "RouteTerms", "check_aggregator", "check_route", "decode_route"]


class RouteKind(enum.StrEnum):
    """The v6 instructions this module knows by name."""

    ROUTE = "route"
    SHARED_ACCOUNTS_ROUTE = "shared_accounts_route"
    EXACT_OUT_ROUTE = "exact_out_route"
    SHARED_ACCOUNTS_EXACT_OUT_ROUTE = "shared_accounts_exact_out_route"
    ROUTE_WITH_TOKEN_LEDGER = "route_with_token_ledger"
    SHARED_ACCOUNTS_ROUTE_WITH_TOKEN_LEDGER = "shared_accounts_route_with_token_ledger"


def _discriminator(name: str) -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


_KINDS: Mapping[bytes, RouteKind] = {_discriminator(kind.value): kind for kind in RouteKind}
_REFUSED: Mapping[RouteKind, RouteRefusalReason] = {
    RouteKind.EXACT_OUT_ROUTE: RouteRefusalReason.AGGREGATOR_EXACT_OUT,
    RouteKind.SHARED_ACCOUNTS_EXACT_OUT_ROUTE: RouteRefusalReason.AGGREGATOR_EXACT_OUT,
    RouteKind.ROUTE_WITH_TOKEN_LEDGER: RouteRefusalReason.AGGREGATOR_TOKEN_LEDGER,
    RouteKind.SHARED_ACCOUNTS_ROUTE_WITH_TOKEN_LEDGER: RouteRefusalReason.AGGREGATOR_TOKEN_LEDGER,
}
#: in_amount u64, quoted_out_amount u64, slippage_bps u16, platform_fee_bps u8.
_TAIL = struct.Struct("<QQHB")
_MIN_STEP_BYTES = 4  # swap variant, percent, input_index, output_index
#: (bytes before the plan's length, least accounts, index of authority, source, destination, source mint, destination mint)
_LAYOUT: Mapping[RouteKind, tuple[int, int, int, int, int, int | None, int]] = {
    RouteKind.ROUTE: (8, 7, 1, 2, 4, None, 5),
    RouteKind.SHARED_ACCOUNTS_ROUTE: (9, 11, 2, 3, 6, 7, 8),
}


@dataclass(frozen=True, slots=True)
class DecodedRoute:
    """What a ``route`` or ``shared_accounts_route`` instruction says it will do."""

    kind: RouteKind
    steps: int
    in_amount: int
    quoted_out_amount: int
    slippage_bps: int
    platform_fee_bps: int
    authority: Pubkey
    source: Pubkey
    #: Where the output is paid (``route``: the destination account if given, else the user's).
    destination: Pubkey
    source_mint: Pubkey | None
    destination_mint: Pubkey


def decode_route(ix: Instruction) -> DecodedRoute | RouteRefusal | None:
    """Decode an aggregator instruction; ``None``: not a layout this module reads."""
    data = bytes(ix.data)
    kind = _KINDS.get(data[:8])
    if kind is None:
        return None
    if kind in _REFUSED:
        return RouteRefusal(_REFUSED[kind], f"{kind.value} is not an ExactIn route with its amount")
    head, least, i_auth, i_src, i_dst, i_src_mint, i_dst_mint = _LAYOUT[kind]
    if len(data) < head + 4 + _TAIL.size or len(ix.accounts) < least:
        return RouteRefusal(RouteRefusalReason.AGGREGATOR_MALFORMED, f"{kind.value}: {len(data)} bytes, {len(ix.accounts)} accounts")
    steps = int.from_bytes(data[head : head + 4], "little")
    if steps == 0 or len(data) < head + 4 + steps * _MIN_STEP_BYTES + _TAIL.size:
        return RouteRefusal(RouteRefusalReason.AGGREGATOR_MALFORMED, f"{kind.value}: {steps} steps in {len(data)} bytes")
    in_amount, quoted_out, slippage_bps, fee_bps = _TAIL.unpack(data[-_TAIL.size :])
    keys = [m.pubkey for m in ix.accounts]
    destination = keys[i_dst]
    if kind is RouteKind.ROUTE and destination == ix.program_id:
        destination = keys[3]  # destination_token_account absent: the user's own is paid
    return DecodedRoute(
        kind=kind,
        steps=steps,
        in_amount=in_amount,
        quoted_out_amount=quoted_out,
        slippage_bps=slippage_bps,
        platform_fee_bps=fee_bps,
        authority=keys[i_auth],
        source=keys[i_src],
        destination=destination,
        source_mint=None if i_src_mint is None else keys[i_src_mint],
        destination_mint=keys[i_dst_mint],
    )


@dataclass(frozen=True, slots=True)
class RouteTerms:
    """What the quote promised and what our limits allow, for comparison with a decoded route."""

    authority: Pubkey
    source: Pubkey
    destination: Pubkey
    input_mint: Pubkey
    output_mint: Pubkey
    in_amount: int
    quoted_out_amount: int
    slippage_bps: int
    platform_fee_bps: int
    max_slippage_bps: int
    max_platform_fee_bps: int = 0

    @classmethod
    def from_terms(
        cls,
        terms: Terms,
        *,
        authority: Pubkey,
        source: Pubkey,
        destination: Pubkey,
        max_slippage_bps: int,
        max_platform_fee_bps: int = 0,
    ) -> RouteTerms:
        """From what a Swap API quote or an Ultra order promised (parsed strictly already)."""
        return cls(
            authority=authority,
            source=source,
            destination=destination,
            input_mint=terms.input_mint,
            output_mint=terms.output_mint,
            in_amount=terms.in_amount,
            quoted_out_amount=terms.out_amount,
            slippage_bps=terms.slippage_bps,
            platform_fee_bps=terms.platform_fee.fee_bps if terms.platform_fee is not None else 0,
            max_slippage_bps=max_slippage_bps,
            max_platform_fee_bps=max_platform_fee_bps,
        )


def check_route(route: DecodedRoute, terms: RouteTerms) -> RouteRefusal | None:
    """``None`` if the decoded instruction is the quoted trade, for this vault, within our limits."""
    if (route.in_amount, route.quoted_out_amount) != (terms.in_amount, terms.quoted_out_amount):
        return RouteRefusal(
            RouteRefusalReason.AGGREGATOR_AMOUNT_MISMATCH,
            f"{route.kind.value} swaps {route.in_amount} for {route.quoted_out_amount}; "
            f"the quote {terms.in_amount} for {terms.quoted_out_amount}",
        )
    if route.slippage_bps != terms.slippage_bps or route.slippage_bps > terms.max_slippage_bps:
        return RouteRefusal(
            RouteRefusalReason.AGGREGATOR_SLIPPAGE,
            f"slippage {route.slippage_bps} bps; quoted {terms.slippage_bps}, limit {terms.max_slippage_bps}",
        )
    if route.platform_fee_bps != terms.platform_fee_bps or route.platform_fee_bps > terms.max_platform_fee_bps:
        return RouteRefusal(
            RouteRefusalReason.AGGREGATOR_PLATFORM_FEE,
            f"platform fee {route.platform_fee_bps} bps; quoted {terms.platform_fee_bps}, limit {terms.max_platform_fee_bps}",
        )
    expected = (terms.authority, terms.source, terms.destination, terms.output_mint)
    seen = (route.authority, route.source, route.destination, route.destination_mint)
    if seen != expected or route.source_mint not in (None, terms.input_mint):
        return RouteRefusal(
            RouteRefusalReason.AGGREGATOR_ACCOUNT_MISMATCH,
            f"{route.kind.value} acts for {route.authority} from {route.source} to {route.destination} "
            f"({route.source_mint} -> {route.destination_mint})",
        )
    return None


def check_aggregator(
    resolved: ResolvedMessage, aggregators: frozenset[Pubkey], terms: RouteTerms
) -> tuple[RouteRefusal | None, int]:
    """Check every aggregator instruction of known layout: ``(refusal, instructions decoded)``.

    Instructions of unknown layout are counted out, not refused: the effect check decides them.
    """
    decoded = 0
    for n, ix in enumerate(resolved.instructions):
        if ix.program_id not in aggregators:
            continue
        route = decode_route(ix)
        if route is None:
            continue
        if isinstance(route, RouteRefusal):
            return RouteRefusal(route.reason, route.detail, n), decoded
        refusal = check_route(route, terms)
        if refusal is not None:
            return RouteRefusal(refusal.reason, refusal.detail, n), decoded
        decoded += 1
    return None, decoded
