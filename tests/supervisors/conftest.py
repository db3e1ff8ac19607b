from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from supervisors import Runtime
from tests.helpers import wait_until


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    before = set(threading.enumerate())
    rt = Runtime(workers=2, mailbox_capacity=1000, name="test")
    try:
        yield rt
    finally:
        hung = rt.shutdown(timeout=5)
        assert not hung, f"actors did not stop: {hung}"
        wait_until(lambda: not (set(threading.enumerate()) - before), 5, "runtime threads to exit")
