"""The kill switch: halt epochs every actor must acknowledge, fail-closed state, K-of-M recovery."""

from xorj_actors.kill_switch._actor import (
    ClusterHalt,
    ClusterProof,
    EnterMaintenance,
    FollowRecovery,
    GetStatus,
    KillSwitch,
    KillSwitchStatus,
    Recover,
    RecoveryOutcome,
    RekeyStateFile,
)
from xorj_actors.kill_switch._downtime import (
    DOWNTIME_OPERATOR,
    KILL_SWITCH_ALIVE,
    DowntimeAction,
    DowntimeVerdict,
    judge_downtime,
)
from xorj_actors.kill_switch._liquidating import DOWNTIME_SOURCE
from xorj_actors.kill_switch._board import HaltBoard, HaltStatus
from xorj_actors.kill_switch._messages import HaltProgress
from xorj_actors.kill_switch._flatten import (
    VAULT_ROLE,
    Flatten,
    FlattenDone,
    FlattenOutcome,
    FlattenVault,
)
from xorj_actors.kill_switch._participant import KILL_SWITCH_NAME, Participant
from xorj_actors.kill_switch._persistence import FileReading, HaltMarker, StateFile, derive_state_key
from xorj_actors.kill_switch._recovery_keys import (
    RecoveryRefused,
    RecoveryVerifier,
    cluster_recovery_payload,
    load_recovery_keys,
    nonce_digest,
    recovery_payload,
    sign_cluster_recovery,
    sign_recovery,
)
from xorj_actors.kill_switch._start_decision import HaltHistory, StartDecision, Transition, decide, env_halt_request
from xorj_actors.kill_switch._state import InvalidTransition, KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import DowntimeLiquidationSettings, KillSwitchSettings

__all__ = [
    "DOWNTIME_OPERATOR",
    "DOWNTIME_SOURCE",
    "KILL_SWITCH_ALIVE",
    "KILL_SWITCH_NAME",
    "VAULT_ROLE",
    "ClusterHalt",
    "ClusterProof",
    "DowntimeAction",
    "DowntimeLiquidationSettings",
    "DowntimeVerdict",
    "EnterMaintenance",
    "FileReading",
    "Flatten",
    "FlattenDone",
    "FlattenOutcome",
    "FlattenVault",
    "FollowRecovery",
    "GetStatus",
    "HaltBoard",
    "HaltHistory",
    "HaltMarker",
    "HaltProgress",
    "HaltStatus",
    "InvalidTransition",
    "KillSwitch",
    "KillSwitchSettings",
    "KillSwitchState",
    "KillSwitchStatus",
    "Participant",
    "PersistedState",
    "Recover",
    "RecoveryOutcome",
    "RekeyStateFile",
    "RecoveryRefused",
    "RecoveryVerifier",
    "StartDecision",
    "StateFile",
    "Transition",
    "cluster_recovery_payload",
    "decide",
    "derive_state_key",
    "env_halt_request",
    "judge_downtime",
    "load_recovery_keys",
    "nonce_digest",
    "recovery_payload",
    "sign_cluster_recovery",
    "sign_recovery",
]
