"""The lease fence and the NATS-lost rule, pure: times passed in, no sleeps."""

from __future__ import annotations

import pytest

from xorj_actors.cluster import ClusterSettings, FenceRefusal, Fenced, LeaseClock, LeaseGrant, nats_lost

CLOCK = LeaseClock(ttl_s=10.0, margin_s=3.0, renew_every_s=2.0)
GRANT = LeaseGrant("vault-0001", revision=42, sent_at=100.0)


def test_a_lease_is_usable_until_send_time_plus_ttl_minus_margin() -> None:
    assert CLOCK.usable_until(GRANT) == 107.0
    assert CLOCK.check("vault-0001", GRANT, 100.0) == 42
    assert CLOCK.check("vault-0001", GRANT, 106.999) == 42
    assert CLOCK.usable(GRANT, 106.999)


def test_the_deadline_itself_is_already_fenced() -> None:
    assert not CLOCK.usable(GRANT, 107.0)
    with pytest.raises(Fenced) as caught:
        CLOCK.check("vault-0001", GRANT, 107.0)
    assert caught.value.refusal is FenceRefusal.EXPIRED
    assert "revision 42" in str(caught.value)


def test_a_paused_node_that_resumes_long_after_is_fenced() -> None:
    # SIGSTOP at 101, SIGCONT at 160: the monotonic clock kept running while it was stopped.
    with pytest.raises(Fenced, match="expired"):
        CLOCK.check("vault-0001", GRANT, 160.0)


def test_no_grant_or_another_vaults_grant_is_not_held() -> None:
    for grant in (None, LeaseGrant("vault-0002", 42, 100.0)):
        with pytest.raises(Fenced) as caught:
            CLOCK.check("vault-0001", grant, 100.0)
        assert caught.value.refusal is FenceRefusal.NOT_HELD


def test_renewal_is_due_every_renew_interval_from_the_send() -> None:
    assert not CLOCK.renew_due(GRANT, 101.999)
    assert CLOCK.renew_due(GRANT, 102.0)
    # A renewal at 102 that is answered late still counts from its send.
    renewed = LeaseGrant("vault-0001", 43, sent_at=102.0)
    assert CLOCK.usable_until(renewed) == 109.0


def test_the_clock_follows_the_settings_and_refuses_nonsense() -> None:
    settings = ClusterSettings(lease_ttl_s=6.0, renew_every_s=1.0, fence_margin_s=2.0)
    settings.validate()
    clock = LeaseClock.from_settings(settings)
    assert clock.usable_until(GRANT) == 104.0
    for ttl, margin, renew in ((10, 10, 1), (10, 3, 7), (10, float("nan"), 1), (0, 0, 0)):
        with pytest.raises(ValueError):
            LeaseClock(ttl, margin, renew)


def test_nats_lost_after_the_limit_without_contact() -> None:
    assert not nats_lost(100.0, 109.999, 10.0)
    assert nats_lost(100.0, 110.0, 10.0)
    assert nats_lost(None, 0.0, 10.0)  # never reached NATS: nothing is known
