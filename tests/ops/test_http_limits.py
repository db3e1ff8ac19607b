"""The pure parts of the HTTP API's flood defences: the refusal tally and the ``[http]`` limits."""

from __future__ import annotations

import pytest

from xorj_actors.config import ConfigError, parse_config
from xorj_actors.ops._http_refusals import MAX_KEYS, MAX_SOURCES, RefusalTally


def test_the_tally_makes_one_entry_per_source_with_the_count() -> None:
    tally = RefusalTally(60.0, clock=iter(range(100)).__next__)
    assert tally.add("10.0.0.1", "401 bad_signature", "/kill-switch/activate") is True  # opens the window
    assert tally.add("10.0.0.1", "415 unsupported_media_type", "/kill-switch/recover") is False
    assert tally.add("10.0.0.2", "header timeout") is False
    entries = {e["remote"]: e for e in tally.drain()}
    assert set(entries) == {"10.0.0.1", "10.0.0.2"}
    first = entries["10.0.0.1"]
    assert (first["count"], first["window_s"], first["outcome"]) == (2, 60.0, "refused")
    assert first["refusals"] == {"401 bad_signature": 1, "415 unsupported_media_type": 1}
    assert first["paths"] == {"/kill-switch/activate": 1, "/kill-switch/recover": 1}
    assert entries["10.0.0.2"]["paths"] == {}
    assert tally.drain() == []  # drained: the next refusal opens a new window
    assert tally.add(None, "header timeout") is True


def test_the_tally_stays_bounded_whatever_the_sources_send() -> None:
    tally = RefusalTally(1.0)
    for i in range(MAX_SOURCES + 500):
        tally.add(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"kind {i}", f"/kill-switch/{i}" + "x" * 500)
    for _ in range(3):
        tally.add("10.0.0.0", "another kind", "/kill-switch/other")
    entries = tally.drain()
    assert len(entries) == MAX_SOURCES + 1
    other = next(e for e in entries if e["remote"] == "other")
    assert other["count"] == 500 and len(other["refusals"]) == MAX_KEYS + 1  # and "other"
    assert other["refusals"]["other"] == 500 - MAX_KEYS
    assert all(len(path) <= 200 for e in entries for path in e["paths"])
    assert sum(e["count"] for e in entries) == MAX_SOURCES + 503


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("header_timeout_s = 0", "http.header_timeout_s: must be in (0, 300]"),
        ("body_timeout_s = 301", "http.body_timeout_s: must be in (0, 300]"),
        ("max_connections = 0", "http.max_connections: must be between 1 and 100000"),
        ("max_connections = 8\nmax_connections_per_ip = 9", "http.max_connections_per_ip: must be between 1 and"),
        ("refusal_window_s = 0", "http.refusal_window_s: must be in (0, 3600]"),
    ],
)
def test_bad_flood_limits_are_refused_by_name(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_config(f"[http]\n{setting}\n")
    http = parse_config("").http
    assert (http.header_timeout_s, http.body_timeout_s, http.max_connections, http.max_connections_per_ip) == (
        10.0, 10.0, 256, 32
    )
