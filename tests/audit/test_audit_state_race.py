"""The Audit actor's fail-closed state (``xorj_audit_fail_closed``) is set on the writer's thread
(store unavailable, available again) and the actor's: each set and its publish are one step, so
the last status published is never a stale one."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from xorj_actors.audit import Audit, AuditState


def test_a_store_back_while_its_outage_is_being_published_publishes_available_last(tmp_path: Path) -> None:
    audit: Any = object.__new__(Audit)  # its state handling alone: no runtime, no store
    audit.unavailable_reason = None
    audit._state_lock = threading.Lock()
    audit.kill_file = tmp_path / "KILL"
    audit.runtime = SimpleNamespace(whereis=lambda name: SimpleNamespace(tell=lambda message: None))
    published: list[AuditState] = []
    inside, release = threading.Event(), threading.Event()

    def publish_status(status: AuditState) -> None:
        if status.fail_closed:  # the outage's publish is held until the store came back
            inside.set()
            release.wait(10)
        published.append(status)

    audit.publish_status = publish_status
    outage = threading.Thread(target=audit._store_unavailable, args=("disk full",))
    outage.start()
    assert inside.wait(10)
    back = threading.Thread(target=audit._store_available)
    back.start()
    back.join(1)  # without the lock it has published by now; with it, it waits for the outage's publish
    release.set()
    outage.join(10)
    back.join(10)
    assert audit.unavailable_reason is None
    assert published[-1] == AuditState(fail_closed=False, reason=None)
