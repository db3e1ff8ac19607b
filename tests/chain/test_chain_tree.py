"""Where the chain's actors sit in the engine's tree: what a crash of each restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.execution.conftest import BASE, merged_config
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.chain import CONFIRMATION_NAME, GATEWAY_NAME
from xorj_actors.engine import Engine
from xorj_actors.execution import EXECUTOR_NAME

NAMES = (GATEWAY_NAME, CONFIRMATION_NAME, EXECUTOR_NAME)
#: How long a restart that must not happen is waited for (a rest_for_one restart takes ms).
SETTLE_S = 0.5


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(merged_config(BASE, ""), tmp_path / "var", environ=dict(RECOVERY_KEYS))
    engine.start()
    try:
        yield engine
    finally:
        assert not engine.stop(timeout=15)


def urns(engine: Engine) -> dict[str, str | None]:
    refs = {name: engine.runtime.whereis(name) for name in NAMES}
    return {name: ref.actor_urn if ref is not None else None for name, ref in refs.items()}


def restart(engine: Engine, name: str) -> dict[str, str | None]:
    """Stop ``name`` (its supervisor starts a new one); the urns once all three run again."""
    before = urns(engine)
    engine.runtime.whereis(name).stop(timeout=10)
    wait_until(lambda: urns(engine)[name] not in (None, before[name]), 10, f"a new {name}")
    time.sleep(SETTLE_S)
    wait_until(lambda: None not in urns(engine).values(), 10, "the chain's actors")
    return urns(engine)


def test_a_gateway_crash_restarts_neither_the_confirmation_nor_the_executor(engine: Engine) -> None:
    wait_until(lambda: None not in urns(engine).values(), 10, "the chain's actors")
    before = urns(engine)
    after = restart(engine, GATEWAY_NAME)
    assert after[GATEWAY_NAME] != before[GATEWAY_NAME]
    # The trades in flight keep their watches, and the executor its state.
    assert (after[CONFIRMATION_NAME], after[EXECUTOR_NAME]) == (before[CONFIRMATION_NAME], before[EXECUTOR_NAME])


def test_a_new_confirmation_means_a_new_executor_and_leaves_the_gateway(engine: Engine) -> None:
    wait_until(lambda: None not in urns(engine).values(), 10, "the chain's actors")
    before = urns(engine)
    after = restart(engine, CONFIRMATION_NAME)
    assert after[CONFIRMATION_NAME] != before[CONFIRMATION_NAME]
    assert after[EXECUTOR_NAME] != before[EXECUTOR_NAME]  # rest_for_one: it must watch again
    assert after[GATEWAY_NAME] == before[GATEWAY_NAME]


def test_the_tree_diagram_in_the_code_is_the_running_tree(engine: Engine) -> None:
    """engine/_tree.py's docstring draws the root's children in start order: keep it true."""
    import re

    from xorj_actors.engine import _tree

    drawn = re.findall(r"^[├└]── (\S+)", _tree.__doc__ or "", re.MULTILINE)
    running = [child.id for child in engine.runtime.which_children("root")]
    assert drawn == running
