"""The localnet's JSON-RPC, driven by the unmodified solana-py AsyncClient and by raw HTTP."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.sysvar import CLOCK, SLOT_HASHES
from solders.token.state import TokenAccount
from solders.transaction import Transaction, VersionedTransaction

from tests.plugins.localnet import start_localnet
from xorj_actors.localnet import TOKEN_PROGRAM_ID, Localnet
from xorj_actors.localnet.encoding import b58encode
from xorj_actors.programs import TOKEN_2022_PROGRAM_ID

CONFIRMED = TxOpts(preflight_commitment=Confirmed)
SKIP = TxOpts(skip_preflight=True)


async def raw(url: str, payload: Any) -> Any:
    """POST ``payload`` (or raw bytes) and return the decoded JSON reply."""
    async with aiohttp.ClientSession() as session:
        data = payload if isinstance(payload, bytes) else None
        kwargs = {"data": data, "headers": {"Content-Type": "application/json"}} if data else {"json": payload}
        async with session.post(url, **kwargs) as resp:
            assert resp.status == 200
            return await resp.json()


def call(method: str, params: list[Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}


async def token_amount(client: AsyncClient, account: Pubkey) -> int:
    info = (await client.get_account_info(account, commitment=Processed)).value
    assert info is not None
    return TokenAccount.from_bytes(bytes(info.data)).amount


@pytest.fixture
async def client(localnet: Localnet):
    async with AsyncClient(localnet.urls["rpc"], commitment=Confirmed) as c:
        yield c


async def blockhash(client: AsyncClient):
    return (await client.get_latest_blockhash(Processed)).value.blockhash


async def test_swap_moves_both_legs_and_finalizes(localnet: Localnet, client: AsyncClient, make_swap) -> None:
    g = localnet.genesis
    vault = g.vault(1)
    usdc_before = await token_amount(client, vault.token_accounts["USDC"])
    mm_jup_before = await token_amount(client, g.market_maker_accounts["JUP"])
    tx = make_swap(await blockhash(client), vault=1, amount_in=2_500_000, amount_out=3_000_000)

    sig = (await client.send_raw_transaction(bytes(tx), CONFIRMED)).value
    assert sig == tx.signatures[0]
    assert await token_amount(client, vault.token_accounts["USDC"]) == usdc_before - 2_500_000
    assert await token_amount(client, vault.token_accounts["JUP"]) == 3_000_000
    assert await token_amount(client, g.market_maker_accounts["JUP"]) == mm_jup_before - 3_000_000

    seen = []
    for _ in range(5):
        status = (await client.get_signature_statuses([sig])).value[0]
        seen.append((status.confirmations, str(status.confirmation_status)))
        localnet.advance()
    # Confirmations count up with each slot, then become null once finalized (lag 4).
    assert [c for c, _ in seen] == [0, 1, 2, 3, None]
    assert [s.rsplit(".", 1)[-1] for _, s in seen] == ["Processed", "Confirmed", "Confirmed", "Confirmed", "Finalized"]

    fetched = (await client.get_transaction(sig, commitment=Finalized, max_supported_transaction_version=0)).value
    assert fetched is not None and fetched.slot == status.slot
    assert fetched.transaction.meta.err is None
    assert fetched.transaction.meta.fee == 10_000  # two signatures


async def test_preflight_failure_is_32002_with_agave_error_shape(localnet: Localnet, client, make_swap) -> None:
    g = localnet.genesis
    # The market maker leg (instruction 1) asks for more JUP than the market maker holds.
    too_much = g.token("JUP").market_maker_amount + 1
    tx = make_swap(await blockhash(client), amount_out=too_much)
    reply = await raw(
        localnet.urls["rpc"],
        call("sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}]),
    )
    error = reply["error"]
    assert error["code"] == -32002
    assert error["message"].startswith("Transaction simulation failed: Error processing Instruction 1")
    assert error["data"]["err"] == {"InstructionError": [1, {"Custom": 1}]}
    assert error["data"]["logs"]
    # Nothing changed: no fee, no landing.
    statuses = await client.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)
    assert statuses.value == [None]
    # solana-py surfaces it as its preflight error.
    with pytest.raises(RPCException):
        await client.send_raw_transaction(bytes(tx), CONFIRMED)


async def test_failed_transaction_lands_without_preflight(localnet: Localnet, client, make_swap) -> None:
    g = localnet.genesis
    payer = g.vault(0).authority
    before = (await client.get_balance(payer, Processed)).value
    tx = make_swap(await blockhash(client), amount_out=g.token("JUP").market_maker_amount + 1)
    await client.send_raw_transaction(bytes(tx), SKIP)
    status = (await client.get_signature_statuses([tx.signatures[0]])).value[0]
    assert status is not None
    reply = await raw(localnet.urls["rpc"], call("getSignatureStatuses", [[str(tx.signatures[0])]]))
    value = reply["result"]["value"][0]
    assert value["err"] == {"InstructionError": [1, {"Custom": 1}]}
    assert value["status"] == {"Err": {"InstructionError": [1, {"Custom": 1}]}}
    # The fee is charged anyway, as on a real cluster.
    assert (await client.get_balance(payer, Processed)).value == before - 10_000


async def test_bad_signature_is_32003_and_dropped_without_preflight(localnet: Localnet, client, make_swap) -> None:
    tx = make_swap(await blockhash(client))
    forged = VersionedTransaction.populate(tx.message, [Keypair().sign_message(to_bytes_versioned(tx.message))] * 2)
    body = [base64.b64encode(bytes(forged)).decode(), {"encoding": "base64"}]
    reply = await raw(localnet.urls["rpc"], call("sendTransaction", body))
    assert reply["error"]["code"] == -32003
    # A good transaction through preflight first: signature checks must be back on after it.
    await client.send_raw_transaction(bytes(make_swap(await blockhash(client), amount_in=3)), CONFIRMED)
    reply = await raw(localnet.urls["rpc"], call("sendTransaction", [body[0], {**body[1], "skipPreflight": True}]))
    assert reply["result"] == str(forged.signatures[0])
    localnet.advance()
    assert (await client.get_signature_statuses([forged.signatures[0]])).value == [None]


async def test_preflight_checks_signatures_first_and_names_an_unfunded_payer(localnet: Localnet, client) -> None:
    poor = Keypair()
    ix = transfer(TransferParams(from_pubkey=poor.pubkey(), to_pubkey=localnet.genesis.vault(0).authority, lamports=1))
    old = await blockhash(client)
    unfunded = VersionedTransaction(MessageV0.try_compile(poor.pubkey(), [ix], [], old), [poor])
    error = (await raw(localnet.urls["rpc"], call("sendTransaction", [b58encode(bytes(unfunded))])))["error"]
    assert error["code"] == -32002 and error["data"]["err"] == "AccountNotFound"
    assert error["message"].endswith("found no record of a prior credit.")
    localnet.advance(151)
    forged = VersionedTransaction.populate(unfunded.message, [Keypair().sign_message(b"other")])
    # Signatures are verified before the (also stale) blockhash is looked at, as on Agave.
    error = (await raw(localnet.urls["rpc"], call("sendTransaction", [b58encode(bytes(forged))])))["error"]
    assert error["code"] == -32003


async def test_blockhash_expires_after_150_blocks(localnet: Localnet, client, make_swap) -> None:
    reply = (await client.get_latest_blockhash(Processed)).value
    assert reply.last_valid_block_height == (await client.get_block_height(Processed)).value + 150
    old = reply.blockhash
    localnet.advance(150)
    still_valid = make_swap(old, amount_in=1)
    await client.send_raw_transaction(bytes(still_valid), CONFIRMED)  # block 150 of 150: accepted
    localnet.advance()
    expired = make_swap(old, amount_in=2)
    rpc = localnet.urls["rpc"]
    error = (await raw(rpc, call("sendTransaction", [b58encode(bytes(expired))])))["error"]
    assert error["code"] == -32002
    assert error["data"]["err"] == "BlockhashNotFound"
    assert error["message"] == "Transaction simulation failed: Blockhash not found"
    # Without preflight the node takes the signature and the transaction never lands.
    await client.send_raw_transaction(bytes(expired), SKIP)
    localnet.advance(5)
    statuses = await client.get_signature_statuses(
        [still_valid.signatures[0], expired.signatures[0]], search_transaction_history=True
    )
    assert statuses.value[0] is not None and statuses.value[1] is None
    valid = await raw(rpc, call("isBlockhashValid", [str(old), {"commitment": "processed"}]))
    assert valid["result"]["value"] is False


async def test_resending_the_same_transaction_is_already_processed(localnet: Localnet, client, make_swap) -> None:
    tx = make_swap(await blockhash(client))
    await client.send_raw_transaction(bytes(tx), CONFIRMED)
    error = (await raw(localnet.urls["rpc"], call("sendTransaction", [b58encode(bytes(tx))])))["error"]
    assert error["code"] == -32002 and error["data"]["err"] == "AlreadyProcessed"
    # A rebroadcast without preflight is harmless: same signature, one landing.
    assert (await client.send_raw_transaction(bytes(tx), SKIP)).value == tx.signatures[0]
    assert await token_amount(client, localnet.genesis.vault(0).token_accounts["JUP"]) == 1_100_000


async def test_search_transaction_history(localnet: Localnet, client, make_swap) -> None:
    tx = make_swap(await blockhash(client))
    await client.send_raw_transaction(bytes(tx), CONFIRMED)
    localnet.advance(301)  # beyond the status cache
    assert (await client.get_signature_statuses([tx.signatures[0]])).value == [None]
    found = (await client.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)).value[0]
    assert found is not None and found.confirmations is None


async def test_history_is_bounded(make_swap) -> None:
    ln = start_localnet(history_slots=200)
    try:
        async with AsyncClient(ln.urls["rpc"]) as c:
            tx = make_swap(await blockhash(c), localnet=ln)
            await c.send_raw_transaction(bytes(tx), CONFIRMED)
            ln.advance(200)
            assert (await c.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)).value[0]
            ln.advance()
            assert (await c.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)).value == [None]
    finally:
        ln.stop()


async def test_errors_have_the_json_rpc_codes(localnet: Localnet) -> None:
    rpc = localnet.urls["rpc"]
    assert (await raw(rpc, b"{not json"))["error"]["code"] == -32700
    assert (await raw(rpc, {"id": 1, "method": "getSlot"}))["error"]["code"] == -32600
    assert (await raw(rpc, []))["error"]["code"] == -32600
    reply = await raw(rpc, call("getBlock", [1], request_id=7))
    assert reply == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 7}
    bad_params = [
        ("getBalance", ["not-a-key"]),
        ("getBalance", []),
        ("getSlot", [{"commitment": "soon"}]),
        ("getAccountInfo", [str(Pubkey.default()), {"encoding": "hex"}]),
        ("getSignatureStatuses", [[str(Signature.default())] * 257]),
        ("getTokenAccountsByOwner", [str(Pubkey.default()), {}]),
        ("sendTransaction", ["%%%", {"encoding": "base64"}]),
        ("sendTransaction", [base64.b64encode(b"short").decode(), {"encoding": "base64"}]),
        ("simulateTransaction", ["x", {"sigVerify": True, "replaceRecentBlockhash": True}]),
        ("getTransaction", [str(Signature.default()), {"commitment": "processed"}]),
        ("requestAirdrop", [str(Pubkey.default()), -5]),
        ("getMinimumBalanceForRentExemption", ["many"]),
    ]
    for method, params in bad_params:
        reply = await raw(rpc, call(method, params))
        assert reply["error"]["code"] == -32602, (method, reply)


async def test_batch_answers_each_request_in_order(localnet: Localnet) -> None:
    localnet.advance(3)
    replies = await raw(
        localnet.urls["rpc"],
        [call("getSlot", [{"commitment": "processed"}], 1), call("nope", [], 2), call("getHealth", [], 3)],
    )
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[0]["result"] == 3
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["result"] == "ok"


async def test_commitment_levels_lag(localnet: Localnet, client) -> None:
    localnet.advance(10)
    assert (await client.get_slot(Processed)).value == 10
    assert (await client.get_slot(Confirmed)).value == 9
    assert (await client.get_slot(Finalized)).value == 6
    fin = (await client.get_latest_blockhash(Finalized)).value
    assert fin.last_valid_block_height == 6 + 150


async def test_token_accounts_by_owner_base64_and_json_parsed(localnet: Localnet, client) -> None:
    g = localnet.genesis
    owner = g.vault(0).authority  # one vault's own authority: its accounts, nobody else's
    usdc = g.token("USDC")
    raw_accounts = (await client.get_token_accounts_by_owner(owner, TokenAccountOpts(mint=usdc.mint))).value
    assert {a.pubkey for a in raw_accounts} == {g.vault(0).token_accounts["USDC"]}
    assert all(TokenAccount.from_bytes(bytes(a.account.data)).amount == usdc.vault_amount for a in raw_accounts)
    opts = TokenAccountOpts(program_id=TOKEN_PROGRAM_ID)
    parsed = (await client.get_token_accounts_by_owner_json_parsed(owner, opts)).value
    assert len(parsed) == len(g.tokens)
    infos = [p.account.data.parsed["info"] for p in parsed]
    usdc_infos = [i for i in infos if i["mint"] == str(usdc.mint)]
    assert usdc_infos[0]["tokenAmount"]["uiAmountString"] == "10000"
    assert usdc_infos[0]["owner"] == str(owner)
    balance = (await client.get_token_account_balance(g.vault(2).token_accounts["USDC"])).value
    assert balance.amount == str(usdc.vault_amount) and balance.decimals == 6
    # Token-2022 is asked separately (key rotation asks both programs); the genesis has none of its accounts.
    url = localnet.urls["rpc"]
    token_2022 = await raw(url, call("getTokenAccountsByOwner", [str(owner), {"programId": str(TOKEN_2022_PROGRAM_ID)}]))
    assert token_2022["result"]["value"] == []
    other = await raw(url, call("getTokenAccountsByOwner", [str(owner), {"programId": str(Pubkey.new_unique())}]))
    assert other["error"]["code"] == -32602 and "unrecognized Token program id" in other["error"]["message"]


async def test_accounts_fees_and_airdrop(localnet: Localnet, client) -> None:
    g = localnet.genesis
    fresh = Keypair()
    sig = (await client.request_airdrop(fresh.pubkey(), 2_000_000_000)).value
    assert (await client.get_balance(fresh.pubkey(), Processed)).value == 2_000_000_000
    assert (await client.get_signature_statuses([sig])).value[0] is not None
    multiple = (await client.get_multiple_accounts([g.token("USDC").mint, fresh.pubkey(), Keypair().pubkey()])).value
    assert multiple[0] is not None and multiple[1].lamports == 2_000_000_000 and multiple[2] is None
    rent = (await client.get_minimum_balance_for_rent_exemption(165)).value
    assert rent == 2_039_280
    message = MessageV0.try_compile(
        fresh.pubkey(),
        [transfer(TransferParams(from_pubkey=fresh.pubkey(), to_pubkey=g.vault(0).authority, lamports=1))],
        [],
        await blockhash(client),
    )
    assert (await client.get_fee_for_message(message)).value == 5_000
    fees = (await client.get_recent_prioritization_fees([fresh.pubkey()])).value
    assert fees and all(f.prioritization_fee == 0 for f in fees)


async def test_simulate_transaction(localnet: Localnet, client, make_swap) -> None:
    tx = make_swap(await blockhash(client))
    sim = (await client.simulate_transaction(tx, sig_verify=True)).value
    assert sim.err is None and sim.units_consumed > 0
    # Simulation changes nothing.
    assert await token_amount(client, localnet.genesis.vault(0).token_accounts["JUP"]) == 0
    unsigned = VersionedTransaction.populate(tx.message, [Signature.default()] * 2)
    assert (await client.simulate_transaction(unsigned, sig_verify=False)).value.err is None
    reply = await raw(
        localnet.urls["rpc"],
        call("simulateTransaction", [b58encode(bytes(unsigned)), {"sigVerify": True}]),
    )
    assert reply["error"]["code"] == -32003
    localnet.advance(151)
    replaced = await raw(
        localnet.urls["rpc"],
        call(
            "simulateTransaction",
            [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64", "replaceRecentBlockhash": True}],
        ),
    )
    assert replaced["result"]["value"]["err"] is None
    assert replaced["result"]["value"]["replacementBlockhash"]["lastValidBlockHeight"] == 151 + 150


async def test_version_health_and_versioned_get_transaction(localnet: Localnet, client, make_swap) -> None:
    assert (await client.get_version()).value.solana_core
    rpc = localnet.urls["rpc"]
    assert (await raw(rpc, call("getHealth")))["result"] == "ok"
    tx = make_swap(await blockhash(client))
    await client.send_raw_transaction(bytes(tx), CONFIRMED)
    localnet.advance()
    # A v0 transaction needs maxSupportedTransactionVersion, as on Agave.
    reply = await raw(rpc, call("getTransaction", [str(tx.signatures[0]), {"commitment": "confirmed"}]))
    assert reply["error"]["code"] == -32015
    reply = await raw(
        rpc,
        call(
            "getTransaction",
            [
                str(tx.signatures[0]),
                {"commitment": "confirmed", "encoding": "base64", "maxSupportedTransactionVersion": 0},
            ],
        ),
    )
    assert base64.b64decode(reply["result"]["transaction"][0]) == bytes(tx)
    assert reply["result"]["version"] == 0


async def test_legacy_transaction_round_trip(localnet: Localnet, client) -> None:
    payer = Keypair()
    await client.request_airdrop(payer.pubkey(), 10**9)
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=localnet.genesis.vault(0).authority, lamports=7))
    legacy = Transaction([payer], Message([ix], payer.pubkey()), await blockhash(client))
    sig = (await client.send_raw_transaction(bytes(legacy), CONFIRMED)).value
    localnet.advance()
    fetched = (await client.get_transaction(sig, commitment=Confirmed)).value  # no maxSupportedTransactionVersion
    assert fetched is not None and str(fetched.transaction.version) == "Legacy.Legacy"
    reply = await raw(localnet.urls["rpc"], call("getTransaction", [str(sig), {"commitment": "confirmed"}]))
    assert reply["result"]["version"] == "legacy"
    assert "addressTableLookups" not in reply["result"]["transaction"]["message"]


async def test_unreachable_localnet_is_a_client_error() -> None:
    ln = start_localnet()
    url = ln.urls["rpc"]
    ln.stop()
    async with AsyncClient(url) as c:
        with pytest.raises(SolanaRpcException):
            await c.get_slot()


async def test_simulate_returns_the_asked_post_state_and_honours_min_context_slot(localnet: Localnet, client, make_swap) -> None:
    g = localnet.genesis
    tx = make_swap(await blockhash(client))
    usdc, stranger = g.vault(0).token_accounts["USDC"], Pubkey.new_unique()
    rpc = localnet.urls["rpc"]
    body = base64.b64encode(bytes(tx)).decode()
    accounts = {"addresses": [str(usdc), str(stranger)], "encoding": "base64"}
    slot = localnet.slot()
    reply = await raw(rpc, call("simulateTransaction", [body, {"encoding": "base64", "sigVerify": False, "accounts": accounts, "minContextSlot": slot}]))
    value = reply["result"]["value"]
    assert value["err"] is None and value["accounts"][1] is None
    after = TokenAccount.from_bytes(base64.b64decode(value["accounts"][0]["data"][0]))
    assert after.amount == await token_amount(client, usdc) - 1_000_000  # simulated, not applied
    too_late = await raw(rpc, call("simulateTransaction", [body, {"encoding": "base64", "minContextSlot": slot + 5}]))
    assert too_late["error"] == {"code": -32016, "message": "Minimum context slot has not been reached", "data": {"contextSlot": slot}}
    too_late = await raw(rpc, call("getMultipleAccounts", [[str(usdc)], {"encoding": "base64", "minContextSlot": slot + 1}]))
    assert too_late["error"]["code"] == -32016
    base58 = await raw(rpc, call("simulateTransaction", [body, {"encoding": "base64", "accounts": {**accounts, "encoding": "base58"}}]))
    assert base58["error"] == {"code": -32602, "message": "base58 encoding not supported"}
    many = {"addresses": [str(Pubkey.new_unique()) for _ in range(len(tx.message.account_keys) + 1)]}
    too_many = await raw(rpc, call("simulateTransaction", [body, {"encoding": "base64", "accounts": many}]))
    assert too_many["error"]["message"] == f"Too many accounts provided; max {len(tx.message.account_keys)}"
    failing = make_swap(await blockhash(client), amount_in=10**15)
    failed = await raw(rpc, call("simulateTransaction", [base64.b64encode(bytes(failing)).decode(), {"encoding": "base64", "accounts": accounts}]))
    assert failed["result"]["value"]["err"] is not None and failed["result"]["value"]["accounts"] == [None, None]


async def test_clock_and_slot_hashes_sysvars_follow_the_slot(localnet: Localnet, client) -> None:
    # The slot clock leaves LiteSVM's sysvars behind; a read brings them up to date.
    localnet.advance(7)
    clock = (await client.get_account_info(CLOCK, commitment=Processed)).value
    assert clock is not None and int.from_bytes(bytes(clock.data)[:8], "little") == 7
    hashes = (await client.get_account_info(SLOT_HASHES, commitment=Processed)).value
    assert hashes is not None
    data = bytes(hashes.data)
    assert int.from_bytes(data[:8], "little") == 7  # slots 6..0, newest first
    assert int.from_bytes(data[8:16], "little") == 6
