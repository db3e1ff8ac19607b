"""The RPC gateway: what vaults read from the chain and the price source, batched; and the
price watch that feeds the market-volatility breaker and the correlation estimator.

A vault's round needs its token balances and the USD prices of its mints. Thousands of vaults
asking the node one account at a time would be thousands of requests; the gateway collects the
requests that arrive within ``batch_window_s`` into ``getMultipleAccounts`` calls of at most 100
accounts, and serves prices from one cached answer of Jupiter's Price API (``/price/v3``). Every answer is checked: an
account that is not an SPL token account of the expected mint and owner (the vault's own
authority) makes the vault's snapshot an error, never a guess.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
from loguru import logger
from pykka import ActorDeadError, ActorRef
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount

from supervisors import MailboxFull, Message
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.breakers import VolatilityDetector, report
from xorj_actors.breakers.settings import VolatilitySettings
from xorj_actors.chain._budget import solana_call
from xorj_actors.chain.gateway_settings import GatewaySettings
from xorj_actors.correlation import CorrelationEstimator, ExposureBoard
from xorj_actors.jupiter import MAX_IDS, parse_prices
from xorj_actors.quotas import Endpoint, QuotaError, Quotas, turn
from supervisors import LoopThread

__all__ = ["GATEWAY_NAME", "GatewaySettings", "GetVaultSnapshot", "RpcGateway", "VaultSnapshot"]

GATEWAY_NAME = "rpc_gateway"
#: The gateway's calls wait their budgets' turns as this owner (one among the vaults).
GATEWAY_OWNER = "gateway"
_MAX_ACCOUNTS = 100  # getMultipleAccounts' limit


class GetVaultSnapshot(Message):
    """Read a vault's balances and the prices of ``mints``; ``reply_to`` gets a :class:`VaultSnapshot`."""

    vault_id: str
    #: (mint, token account) of every mint the vault may hold.
    accounts: tuple[tuple[str, str], ...]
    #: Mints to price (held or targeted).
    mints: tuple[str, ...]
    reply_to: ActorRef
    #: Echoed in the answer, so a late answer to an earlier request is recognised.
    request_id: str = ""


class VaultSnapshot(Message):
    vault_id: str
    #: (mint, base units); an account that does not exist yet holds 0.
    balances: tuple[tuple[str, int], ...]
    #: (mint, USD); a mint without a price is left out (the vault refuses to plan without it).
    prices: tuple[tuple[str, float], ...]
    slot: int
    #: Why the snapshot could not be made (then balances and prices are empty).
    error: str | None = None
    request_id: str = ""


