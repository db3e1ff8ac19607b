"""The feed's start-up checks of its endpoint and mints, pure (no runtime, no HTTP)."""

from __future__ import annotations

import pytest

from xorj_actors.strategy import RANKED_TRADERS_PATH, StrategyFeedError
from xorj_actors.strategy._client import checked_mints, ranked_traders_url

USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def test_the_ranked_traders_path_goes_under_the_base_url() -> None:
    assert ranked_traders_url("http://127.0.0.1:8899/") == "http://127.0.0.1:8899" + RANKED_TRADERS_PATH
    assert ranked_traders_url("https://quant.internal/v1") == "https://quant.internal/v1" + RANKED_TRADERS_PATH


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "no quant engine URL"),
        ("quant.internal", "must be http:// or https://"),
        ("http://key@quant.internal", "no credentials in the quant engine URL"),
        ("http://", "has no host"),
    ],
)
def test_a_bad_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(StrategyFeedError, match=message):
        ranked_traders_url(url)


def test_the_mints_are_copied_read_only() -> None:
    given = {USDC: 6}
    mints = checked_mints(given)
    given[USDC] = 9
    assert mints == {USDC: 6}
    with pytest.raises(TypeError):
        mints[USDC] = 7  # type: ignore[index]


@pytest.mark.parametrize(
    ("mints", "message"),
    [
        ({}, "no tradable mints"),
        ({"not-a-key": 6}, "is not a base58 public key"),
        ({USDC: 256}, "must be an integer in 0..255"),
        ({USDC: True}, "must be an integer in 0..255"),
    ],
)
def test_bad_mints_are_refused(mints: dict[str, int], message: str) -> None:
    with pytest.raises(StrategyFeedError, match=message):
        checked_mints(mints)
