"""How a world's failures read, and the health check after a rank raised.

Why its own module: the local world (`_world.World`, run by `WorldPool`) and
the scale-out world under torchrun (`_scaleout.ScaleOutPool`) attribute a
failure the same way (a line per rank, the first rank's error with its
remote traceback, a hang with the ranks' last phases) and check a world with
the same barrier after a rank raised.  Written once here, the two cannot
drift apart; each passes what only it knows: where the world is, what
becomes of it after a hang, the phases it read, and its own tail (the ranks'
logs, or their task threads' stacks).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ._errors import PropertyViolation, RankError, RankReport


def health_barrier(ctx) -> None:
    """The task run on every rank after one raised: is the process group still usable?"""
    import torch.distributed as dist

    ctx.set_phase("health barrier")
    dist.barrier()


def rank_statuses(
    size: int,
    errors: Mapping[int, RankReport],
    pending: Iterable[int] = (),
    phases: Mapping[int, str] | None = None,
    dead: Mapping[int, str] | None = None,
) -> str:
    """One line per rank: died (how), raised (what, in which phase), no answer, or passed."""
    phases = phases or {}
    dead = dead or {}
    pending = set(pending)
    lines = []
    for r in range(size):
        if r in dead:
            lines.append(f"rank {r}: died ({dead[r]}) in phase {phases.get(r, '?')!r}")
        elif r in errors:
            lines.append(f"rank {r}: raised {errors[r].type_name} in phase {errors[r].phase!r}")
        elif r in pending:
            lines.append(f"rank {r}: no answer, last phase {phases.get(r, '?')!r}")
        else:
            lines.append(f"rank {r}: passed")
    return "\n".join(lines)


def rank_error(where: str, size: int, errors: Mapping[int, RankReport]) -> RankError:
    """The exception for ranks that all answered, some raising: the first one's, with every report.

    `PropertyViolation` when the first raised an ``AssertionError``, else `RankError`.
    """
    first = errors[min(errors)]
    cls = PropertyViolation if first.is_assertion else RankError
    msg = (
        f"{first.message}\n\n"
        f"[{where}; {first.type_name} on rank {first.rank} in phase {first.phase!r}]\n"
        f"{rank_statuses(size, errors)}\n"
        f"--- remote traceback (rank {first.rank}) ---\n{first.traceback}"
    )
    return cls(msg, tuple(errors[r] for r in sorted(errors)))


def hang_message(
    where: str,
    fate: str,
    size: int,
    pending: Iterable[int],
    errors: Mapping[int, RankReport],
    phases: Mapping[int, str],
    waited: float,
    tail: Iterable[str],
) -> str:
    """Why `pending` ranks did not answer: after another rank raised, or at the deadline.

    `where` names the world and `fate` what becomes of it; `tail` are the
    sections the caller adds at the end (rank logs, task-thread stacks).
    """
    pending = sorted(pending)
    lines = []
    if errors:
        first = errors[min(errors)]
        lines.append(
            f"rank {first.rank} raised {first.type_name} in phase {first.phase!r} "
            f"and ranks {pending} then did not answer:\n{first.message}"
        )
    else:
        lines.append(
            f"example timed out after {waited:.1f} s: ranks {pending} did not answer (last phases: "
            + ", ".join(f"rank {r} in {phases.get(r, '?')!r}" for r in pending)
            + ")"
        )
    lines.append(f"[{where}; {fate}]")
    lines.append(rank_statuses(size, errors, pending, phases))
    if errors:
        first = errors[min(errors)]
        lines.append(f"--- remote traceback (rank {first.rank}) ---\n{first.traceback}")
    lines += tail
    return "\n".join(lines)
