"""The fault corpus: real backends with one publicly reported bug put back in.

Each fault is a thin subclass of a built-in backend (``over`` names it, and
its shipped expected failures apply to the fault's runs) that re-creates one
class of bug from a public report (``reports``, and the docstring tells the
story).  ``tests/faults/kill_matrix.py`` runs the ``ci`` profile of the suites
against every fault and writes ``docs/kill-matrix.md``: which property and
check caught it, after how many examples and seconds, and how small the shrunk
scenario is.  ``tests/nocover/test_suite_catches_faults.py`` checks a fast,
representative subset in CI, together with the seeded faults of
``tests/helpers/faulty_backends.py`` (one per property, over the reference).

Modules by bug class: ``_lost_state`` (state left behind), ``_hparams``
(group values left as the target had them), ``_stateless`` (plain SGD),
``_flatten`` (flat keys), ``_side_effects`` (a get that changes state),
``_tied``, ``_shards`` (uneven and empty shards), ``_types`` (kind and
placement), ``_aliasing``, ``_inputs`` (bad input accepted or reported
badly), ``_reshard``, ``_hangs``, ``_masked`` (faults behind known torch
defects, in the same example), ``_lifecycle`` (what only a chain of loads,
or a restart in a new process-group world, shows), ``_in_flight`` (what only a save in flight shows), ``_wrapped`` (what
only a wrapped model shows), ``_precision`` (what only mixed precision
shows), ``_pipeline`` (what only ranks holding different parameters show); ``_kit`` holds
what they share.
"""

from __future__ import annotations

from ._aliasing import GetReturnsLiveState, SetKeepsCallerTensors
from ._flatten import FlatKeysCollideAcrossOptimizers, FlatRoundTripAddsEmptyState
from ._hangs import FullSetHangsOnShardedPlans
from ._hparams import (
    CustomGroupKeysNotSaved,
    EmptyGroupLosesHyperparameters,
    InitialLrLost,
    LrNotLoaded,
    LrRecomputedFromInitialLr,
    SchedulerKeysNotRestored,
)
from ._in_flight import AsyncSaveWritesLiveState
from ._inputs import AcceptsStateOfWrongShape, ErrorNamesNoKey, UnknownKeysIgnored
from ._lifecycle import KeepsItsFirstProcessGroup, SecondLoadLosesState
from ._lost_state import (
    DCPDropsStateWhenGradsPresent,
    FrozenParamStateDroppedOnLoad,
    IgnoredModuleStateDropped,
    StepNotSaved,
    StepOffByOneOnLoad,
    StepRestartsAfterLoad,
)
from ._masked import FullSetKeepsAdamCustomKeys
from ._pipeline import CheckpointsRankZerosStageOnly
from ._precision import StateSavedInComputeDtype
from ._reshard import DCPReshardSkipsMissingRanks, ZeroReshardKeepsOldPartition
from ._shards import EmptyShardStateDropped, UnevenShardLosesLastElement
from ._side_effects import GetAdvancesStep
from ._stateless import StatelessGetFails, StatelessGroupsNotLoaded
from ._tied import TiedParamStateDropped
from ._types import MomentsNoLongerDTensors, StepCastToFloat64
from ._wrapped import WrapperNamesInKeys

#: Every fault of the corpus, by bug class.
CORPUS = (
    DCPDropsStateWhenGradsPresent, FrozenParamStateDroppedOnLoad, IgnoredModuleStateDropped,
    StepNotSaved, StepRestartsAfterLoad, StepOffByOneOnLoad,
    EmptyGroupLosesHyperparameters, LrNotLoaded, InitialLrLost, SchedulerKeysNotRestored,
    LrRecomputedFromInitialLr, CustomGroupKeysNotSaved,
    StatelessGroupsNotLoaded, StatelessGetFails,
    FlatRoundTripAddsEmptyState, FlatKeysCollideAcrossOptimizers,
    GetAdvancesStep,
    TiedParamStateDropped,
    EmptyShardStateDropped, UnevenShardLosesLastElement,
    MomentsNoLongerDTensors, StepCastToFloat64,
    GetReturnsLiveState, SetKeepsCallerTensors,
    AcceptsStateOfWrongShape, ErrorNamesNoKey, UnknownKeysIgnored,
    ZeroReshardKeepsOldPartition, DCPReshardSkipsMissingRanks,
    FullSetHangsOnShardedPlans,
    FullSetKeepsAdamCustomKeys,
    SecondLoadLosesState, KeepsItsFirstProcessGroup,
    AsyncSaveWritesLiveState,
    WrapperNamesInKeys,
    StateSavedInComputeDtype,
    CheckpointsRankZerosStageOnly,
)

__all__ = ["CORPUS", *(cls.__name__ for cls in CORPUS)]
