"""A risk figure's trigger episode, pure: breach, escalation steps, re-arming below the margin."""

from __future__ import annotations

from xorj_actors.risk._drawdown_state import Episode


def test_an_episode_fires_on_breach_then_only_on_each_escalation_step() -> None:
    e = Episode(0.15)
    assert e.update(0.14, 0.01, 0.05) is None and not e.latched
    assert e.update(0.15, 0.01, 0.05) == "breach" and e.latched and e.level == 0.15
    assert e.update(0.19, 0.01, 0.05) is None  # worse, but less than a step
    assert e.update(0.20, 0.01, 0.05) == "escalation" and e.level == 0.20
    assert e.update(0.16, 0.01, 0.05) is None and e.latched  # better, still in the episode


def test_an_episode_rearms_only_below_the_threshold_minus_the_margin() -> None:
    e = Episode(0.15)
    assert e.update(0.16, 0.01, 0.05) == "breach"
    assert e.update(0.14, 0.01, 0.05) is None and e.latched  # within the margin: still latched
    assert e.update(0.139, 0.01, 0.05) is None and not e.latched
    assert e.update(0.15, 0.01, 0.05) == "breach"  # a new episode
