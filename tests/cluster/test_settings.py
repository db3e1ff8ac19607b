"""``[cluster]``: optional, strict, and its timings checked against each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from xorj_actors.cluster import ClusterSettings
from xorj_actors.config import ConfigError, load_config, parse_config

LOCAL = (Path(__file__).resolve().parents[2] / "config" / "local.toml").read_text()


def _cluster(lines: str) -> ClusterSettings | None:
    return parse_config(LOCAL + "\n[cluster]\n" + lines + "\n").cluster


def test_no_section_runs_alone() -> None:
    assert load_config(None).cluster is None
    assert parse_config(LOCAL).cluster is None


def test_a_section_gives_the_settings() -> None:
    settings = _cluster('nats_url = "nats://10.0.0.5:4222"\nnode_id = "a"\nlease_ttl_s = 6\nfence_margin_s = 2')
    assert settings is not None
    assert (settings.node_id, settings.lease_ttl_s, settings.lease_usable_s) == ("a", 6.0, 4.0)
    assert settings.buckets == {
        "members": "xorj_members", "leases": "xorj_leases", "halt": "xorj_halt", "acks": "xorj_acks", "config": "xorj_config"
    }


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("renew_every_s = 5", r"cluster\.renew_every_s: .*at most lease_ttl_s / 3"),
        ("fence_margin_s = 0.5", r"cluster\.fence_margin_s: .*at least lease_ttl_s / 10"),
        ("lease_ttl_s = 6", r"cluster\.fence_margin_s: lease_ttl_s - fence_margin_s must exceed"),
        ("op_timeout_s = 2.5", r"cluster\.op_timeout_s: must be at most renew_every_s"),
        ("dead_after_s = 2", r"cluster\.dead_after_s: .*at least 3 heartbeats"),
        ("nats_lost_halt_s = 1", r"cluster\.nats_lost_halt_s: .*at least 2 heartbeats"),
        ('node_id = "a.b"', r"cluster\.node_id: must be 1 to 64"),
        ('bucket_prefix = "x y"', r"cluster\.bucket_prefix"),
        ("replicas = 0", r"cluster\.replicas"),
        ("lease_ttl = 10", r"cluster\.lease_ttl: unknown key \(did you mean 'lease_ttl_s'\?\)"),
    ],
)
def test_bad_timings_are_refused_naming_the_key(lines: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cluster(lines)


def test_the_node_id_comes_from_the_flag_or_the_section() -> None:
    settings = ClusterSettings()
    with pytest.raises(ValueError, match="node_id: required"):
        settings.with_node_id(None)
    assert settings.with_node_id("b").node_id == "b"
    assert ClusterSettings(node_id="a").with_node_id(None).node_id == "a"
    assert ClusterSettings(node_id="a").with_node_id("c").node_id == "c"
    with pytest.raises(ValueError, match="node_id: must be"):
        settings.with_node_id("no spaces")
