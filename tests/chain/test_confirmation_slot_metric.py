"""``xorj_confirmation_slot_age_seconds`` against a real localnet whose slot clock stalls."""

from __future__ import annotations

from supervisors import Runtime
from tests.chain.conftest import start_confirmation, wait_connected
from tests.helpers import wait_until
from xorj_actors.localnet import Localnet
from xorj_actors.metrics import Metrics


def test_slot_age_grows_while_the_slot_stream_stalls_and_drops_when_it_flows(
    runtime: Runtime, fast_localnet: Localnet
) -> None:
    metrics = Metrics()

    def age() -> float | None:
        return metrics.registry.get_sample_value("xorj_confirmation_slot_age_seconds")

    assert age() is None  # no node: no slot stream expected, no series
    metrics.expect_slots()
    ref = start_confirmation(fast_localnet, on_slot=metrics.on_slot)
    wait_connected(ref)
    wait_until(lambda: age() < 0.5, what="slots flowing (one every 20 ms)")
    fast_localnet.set_faults(clock_stalled=True)
    wait_until(lambda: age() > 2.0, what="the age growing while no slot comes")
    fast_localnet.reset_faults()
    wait_until(lambda: age() < 0.5, what="slots flowing again")


def test_slot_age_counts_from_when_slots_were_expected_until_the_first() -> None:
    metrics = Metrics()
    metrics.expect_slots()
    first = metrics.registry.get_sample_value("xorj_confirmation_slot_age_seconds")
    wait_until(lambda: metrics.registry.get_sample_value("xorj_confirmation_slot_age_seconds") > first, what="growing")
    metrics.on_slot()
    assert metrics.registry.get_sample_value("xorj_confirmation_slot_age_seconds") < first + 1.0
