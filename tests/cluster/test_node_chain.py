"""``--node-id`` names the node's audit chain too: every node writes its own hash chain in the
shared store (docs/AUDIT.md, "Chains")."""

from __future__ import annotations

import pytest

from xorj_actors.config import parse_config
from xorj_actors.engine.cli import with_node_id

CLUSTER = '[cluster]\nnats_url = "nats://127.0.0.1:4222"\n'


def test_the_node_id_names_the_audit_chain() -> None:
    config = with_node_id(parse_config(CLUSTER), "b")
    assert config.cluster.node_id == "b" and config.audit.chain == "b"


def test_a_chain_named_in_the_config_wins() -> None:
    config = with_node_id(parse_config(CLUSTER + '[audit]\nchain = "engine-b"\n'), "b")
    assert config.audit.chain == "engine-b"


def test_a_node_id_that_cannot_name_a_chain_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"^audit\.chain: .*set \[audit\] chain"):
        with_node_id(parse_config(CLUSTER), "Node_1")
