"""What a distributed example can end in, other than passing.

Each failure names the ranks involved, the phase each rank was in (the
property reports phases as it goes: "build", "train", "get", ...), and what
the ranks said: a remote traceback, a Python stack dump of a hung rank, or the
tail of a dead rank's stderr.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


@dataclass(frozen=True)
class RankReport:
    """What one rank said about a task that did not pass."""

    rank: int
    phase: str
    type_name: str
    message: str
    traceback: str
    is_assertion: bool

    @classmethod
    def from_exception(cls, rank: int, phase: str, exc: BaseException, note: str = "") -> "RankReport":
        return cls(
            rank=rank,
            phase=phase,
            type_name=type(exc).__qualname__,
            message="\n".join([f"{exc}{note}", *getattr(exc, "__notes__", ())]),
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            is_assertion=isinstance(exc, AssertionError),
        )


class WorldFailure(Exception):
    """Base class: an example failed somewhere in the world."""


class WorldStartError(WorldFailure):
    """A world could not be brought up (a rank died or hung while starting)."""


class RankError(WorldFailure):
    """A rank raised.  ``reports`` holds every rank's report (lowest rank first)."""

    def __init__(self, message: str, reports: tuple[RankReport, ...] = ()) -> None:
        super().__init__(message)
        self.reports = reports


class PropertyViolation(RankError, AssertionError):
    """A rank's check failed (an AssertionError in the property, e.g. `OSDMismatch`)."""


class RankHang(WorldFailure, AssertionError):
    """Ranks did not answer within the per-example timeout; the world was respawned.

    `signature`: the ranks that did not answer and the phase each was in, which
    is what a repeat of the same hang shows again (`World.run`'s ``repeat``)."""

    def __init__(self, message: str, signature: "HangSignature | None" = None) -> None:
        super().__init__(message)
        self.signature = signature


@dataclass(frozen=True)
class HangSignature:
    """What a hang looked like: which ranks had not answered, and the phase of each."""

    phases: tuple[tuple[int, str], ...]  # (rank, phase), by rank

    @property
    def ranks(self) -> frozenset[int]:
        return frozenset(r for r, _ in self.phases)


class RankCrash(WorldFailure, AssertionError):
    """A rank process died during the example; the world was respawned."""
