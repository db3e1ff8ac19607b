"""pytest fixtures: localnet (registered in tests/conftest.py).

- ``localnet``: a manual-clock localnet on free ports (slots advance only on ``advance()``,
  prices and quant rounds only on their admin commands), with short commitment lags
  (confirmed 1, finalized 4) so tests reach finality in a few calls.
- ``fast_localnet``: the same with a running 20 ms slot clock, for subscription tests.
- ``vault_authority``: vault-0000's DEVELOPMENT authority keypair (each vault has its own:
  ``dev_vault_authority(vault)``).
- ``make_swap``: ``make_swap(blockhash, vault=0, sell="USDC", buy="JUP", amount_in=.., amount_out=..)``
  builds a signed two-leg swap against the fixture's genesis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from xorj_actors.localnet import Localnet, LocalnetSettings, dev_vault_authority, swap_transaction
from xorj_actors.localnet.market_settings import QuantSettings, QuoteSettings

#: Lags short enough for tests, long enough to see processed -> confirmed -> finalized; prices
#: and quant rounds move only on command too, so a test sees one deterministic market.
TEST_SETTINGS = LocalnetSettings(
    manual_clock=True,
    confirmed_lag=1,
    finalized_lag=4,
    vaults=4,
    quote=QuoteSettings(manual_clock=True),
    quant=QuantSettings(manual_clock=True),
)


def start_localnet(**changes: Any) -> Localnet:
    """A started localnet with :data:`TEST_SETTINGS` changed by ``changes``."""
    return Localnet(dataclasses.replace(TEST_SETTINGS, **changes)).start()


@pytest.fixture
def localnet() -> Iterator[Localnet]:
    ln = start_localnet()
    try:
        yield ln
    finally:
        ln.stop()


@pytest.fixture
def fast_localnet() -> Iterator[Localnet]:
    ln = start_localnet(manual_clock=False, slot_ms=20)
    try:
        yield ln
    finally:
        ln.stop()


@pytest.fixture
def vault_authority() -> Keypair:
    return dev_vault_authority(0)


@pytest.fixture
def make_swap(request: pytest.FixtureRequest) -> Callable[..., VersionedTransaction]:
    """Builds swaps against whichever localnet fixture the test uses."""

    def make(
        blockhash: Hash,
        *,
        vault: int = 0,
        sell: str = "USDC",
        buy: str = "JUP",
        amount_in: int = 1_000_000,
        amount_out: int = 1_100_000,
        localnet: Localnet | None = None,
    ) -> VersionedTransaction:
        ln = localnet or _active_localnet(request)
        return swap_transaction(
            ln.genesis,
            ln.genesis.vault(vault),
            dev_vault_authority(vault),  # the vault's own key
            blockhash,
            sell=sell,
            buy=buy,
            amount_in=amount_in,
            amount_out=amount_out,
        )

    return make


def _active_localnet(request: pytest.FixtureRequest) -> Localnet:
    for name in ("localnet", "fast_localnet"):
        if name in request.fixturenames:
            return request.getfixturevalue(name)
    raise LookupError("make_swap needs the localnet or fast_localnet fixture, or localnet=")
