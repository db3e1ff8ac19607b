"""The chaos tests' shared clean-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.cluster_rig import OPEN


@pytest.fixture(autouse=True)
def _close_rigs() -> Iterator[None]:
    """A rig whose test failed before its own ``close`` still stops its processes: a localnet left
    running after a failed fail-over test kept loading the machine for the rest of the suite."""
    yield
    while OPEN:
        OPEN.pop().close()
