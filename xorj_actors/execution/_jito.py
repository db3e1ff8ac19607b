"""Jito for the Swap API's attempts: the tip, sandwich protection and the block engine as a route.

The tip is a System transfer from the vault's authority to one of the block engine's tip
accounts (``getTipAccounts``), sized from the tip floor's landed tips between ``[jito]``'s floor
and cap, and always a static key of the message (never through a lookup table). With
``protection`` the tip transfer also names the ``jitodontfront`` account read-only (the System
program ignores extra accounts): the block engine then refuses any bundle in which our
transaction is not first. The signed bytes go to the block engine (``sendTransaction``,
``bundleOnly`` as configured) beside the RPC, after its preflight answered; a failure there is a
counted skip. The bundle id it answers is tracked (``_bundles``), for the record only. Ultra's
transactions are Jupiter's own: it lands them, no tip of ours.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from loguru import logger
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.jito import BlockEngineClient, JitoSettings, TipFloor, tip_lamports, tip_transfer, with_dont_front

__all__ = ["BLOCK_ENGINE_ROUTE", "JitoLanding"]

#: The block engine's name among the send routes (metrics, status).
BLOCK_ENGINE_ROUTE = "block-engine"
#: A tip floor is reused this long (it moves with the market, not per trade).
_TIP_FLOOR_MAX_AGE_S = 30.0


class JitoLanding:
    """The block engine's tip accounts, tip floor and sends, on the executor's loop."""

    def __init__(self, settings: JitoSettings, block_engine_url: str) -> None:
        self.settings = settings
        self.enabled = settings.enabled and bool(block_engine_url or settings.block_engine_url)
        self.client = BlockEngineClient(settings, block_engine_url=block_engine_url) if self.enabled else None
        self.tip_accounts: tuple[Pubkey, ...] = ()
        self._floor: tuple[float, TipFloor] | None = None
        self._rng = random.Random()
        self.mark = Pubkey.from_string(settings.dont_front_account)

    async def open(self) -> None:
        if self.client is not None:
            await self.client.open()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def accounts(self) -> tuple[Pubkey, ...]:
        """The block engine's tip accounts (read once; asked again until they are known)."""
        if not self.tip_accounts:
            assert self.client is not None
            try:
                self.tip_accounts = tuple(await self.client.tip_accounts())
            except Exception as exc:  # noqa: BLE001 - no tip account: this attempt cannot tip
                raise TradeError(ErrorClass.NETWORK, f"jito getTipAccounts: {exc}") from exc
        return self.tip_accounts

    async def _tip_amount(self) -> int:
        s = self.settings
        cached = self._floor
        if cached is None or time.monotonic() - cached[0] > _TIP_FLOOR_MAX_AGE_S:
            assert self.client is not None
            try:
                self._floor = cached = (time.monotonic(), await self.client.tip_floor())
            except Exception as exc:  # noqa: BLE001 - the floor is a price hint: the configured floor stands
                logger.warning("jito tip floor unavailable ({!r}): tipping the configured floor", exc)
                return s.tip_floor_lamports
        return tip_lamports(cached[1], s.tip_percentile, s.tip_floor_lamports, s.tip_cap_lamports)

    async def tip(self, payer: Pubkey) -> tuple[list[Instruction], Mapping[str, Any]]:
        """The tip instruction of one attempt (none when Jito is off) and what the record keeps."""
        if not self.enabled:
            return [], {"tip_lamports": 0}
        account = self._rng.choice(await self.accounts())  # spread over the accounts: less write contention
        lamports = await self._tip_amount()
        ix = tip_transfer(payer, account, lamports)
        if self.settings.protection:
            ix = with_dont_front(ix, self.mark)
        return [ix], {"tip_lamports": lamports, "tip_account": str(account), "sandwich_protection": self.settings.protection}

    async def send(self, tx: VersionedTransaction) -> str | None:
        """The signed bytes to the block engine: the bundle id it answered (``None``: sent as a
        plain transaction). Raises what the client raises: the caller's budget must hear a 429."""
        assert self.client is not None, "Jito is off"
        return (await self.client.send_transaction(tx)).bundle_id
