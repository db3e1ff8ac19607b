"""pytest fixture: a ``supervisors.Runtime`` for one test (registered in tests/conftest.py).

``runtime``: two pool workers, roomy mailboxes (20,000); at teardown every actor must stop and
every thread the test started must end, or the test fails (a leak is a bug).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from supervisors import Runtime
from tests.helpers import wait_until


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    before = set(threading.enumerate())
    rt = Runtime(workers=2, mailbox_capacity=20_000, name="test")
    try:
        yield rt
    finally:
        hung = rt.shutdown(timeout=10)
        assert not hung, f"actors did not stop: {hung}"
        wait_until(lambda: not (set(threading.enumerate()) - before), 10, "runtime threads to exit")
