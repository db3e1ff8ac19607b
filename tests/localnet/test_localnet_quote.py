"""The quote service over real HTTP, and its swaps on a real LiteSVM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from tests.conftest import free_port
from xorj_actors._settings import ConfigError, build_section
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID, Genesis, apply_genesis, build_genesis, dev_vault_authority
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.quote import (
    QUOTE_SERVICE,
    QuoteBook,
    QuoteRefused,
    create_quote_app,
    transfer_checked_ix,
)
from xorj_actors.localnet.settings import LocalnetSettings

GENESIS = build_genesis(LocalnetSettings())
USDC, JUP, BONK = (str(GENESIS.token(s).mint) for s in ("USDC", "JUP", "BONK"))
VAULT = GENESIS.vaults[0]
AUTHORITY = dev_vault_authority(VAULT.vault_id)  # vault-0000's own key
MANUAL = QuoteSettings(manual_clock=True)


class SvmChain:
    """A QuoteChain over a bare LiteSVM, for tests that drive LiteSVM directly."""

    def __init__(self, svm: LiteSVM) -> None:
        self.svm = svm

    def slot(self) -> int:
        return self.svm.get_clock().slot

    def latest_blockhash(self, commitment: str) -> tuple[int, Hash, int]:
        return self.slot(), self.svm.latest_blockhash(), self.slot() + 150


@dataclasses.dataclass
class Quoter:
    """A running quote app, its HTTP session and the LiteSVM behind it."""

    url: str
    http: aiohttp.ClientSession
    app: Any
    svm: LiteSVM

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, params=params) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=body) as resp:
            return resp.status, await resp.json()

    async def quote(self, source: str = USDC, target: str = JUP, amount: int = 10**8, **more: Any) -> Any:
        query = {"inputMint": source, "outputMint": target, "amount": str(amount), **more}
        status, body = await self.get("/quote", **query)
        assert status == 200, body
        return body


@contextlib.asynccontextmanager
async def _running(settings: QuoteSettings = MANUAL, genesis: Genesis = GENESIS) -> AsyncIterator[Quoter]:
    svm = LiteSVM()
    apply_genesis(svm, genesis)
    app = create_quote_app(genesis, SvmChain(svm), settings)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server, aiohttp.ClientSession() as http:
        yield Quoter(str(server.make_url("")), http, app, svm)


@pytest.fixture
async def quoter() -> AsyncIterator[Quoter]:
    async with _running() as q:
        yield q


def _balance(svm: LiteSVM, account: Pubkey) -> int:
    return TokenAccount.from_bytes(bytes(svm.get_account(account).data)).amount


def _instruction(data: dict[str, Any]) -> Instruction:
    metas = [
        AccountMeta(Pubkey.from_string(a["pubkey"]), a["isSigner"], a["isWritable"]) for a in data["accounts"]
    ]
    return Instruction(Pubkey.from_string(data["programId"]), base64.b64decode(data["data"]), metas)


async def _instructions(q: Quoter, quote: dict[str, Any]) -> list[Instruction]:
    body = {"userPublicKey": str(AUTHORITY.pubkey()), "quoteResponse": quote}
    status, ixs = await q.post("/swap-instructions", body)
    assert status == 200, ixs
    return [
        *map(_instruction, ixs["computeBudgetInstructions"]),
        *map(_instruction, ixs["setupInstructions"]),
        _instruction(ixs["swapInstruction"]),
        _instruction(ixs["cleanupInstruction"]),
    ]


async def _cosign(q: Quoter, quote_id: str, message: MessageV0) -> tuple[int, Any]:
    raw = base64.b64encode(to_bytes_versioned(message)).decode()
    return await q.post("/rfq/sign", {"quoteId": quote_id, "message": raw})


def _message(q: Quoter, ixs: list[Instruction], payer: Pubkey | None = None) -> MessageV0:
    return MessageV0.try_compile(payer or AUTHORITY.pubkey(), ixs, [], q.svm.latest_blockhash())


def _signed(message: MessageV0, mm_signature: Signature) -> VersionedTransaction:
    user = AUTHORITY.sign_message(to_bytes_versioned(message))
    signers = message.account_keys[: message.header.num_required_signatures]
    by_key = {AUTHORITY.pubkey(): user, GENESIS.market_maker.pubkey(): mm_signature}
    return VersionedTransaction.populate(message, [by_key[k] for k in signers])


# -- GET /quote ------------------------------------------------------------------------------


async def test_quote_has_jupiter_shape(quoter: Quoter) -> None:
    quoter.svm.warp_to_slot(4242)
    q = await quoter.quote(slippageBps="100")
    for key in ("inAmount", "outAmount", "otherAmountThreshold", "priceImpactPct"):
        assert isinstance(q[key], str), key
    assert (q["inputMint"], q["outputMint"], q["swapMode"], q["slippageBps"]) == (USDC, JUP, "ExactIn", 100)
    assert q["inAmount"] == "100000000"
    assert int(q["otherAmountThreshold"]) == int(q["outAmount"]) * 9_900 // 10_000
    assert q["contextSlot"] == 4242
    [hop] = q["routePlan"]
    assert hop["percent"] == 100
    assert (hop["swapInfo"]["inAmount"], hop["swapInfo"]["outAmount"]) == (q["inAmount"], q["outAmount"])
    # 100 USDC at JUP's 0.85 mid, minus a small impact.
    assert 117_000_000 < int(q["outAmount"]) < 117_647_059
    assert q["quoteId"] and q["expiresAtMs"] > 0


async def test_quote_between_volatile_tokens_routes_through_the_stablecoin(quoter: Quoter) -> None:
    q = await quoter.quote(JUP, BONK, 50_000_000)
    first, second = (h["swapInfo"] for h in q["routePlan"])
    assert (first["inputMint"], first["outputMint"]) == (JUP, USDC)
    assert (second["inputMint"], second["outputMint"]) == (USDC, BONK)
    assert first["outAmount"] == second["inAmount"]
    assert second["outAmount"] == q["outAmount"]


async def test_exact_out_quote_gives_the_asked_output_and_a_ceiling(quoter: Quoter) -> None:
    q = await quoter.quote(USDC, JUP, 1_000_000_000, swapMode="ExactOut", slippageBps="50")
    assert q["outAmount"] == "1000000000"
    assert int(q["otherAmountThreshold"]) == -(-int(q["inAmount"]) * 10_050 // 10_000)
    assert int(q["inAmount"]) > 850_000_000  # 1000 JUP at 0.85 plus impact


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"inputMint": str(Pubkey.new_unique())}, "TOKEN_NOT_TRADABLE"),
        ({"outputMint": "not-a-key"}, "INVALID_REQUEST"),
        ({"outputMint": USDC}, "CIRCULAR_ARBITRAGE_IS_DISABLED"),
        ({"amount": "0"}, "INVALID_REQUEST"),
        ({"amount": "-5"}, "INVALID_REQUEST"),
        ({"amount": "1.5"}, "INVALID_REQUEST"),
        ({"amount": "1e6"}, "INVALID_REQUEST"),
        ({"amount": str(2**64)}, "INVALID_REQUEST"),
        ({"slippageBps": "10001"}, "INVALID_REQUEST"),
        ({"slippageBps": "-1"}, "INVALID_REQUEST"),
        ({"slippageBps": "abc"}, "INVALID_REQUEST"),
        ({"swapMode": "Both"}, "INVALID_REQUEST"),
        ({"amount": "1", "inputMint": JUP, "outputMint": BONK}, "COULD_NOT_FIND_ANY_ROUTE"),
        ({"amount": str(10**18), "swapMode": "ExactOut"}, "COULD_NOT_FIND_ANY_ROUTE"),  # beyond the pool
    ],
)
async def test_bad_quote_requests_get_errors(quoter: Quoter, params: dict[str, str], code: str) -> None:
    query = {"inputMint": USDC, "outputMint": JUP, "amount": "1000000", **params}
    status, body = await quoter.get("/quote", **query)
    assert status == 400
    assert body["errorCode"] == code and body["error"]


async def test_price_impact_grows_with_trade_size(quoter: Quoter) -> None:
    impacts, rates = [], []
    for amount in (10**6, 10**8, 10**10, 10**11, 10**12):
        q = await quoter.quote(USDC, JUP, amount)
        impacts.append(float(q["priceImpactPct"]))
        rates.append(int(q["outAmount"]) / amount)
    assert impacts == sorted(impacts) and len(set(impacts)) == len(impacts)
    assert rates == sorted(rates, reverse=True)
    assert impacts[0] < 0.0001 and impacts[-1] > 0.2  # $1 barely moves a $2M pool, $1M moves it a lot


async def test_price_endpoint_serves_mid_prices(quoter: Quoter) -> None:
    unknown = str(Pubkey.new_unique())
    status, body = await quoter.get("/price", ids=f"{USDC},{JUP},{BONK},{unknown}")
    assert status == 200
    assert body["data"][USDC] == {"id": USDC, "type": "derivedPrice", "price": "1.0"}
    assert float(body["data"][JUP]["price"]) == pytest.approx(0.85)
    assert body["data"][BONK]["price"].startswith("0.0000250")  # no exponent notation
    assert body["data"][unknown] is None
    status, body = await quoter.get("/price")
    assert status == 400 and body["errorCode"] == "INVALID_REQUEST"


# -- the random walk --------------------------------------------------------------------------


async def _walked(settings: QuoteSettings, steps: int) -> dict[str, float]:
    async with _running(settings) as q:
        await q.post("/admin/advance", {"steps": steps})
        status, body = await q.get("/price", ids=",".join(str(t.mint) for t in GENESIS.tokens))
        assert status == 200
        return {m: float(p["price"]) for m, p in body["data"].items()}


async def test_prices_are_deterministic_given_a_seed() -> None:
    a = await _walked(MANUAL, 500)
    b = await _walked(MANUAL, 500)
    c = await _walked(dataclasses.replace(MANUAL, seed=2), 500)
    assert a == b
    assert a[JUP] != c[JUP] and a[BONK] != c[BONK]
    assert a[USDC] == c[USDC] == 1.0  # the stablecoin does not walk
    assert a[JUP] != pytest.approx(0.85, rel=1e-6)  # and the others do


async def test_prices_step_on_a_timer_without_a_manual_clock() -> None:
    async with _running(QuoteSettings(step_s=0.01)) as q:
        service = q.app[QUOTE_SERVICE]
        first = service.prices.step
        while service.prices.step == first:
            await asyncio.sleep(0.01)
        assert service.prices.price(JUP) != 0.85


async def test_volatility_spike_widens_moves(quoter: Quoter) -> None:
    calm_before = quoter.app[QUOTE_SERVICE].prices.prices()
    status, body = await quoter.post("/admin/volatility-spike", {"on": True})
    assert status == 200 and body["spike"] is True
    spiked = await _walked(MANUAL, 0)  # a calm twin with the same seed
    await quoter.post("/admin/advance", {"steps": 300})
    _, after = await quoter.get("/price", ids=f"{JUP},{BONK}")
    calm = await _walked(MANUAL, 300)
    for mint in (JUP, BONK):
        spiked_move = abs(math.log(float(after["data"][mint]["price"]) / calm_before[mint]))
        calm_move = abs(math.log(calm[mint] / spiked[mint]))
        # Same seed, same draws: the spike scales each step by spike_multiplier (20).
        assert spiked_move > 10 * calm_move > 0
    status, body = await quoter.post("/admin/volatility-spike", {"on": "yes"})
    assert status == 400
    quoter.app[QUOTE_SERVICE].prices.set_volatility_spike(False)
    assert not quoter.app[QUOTE_SERVICE].prices.spike


# -- swaps on LiteSVM ---------------------------------------------------------------------------


async def test_swap_instructions_cosigned_really_swap(quoter: Quoter) -> None:
    q = await quoter.quote(USDC, JUP, 250_000_000)
    # The price moves after the quote: the market maker still settles at the quoted amounts.
    await quoter.post("/admin/advance", {"steps": 5_000})
    ixs = await _instructions(quoter, q)
    message = _message(quoter, ixs)
    status, signed = await _cosign(quoter, q["quoteId"], message)
    assert status == 200, signed
    assert signed["publicKey"] == str(GENESIS.market_maker.pubkey())
    accounts = (
        VAULT.token_accounts["USDC"],
        VAULT.token_accounts["JUP"],
        GENESIS.market_maker_accounts["USDC"],
        GENESIS.market_maker_accounts["JUP"],
    )
    before = [_balance(quoter.svm, a) for a in accounts]
    result = quoter.svm.send_transaction(_signed(message, Signature.from_string(signed["signature"])))
    assert not isinstance(result, FailedTransactionMetadata), result
    after = [_balance(quoter.svm, a) for a in accounts]
    paid, got = int(q["inAmount"]), int(q["outAmount"])
    assert [b - a for a, b in zip(before, after)] == [-paid, got, paid, -got]


async def test_swap_returns_a_transaction_the_market_maker_already_signed(quoter: Quoter) -> None:
    q = await quoter.quote(USDC, BONK, 40_000_000)
    owner = dev_vault_authority("vault-0003")  # the wallet names the vault
    body = {"userPublicKey": str(owner.pubkey()), "quoteResponse": q}
    status, swap = await quoter.post("/swap", body)
    assert status == 200, swap
    tx = VersionedTransaction.from_bytes(base64.b64decode(swap["swapTransaction"]))
    signers = list(tx.message.account_keys[: tx.message.header.num_required_signatures])
    assert signers == [owner.pubkey(), GENESIS.market_maker.pubkey()]
    assert tx.signatures[0] == Signature.default()
    assert swap["lastValidBlockHeight"] > quoter.svm.get_clock().slot
    user = owner.sign_message(to_bytes_versioned(tx.message))
    filled = VersionedTransaction.populate(tx.message, [user, tx.signatures[1]])
    vault = GENESIS.vault("vault-0003")
    result = quoter.svm.send_transaction(filled)
    assert not isinstance(result, FailedTransactionMetadata), result
    assert _balance(quoter.svm, vault.token_accounts["BONK"]) == int(q["outAmount"])
    # A second transaction for the same quote (new blockhash) is refused: no double fill.
    quoter.svm.expire_blockhash()
    status, again = await quoter.post("/swap", body)
    assert status == 400 and again["errorCode"] == "QUOTE_ALREADY_USED"


async def test_underfunded_vault_fails_with_custom_1(quoter: Quoter) -> None:
    q = await quoter.quote(USDC, JUP, GENESIS.stable.vault_amount + 1)
    message = _message(quoter, await _instructions(quoter, q))
    status, signed = await _cosign(quoter, q["quoteId"], message)
    assert status == 200
    result = quoter.svm.send_transaction(_signed(message, Signature.from_string(signed["signature"])))
    assert isinstance(result, FailedTransactionMetadata)
    err = result.err()
    assert isinstance(err, TransactionErrorInstructionError)
    assert err.index == 2 and err.err == InstructionErrorCustom(1)  # after the two compute-budget ixs
    assert _balance(quoter.svm, VAULT.token_accounts["JUP"]) == 0


# -- the market maker refuses what it did not quote -----------------------------------------


def _retarget(ix: Instruction, index: int, pubkey: Pubkey) -> Instruction:
    metas = list(ix.accounts)
    metas[index] = AccountMeta(pubkey, metas[index].is_signer, metas[index].is_writable)
    return Instruction(ix.program_id, bytes(ix.data), metas)


def _with_amount(ix: Instruction, amount: int) -> Instruction:
    data = bytearray(ix.data)
    data[1:9] = amount.to_bytes(8, "little")
    return Instruction(ix.program_id, bytes(data), list(ix.accounts))


def _mm_pays_more() -> Instruction:
    """A second market-maker transfer, of another token, into the vault."""
    mm, bonk = GENESIS.market_maker.pubkey(), GENESIS.token("BONK")
    return transfer_checked_ix(bonk, GENESIS.market_maker_accounts["BONK"], VAULT.token_accounts["BONK"], mm, 10**9)


def _raised(ix: Instruction, by: int) -> Instruction:
    return _with_amount(ix, int.from_bytes(bytes(ix.data)[1:9], "little") + by)


OUTSIDER = Pubkey.new_unique()
OTHER_VAULT_JUP = GENESIS.vaults[1].token_accounts["JUP"]
MM_MEMO = MemoParams(program_id=MEMO_PROGRAM_ID, signer=GENESIS.market_maker.pubkey(), message=b"x")
#: ixs = [unit limit, unit price, vault pays market maker, market maker pays vault]
TAMPERS = {
    "amount raised": lambda ixs: [*ixs[:3], _raised(ixs[3], 1)],
    "amount paid lowered": lambda ixs: [*ixs[:2], _raised(ixs[2], -1), ixs[3]],
    "destination changed to another vault": lambda ixs: [*ixs[:3], _retarget(ixs[3], 2, OTHER_VAULT_JUP)],
    "destination changed to an outsider": lambda ixs: [*ixs[:3], _retarget(ixs[3], 2, OUTSIDER)],
    "market maker paid elsewhere": lambda ixs: [*ixs[:2], _retarget(ixs[2], 2, OUTSIDER), ixs[3]],
    "extra market maker transfer": lambda ixs: [*ixs, _mm_pays_more()],
    "market maker leg twice": lambda ixs: [*ixs, ixs[3]],
    "market maker leg missing": lambda ixs: ixs[:3],
    "memo signed by the market maker": lambda ixs: [*ixs, create_memo(MM_MEMO)],
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
async def test_cosign_refuses_a_tampered_message(quoter: Quoter, tamper: str) -> None:
    q = await quoter.quote(USDC, JUP, 100_000_000)
    ixs = TAMPERS[tamper](await _instructions(quoter, q))
    status, body = await _cosign(quoter, q["quoteId"], _message(quoter, ixs))
    assert status == 400
    assert body["errorCode"] == "RFQ_REJECTED" and body["error"]
    # The refusal did not burn the quote: the honest message is still signed.
    status, body = await _cosign(quoter, q["quoteId"], _message(quoter, await _instructions(quoter, q)))
    assert status == 200, body


async def test_cosign_refuses_the_market_maker_as_fee_payer(quoter: Quoter) -> None:
    q = await quoter.quote()
    message = _message(quoter, await _instructions(quoter, q), payer=GENESIS.market_maker.pubkey())
    status, body = await _cosign(quoter, q["quoteId"], message)
    assert status == 400 and "fees" in body["error"]


async def test_cosign_accepts_a_memo_and_is_idempotent_but_refuses_a_second_message(quoter: Quoter) -> None:
    q = await quoter.quote()
    ixs = await _instructions(quoter, q)
    memo = create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=AUTHORITY.pubkey(), message=b"trade-7"))
    message = _message(quoter, [*ixs, memo])
    first = await _cosign(quoter, q["quoteId"], message)
    assert first[0] == 200
    assert await _cosign(quoter, q["quoteId"], message) == first  # a retried request
    quoter.svm.expire_blockhash()
    status, body = await _cosign(quoter, q["quoteId"], _message(quoter, ixs))
    assert status == 400 and body["errorCode"] == "QUOTE_ALREADY_USED"


async def test_cosign_refuses_a_stale_quote() -> None:
    now = [time.time()]
    async with _running(MANUAL) as q:
        q.app[QUOTE_SERVICE].book = QuoteBook(MANUAL.quote_ttl_s, 10, clock=lambda: now[0])
        quote = await q.quote()
        assert quote["expiresAtMs"] == int((now[0] + MANUAL.quote_ttl_s) * 1000)
        message = _message(q, await _instructions(q, quote))
        now[0] += MANUAL.quote_ttl_s
        status, body = await _cosign(q, quote["quoteId"], message)
        assert status == 400 and body["errorCode"] == "QUOTE_EXPIRED"
        body = {"userPublicKey": str(AUTHORITY.pubkey()), "quoteResponse": quote}
        status, answer = await q.post("/swap-instructions", body)
        assert status == 400 and answer["errorCode"] == "QUOTE_EXPIRED"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"quoteId": "nope", "message": base64.b64encode(b"\x80junk").decode()}, "INVALID_REQUEST"),
        ({"quoteId": "nope"}, "INVALID_REQUEST"),
        ({"quoteId": "nope", "message": "!!!"}, "INVALID_REQUEST"),
    ],
)
async def test_cosign_refuses_malformed_requests(quoter: Quoter, body: dict[str, Any], code: str) -> None:
    status, answer = await quoter.post("/rfq/sign", body)
    assert status == 400 and answer["errorCode"] == code


async def test_swap_instructions_refuse_a_doctored_quote_or_a_wallet_of_no_vault(quoter: Quoter) -> None:
    q = await quoter.quote()
    user = str(AUTHORITY.pubkey())
    doubled = {**q, "outAmount": str(int(q["outAmount"]) * 2)}
    cases = [
        ({"userPublicKey": user, "quoteResponse": doubled}, "outAmount"),
        ({"userPublicKey": str(Keypair().pubkey()), "quoteResponse": q}, "is no vault's authority"),
        ({"userPublicKey": user, "quoteResponse": {**q, "quoteId": "forged"}}, "forged"),
        ({"quoteResponse": q}, "userPublicKey"),
    ]
    for body, reason in cases:
        status, answer = await quoter.post("/swap-instructions", body)
        assert status == 400 and reason in answer["error"], (body, answer)
    async with quoter.http.post(quoter.url + "/swap-instructions", data=b"{not json") as resp:
        assert resp.status == 400 and (await resp.json())["errorCode"] == "INVALID_REQUEST"


async def test_the_wallet_alone_names_the_vault(quoter: Quoter) -> None:
    quote = await quoter.quote()
    vault = GENESIS.vault("vault-0002")
    body = {"userPublicKey": str(vault.authority), "quoteResponse": quote}
    status, answer = await quoter.post("/swap-instructions", body)
    assert status == 200 and "vaultId" not in answer
    legs = [answer["swapInstruction"], answer["cleanupInstruction"]]
    assert {m["pubkey"] for m in legs[0]["accounts"]} >= {str(vault.authority), str(vault.token_accounts["USDC"])}
    assert str(vault.token_accounts["JUP"]) in {m["pubkey"] for m in legs[1]["accounts"]}


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"step_s": 0}, "step_s"),
        ({"quote_ttl_s": 0}, "quote_ttl_s"),
        ({"default_slippage_bps": 10_001}, "default_slippage_bps"),
        ({"spike_multiplier": 0.5}, "spike_multiplier"),
        ({"compute_unit_limit": 0}, "compute_unit_limit"),
        ({"max_open_quotes": 0}, "max_open_quotes"),
        ({"port": 70_000}, "port"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_quote_settings_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"localnet.quote.{key}"):
        build_section(QuoteSettings, table, "localnet.quote")


def test_hand_built_transfer_checked_equals_spl() -> None:
    jup = GENESIS.token("JUP")
    source, dest, owner = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    params = TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=jup.mint, dest=dest, owner=owner, amount=2**63 + 5, decimals=6
    )
    assert transfer_checked_ix(jup, source, dest, owner, 2**63 + 5) == transfer_checked(params)


def test_quote_book_forgets_expired_and_excess_quotes() -> None:
    now = [1000.0]
    book = QuoteBook(ttl_s=10.0, capacity=2, clock=lambda: now[0])
    usdc, jup = GENESIS.stable, GENESIS.token("JUP")
    first = book.open(usdc, jup, 1, 1)
    second = book.open(usdc, jup, 1, 1)
    third = book.open(usdc, jup, 1, 1)  # over capacity: the oldest goes
    with pytest.raises(QuoteRefused) as refused:
        book.get(first.id)
    assert refused.value.code == "QUOTE_NOT_FOUND"
    assert book.get(second.id) is second
    now[0] += 10.0
    with pytest.raises(QuoteRefused) as refused:
        book.get(third.id)
    assert refused.value.code == "QUOTE_EXPIRED"
    book.claim(second, b"message")
    book.claim(second, b"message")
    with pytest.raises(QuoteRefused, match="another message"):
        book.claim(second, b"other")
