"""The downtime liquidation rule (pure) and its settings: milliseconds, no engine."""

from __future__ import annotations

import pytest

from xorj_actors.config import parse_config
from xorj_actors._settings import ConfigError
from xorj_actors.kill_switch import DowntimeAction, DowntimeLiquidationSettings, KillSwitchState, judge_downtime

ON = DowntimeLiquidationSettings(enabled=True, max_downtime_s=600, vaults=("vault-0001",))
NOW = 1_800_000_000.0
_S = KillSwitchState


def judge(settings: DowntimeLiquidationSettings = ON, *, down: float | None = 601, seen: bool = True,
          state: KillSwitchState = _S.ARMED, halt: str | None = None):
    return judge_downtime(settings, last_alive=None if down is None else NOW - down, seen_alive=seen, now=NOW,
                          state=state, halt=halt)


def test_down_longer_than_the_limit_flattens_the_chosen_vaults() -> None:
    v = judge()
    assert v.action is DowntimeAction.FLATTEN and v.vaults == ("vault-0001",) and v.down_s == pytest.approx(601)
    assert v.details() == {"what": "downtime liquidation decided", "down_s": 601.0, "max_downtime_s": 600,
                           "vaults": ["vault-0001"], "why": "down 601.0 s > 600 s"}
    assert judge(state=_S.RECOVERY_PENDING).action is DowntimeAction.FLATTEN  # trading possible: acts
    assert judge(DowntimeLiquidationSettings(enabled=True, max_downtime_s=600)).details()["vaults"] == "all"


@pytest.mark.parametrize("down", [0, 599.9, 600, -30])
def test_down_no_longer_than_the_limit_does_nothing(down: float) -> None:
    assert judge(down=down).action is DowntimeAction.WITHIN


def test_a_wall_clock_behind_the_last_entry_flattens_nothing_and_is_audited() -> None:
    v = judge(down=-30)
    assert v.action is DowntimeAction.WITHIN and v.audited and v.down_s == pytest.approx(-30)
    assert v.details()["what"] == "downtime liquidation skipped" and v.why == "the wall clock is 30.0 s behind the last entry"
    assert not judge(down=30).audited  # an ordinary quick restart is not worth an entry


def test_off_by_default_and_off_does_nothing() -> None:
    assert DowntimeLiquidationSettings().enabled is False
    assert judge(DowntimeLiquidationSettings(), down=10**6).action is DowntimeAction.OFF


def test_no_liveness_record_is_not_downtime() -> None:
    assert judge(down=None).action is DowntimeAction.NO_RECORD  # an empty log: a first start
    assert judge(down=10**6, seen=False).action is DowntimeAction.NO_RECORD  # written by a version without `alive`


@pytest.mark.parametrize("state", [_S.TRIGGERED, _S.MAINTENANCE, _S.REDUCING])
def test_a_halt_wins(state: KillSwitchState) -> None:
    v = judge(state=state, halt=f"{state.value}: x")
    assert v.action is DowntimeAction.SKIPPED and "halted" in v.why and v.audited
    assert v.details()["what"] == "downtime liquidation skipped"
    assert judge(halt="KILL_SWITCH_ACTIVE=1").action is DowntimeAction.SKIPPED  # a halt about to start
    assert judge(state=state).action is DowntimeAction.SKIPPED  # a halted state, whatever the caller said


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("vaults = \"some\"", 'vaults: must be "all" or a list of vault ids'),
        ("vaults = []", "vaults: an empty list chooses nothing"),
        ("vaults = [\"a\", \"a\"]", "vaults: listed twice: a"),
        ("vaults = [\"a:b\"]", "vaults: not a vault id"),
        ("max_downtime_s = 0", "max_downtime_s: must be between 1"),
        ("start_grace_s = 0", "start_grace_s: must be between 1"),
        ("enabeld = true", "unknown key (did you mean 'enabled'?)"),
    ],
)
def test_bad_settings_are_refused_at_load(table: str, error: str) -> None:
    with pytest.raises(ConfigError, match="kill_switch.downtime_liquidation.") as exc:
        parse_config(f"[kill_switch.downtime_liquidation]\n{table}\n")
    assert error in str(exc.value)


def test_a_limit_a_running_engine_could_reach_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_downtime_s: must be at least twice alive_every_s"):
        parse_config("[kill_switch]\nalive_every_s = 60\n[kill_switch.downtime_liquidation]\nenabled = true\nmax_downtime_s = 100\n")
    good = parse_config("[kill_switch.downtime_liquidation]\nenabled = true\nmax_downtime_s = 7200\nvaults = [\"vault-0003\"]\n")
    assert good.kill_switch.downtime_liquidation == DowntimeLiquidationSettings(True, 7200.0, ("vault-0003",))


def test_check_shows_whether_the_policy_is_on(tmp_path) -> None:
    from xorj_actors.check import PRODUCTION_CHECKS, CheckContext, Status, run_checks

    def shown(text: str) -> tuple[Status, str]:
        ctx = CheckContext(config=parse_config(text), data_dir=tmp_path, environ={})
        (result,) = [r for r in run_checks(PRODUCTION_CHECKS, ctx) if r.name == "downtime_liquidation"]
        return result.status, result.detail

    assert shown("") == (Status.OK, "off (the default): a restart after any downtime flattens nothing")
    on = "[kill_switch.downtime_liquidation]\nenabled = true\nmax_downtime_s = 7200\n"
    assert shown(on) == (Status.OK, "ON: a start after more than 7200 s down halts and flattens every vault running on this node")
    assert shown(on + 'vaults = ["vault-0001", "vault-0007"]\n')[1].endswith("flattens vault-0001, vault-0007")
