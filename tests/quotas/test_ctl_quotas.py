"""``xorj-actors ctl quotas``: the command reads the engine's Quotas; the table shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xorj_actors.ops import Commands, RequestError
from xorj_actors.quotas import EndpointBudget, QuotaSettings, Quotas, render_quotas


class NoRuntime:
    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"ctl quotas asked the runtime ({name}): it reads the Quotas object alone")


async def test_ctl_quotas_shows_use_waiting_and_429s() -> None:
    quotas = Quotas(QuotaSettings(block_engine=EndpointBudget(requests=5, window_s=1.0, burst=4)))
    for _ in range(4):
        await quotas.acquire("block_engine", owner="vault-0001")
    quotas.report("block_engine", 429, permit=None)
    commands = Commands(NoRuntime(), dict, Path("/nowhere"), views={"quotas": quotas.snapshot})  # type: ignore[arg-type]
    rows = commands.table()["quotas"]({})
    assert rows["block_engine"]["used_in_window"] == 4 and rows["block_engine"]["self_inflicted"] == 1
    text = render_quotas(rows)
    line = next(line for line in text.splitlines() if line.startswith("block_engine"))
    assert "5/1s burst 4" in line and "80% !" in line and "x0.5" in line
    assert any(line.startswith("jupiter_price") and "shares jupiter_quote" in line for line in text.splitlines())


def test_an_engine_without_quotas_says_so() -> None:
    commands = Commands(NoRuntime(), dict, Path("/nowhere"))  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="no quotas"):
        commands.table()["quotas"]({})