class RpcGateway(Participant):
    """Answers :class:`GetVaultSnapshot` without blocking anyone (the I/O runs on its own loop)."""

    # Starting and stopping its loop thread waits (bounded): not on the shared pool.
    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        board: HaltBoard,
        settings: GatewaySettings,
        *,
        rpc_url: str,
        quote_url: str,
        owner: Callable[[str], Pubkey | None],
        price_headers: Mapping[str, str] | None = None,
        watch_mints: tuple[str, ...] = (),
        volatility: VolatilitySettings | None = None,
        quotas: Quotas | None = None,
        exposure: ExposureBoard | None = None,
    ) -> None:
        super().__init__(board)
        #: The budgets its reads (``rpc_read``) and prices (``jupiter_price``) take turns in.
        self.quotas = quotas
        #: Volatility samples skipped for want of a spare turn of the price budget.
        self.price_samples_skipped = 0
        self.watch_mints = watch_mints
        self.detector = VolatilityDetector(volatility)
        #: Fed the same samples; publishes token clusters on ``exposure`` (None: no estimate).
        self.correlation = (
            CorrelationEstimator(exposure, watch_mints) if exposure is not None and exposure.settings.enabled else None
        )
        self.settings = settings
        self.rpc_url, self.quote_url, self.owner = rpc_url, quote_url.rstrip("/"), owner
        #: Jupiter's headers (``x-api-key``), for ``/price/v3``.
        self.price_headers = dict(price_headers or {})
        self.loop_thread = LoopThread("rpc-gateway")
        self.loop = self.loop_thread.loop
        self.pending: list[GetVaultSnapshot] = []
        self.flush: asyncio.TimerHandle | None = None
        self.rpc: AsyncClient | None = None
        self.http: aiohttp.ClientSession | None = None
        self.prices: tuple[float, dict[str, float]] = (0.0, {})
        self.price_lock: asyncio.Lock | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.runtime.register_name(GATEWAY_NAME, self.actor_ref)

    def on_start(self) -> None:
        self.loop_thread.start(self._setup(), timeout=self.settings.request_timeout_s)
        super().on_start()

    async def _setup(self) -> None:
        self.rpc = AsyncClient(self.rpc_url, commitment=Confirmed, timeout=self.settings.request_timeout_s)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s))
        self.price_lock = asyncio.Lock()
        if self.settings.price_poll_s and self.watch_mints:
            self.watch_task = self.loop.create_task(self._watch_prices())
            self.watch_task.add_done_callback(_log_failure)

    async def _cleanup(self) -> None:
        # Every vault waiting on a batch hears why it will not come (none waits forever).
        for r in self.pending:
            _reply(r, _failed(r, "rpc gateway stopped"))
        self.pending = []
        if self.watch_task is not None:
            self.watch_task.cancel()
            await asyncio.gather(self.watch_task, return_exceptions=True)
        if self.rpc is not None:
            await self.rpc.close()
        if self.http is not None:
            await self.http.close()

    def on_terminate(self) -> None:
        self.loop_thread.stop(self._cleanup, timeout=self.settings.request_timeout_s)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetVaultSnapshot):
            self.loop.call_soon_threadsafe(self._enqueue, message)
            return None
        return super().on_receive(message)

    # -- on the loop -------------------------------------------------------------------------

    async def _watch_prices(self) -> None:
        """Sample every traded mint's price; moves beyond the threshold are volatility events."""
        while True:
            await asyncio.sleep(self.settings.price_poll_s)
            try:
                prices = await self._prices(self.watch_mints, spare_only=True)
            except QuotaError:
                # The watch samples only with a spare turn of the price budget: trades first
                # (Jupiter's free tier is 60 calls a minute, a sample every second would be all of it).
                self.price_samples_skipped += 1
                continue
            except Exception as exc:  # noqa: BLE001 - the price source's health is not volatility
                logger.warning("price watch: {!r}", exc)
                continue
            now = time.monotonic()
            for mint, price in prices.items():
                detail = self.detector.observe(mint, price, now)
                if detail is not None:
                    logger.warning("market volatility event: {}", detail)
                    report(self.runtime, "market_volatility", False, detail)
            if self.detector.calm(now):
                report(self.runtime, "market_volatility", True, "calm")
            if self.correlation is not None:
                snap = self.correlation.observe(prices, now)
                if snap is not None:
                    logger.debug("correlation: {} cluster(s) from {} ticks", len(snap.clusters), snap.ticks)

    def _enqueue(self, request: GetVaultSnapshot) -> None:
        self.pending.append(request)
        if self.flush is None:
            self.flush = self.loop.call_later(self.settings.batch_window_s, self._flush)

    def _flush(self) -> None:
        self.flush = None
        batch, self.pending = self.pending, []
        task = self.loop.create_task(self._serve(batch))
        task.add_done_callback(_log_failure)

    async def _serve(self, batch: list[GetVaultSnapshot]) -> None:
        try:
            prices = await self._prices(sorted({m for r in batch for m in r.mints}))
        except Exception as exc:  # noqa: BLE001 - each vault is told why
            for r in batch:
                _reply(r, _failed(r, f"prices: {exc!r}"))
            return
        # Accounts of many vaults in calls of at most 100.
        chunks: list[list[GetVaultSnapshot]] = [[]]
        count = 0
        for r in batch:
            if count + len(r.accounts) > _MAX_ACCOUNTS and chunks[-1]:
                chunks.append([])
                count = 0
            chunks[-1].append(r)
            count += len(r.accounts)
        await asyncio.gather(*(self._accounts(chunk, prices) for chunk in chunks if chunk))

    async def _accounts(self, chunk: list[GetVaultSnapshot], prices: dict[str, float]) -> None:
        keys = [Pubkey.from_string(account) for r in chunk for _, account in r.accounts]
        assert self.rpc is not None
        try:
            rpc, timeout = self.rpc, self.settings.request_timeout_s
            resp = await solana_call(
                self.quotas,
                Endpoint.RPC_READ,
                lambda: asyncio.wait_for(rpc.get_multiple_accounts(keys, commitment=Confirmed), timeout),
                owner=GATEWAY_OWNER,
            )
            values = resp.value
            if len(values) != len(keys):
                raise ValueError(f"getMultipleAccounts answered {len(values)} accounts for {len(keys)}")
            slot = resp.context.slot
        except Exception as exc:  # noqa: BLE001 - each vault is told why
            for r in chunk:
                _reply(r, _failed(r, f"accounts: {exc!r}"))
            return
        i = 0
        for r in chunk:
            balances: list[tuple[str, int]] = []
            error = None
            owner = self.owner(r.vault_id)  # the vault's own authority
            if owner is None:
                error = f"{r.vault_id}: its key store shows no authority for it"
            for mint, account in r.accounts:
                info = values[i]
                i += 1
                if info is None:
                    balances.append((mint, 0))
                    continue
                try:
                    token = TokenAccount.from_bytes(bytes(info.data))
                except Exception:  # noqa: BLE001 - not a token account: the answer makes no sense
                    error = error or f"{account} is not an SPL token account"
                    continue
                if str(token.mint) != mint or token.owner != owner:
                    error = error or f"{account} holds {token.mint} for {token.owner}, expected {mint} for {owner}"
                    continue
                balances.append((mint, int(token.amount)))
            wanted = [(m, prices[m]) for m in r.mints if m in prices]
            _reply(
                r,
                VaultSnapshot(
                    vault_id=r.vault_id,
                    balances=() if error else tuple(balances),
                    prices=() if error else tuple(wanted),
                    slot=slot,
                    error=error,
                    request_id=r.request_id,
                ),
            )

    async def _prices(self, mints: Sequence[str], *, spare_only: bool = False) -> dict[str, float]:
        """Every mint's USD price (cached ``price_max_age_s``); ``spare_only``: only if the
        price budget has a turn free now, else :class:`QuotaError` (never waits)."""
        at, cached = self.prices
        if time.monotonic() - at < self.settings.price_max_age_s and all(m in cached for m in mints):
            return cached
        assert self.price_lock is not None and self.http is not None
        async with self.price_lock:
            at, cached = self.prices
            if time.monotonic() - at < self.settings.price_max_age_s and all(m in cached for m in mints):
                return cached
            prices: dict[str, float] = {}
            for i in range(0, len(mints), MAX_IDS):  # Price API v3 takes at most MAX_IDS ids
                batch = [Pubkey.from_string(m) for m in mints[i : i + MAX_IDS]]
                params = {"ids": ",".join(map(str, batch))}
                deadline = asyncio.get_running_loop().time() if spare_only else None
                async with turn(self.quotas, Endpoint.JUPITER_PRICE, owner=GATEWAY_OWNER, deadline=deadline) as t:
                    url = f"{self.quote_url}/price/v3"
                    async with self.http.get(url, params=params, headers=self.price_headers) as resp:
                        t.answered(resp.status, resp.headers.get("Retry-After"))
                        resp.raise_for_status()
                        answer = await resp.json()
                prices.update((str(m), p.usd_price) for m, p in parse_prices(answer, batch).items())
            self.prices = (time.monotonic(), prices)
            return prices


def _failed(request: GetVaultSnapshot, error: str) -> VaultSnapshot:
    return VaultSnapshot(
        vault_id=request.vault_id, balances=(), prices=(), slot=0, error=error, request_id=request.request_id
    )


def _reply(request: GetVaultSnapshot, snapshot: VaultSnapshot) -> None:
    try:
        request.reply_to.tell(snapshot)
    except (ActorDeadError, MailboxFull) as exc:
        logger.warning("snapshot for {} not delivered: {!r}", request.vault_id, exc)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.opt(exception=task.exception()).critical("rpc gateway task failed")
