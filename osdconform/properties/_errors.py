"""Property 9, errors are clear and atomic.

A load of a state that does not fit must raise, from the load itself, an
exception that names the offending key or file, on every rank (a rank left
waiting in a collective is a hang, which the harness reports), and leave the
model and the optimizer exactly as they were.  The target optimizer has been
stepped once, so a partial load has something to overwrite.

Faults (`Fault.kind`):

* ``shape``: a state tensor of one parameter gets one more row;
* ``unknown_fqn``: state for a parameter the model does not have;
* ``missing_fqn``: a parameter of a group is missing from the OSD;
* ``missing_state_key``: one state entry (e.g. ``exp_avg``) of one parameter is
  missing, one that its peers in the group have (see `_with_peers`);
* ``wrong_optimizer``: the OSD of another optimizer class;
* ``truncate_file`` / ``corrupt_file``: a checkpoint file cut short / overwritten
  with garbage in the middle (storage only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..backends import make_backend
from ..compare import OSDMismatch, differences
from ..expected_failures import PROBLEM_SEPARATOR
from ..scenario import GroupSpec, OptimizerSpec, Scenario
from ._steps import fresh, load_state, local_snapshot, save_state, source, train_steps

IN_MEMORY_FAULTS = ("shape", "unknown_fqn", "missing_fqn", "missing_state_key", "wrong_optimizer")
STORAGE_FAULTS = ("truncate_file", "corrupt_file", "wrong_optimizer")
UNKNOWN_FQN = "no_such_module.no_such_param"


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and a number picking where it strikes (index into candidates)."""

    kind: str
    pick: int = 0


def other_optimizer(scenario: Scenario) -> Scenario:
    """`scenario` with each optimizer replaced by another class over the same groups."""
    swapped = tuple(
        OptimizerSpec(
            "sgd" if opt.name != "sgd" else "adam",
            tuple(GroupSpec(g.params, (("momentum", 0.9),) if opt.name != "sgd" else ()) for g in opt.groups),
        )
        for opt in scenario.optimizers
    )
    return scenario.replace(optimizers=swapped)


def _state_tensors(osd: dict) -> list[tuple[str, str]]:
    return sorted(
        (fqn, name)
        for fqn, st in osd["state"].items()
        for name, v in st.items()
        if isinstance(v, torch.Tensor) and v.dim() > 0
    )


def _with_peers(osd: dict, tensors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """State entries that another parameter of the same group has too, at the same rank.

    Only such a missing entry can be noticed from the OSD alone: which entries
    an optimizer needs is not written anywhere, but its parameters of one
    group and rank all carry the same ones.
    """
    group_of = {f: g for g, group in enumerate(osd["param_groups"]) for f in group["params"]}
    out = []
    for fqn, name in tensors:
        v = osd["state"][fqn][name]
        if any(
            other != fqn and group_of.get(other) == group_of.get(fqn) and other_name == name
            and osd["state"][other][name].dim() == v.dim()
            for other, other_name in tensors
        ):
            out.append((fqn, name))
    return out


def _break_osd(osd: dict, fault: Fault) -> tuple[str, ...]:
    """Apply an in-memory fault to the canonical `osd` in place; return what the error must name.

    A fault that needs a state tensor, in an OSD that has none (nothing
    trained yet, every parameter frozen), strikes as ``unknown_fqn`` instead.
    """
    tensors = _state_tensors(osd)
    if fault.kind in ("shape", "missing_state_key") and not tensors:
        fault = Fault("unknown_fqn", fault.pick)
    if fault.kind == "shape":
        fqn, name = tensors[fault.pick % len(tensors)]
        v = osd["state"][fqn][name]
        osd["state"][fqn][name] = torch.cat([v, v[:1]]) if v.shape[0] else torch.zeros((1, *v.shape[1:]), dtype=v.dtype)
        return (fqn,)
    if fault.kind == "unknown_fqn":
        some = next(iter(osd["state"].values()), {})
        osd["state"][UNKNOWN_FQN] = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in some.items()}
        return (UNKNOWN_FQN,)
    if fault.kind == "missing_fqn":
        fqns = [f for g in osd["param_groups"] for f in g["params"]]
        fqn = fqns[fault.pick % len(fqns)]
        for g in osd["param_groups"]:
            if fqn in g["params"]:
                g["params"] = [f for f in g["params"] if f != fqn]
        osd["state"].pop(fqn, None)
        return (fqn,)
    if fault.kind == "missing_state_key":
        candidates = _with_peers(osd, tensors)
        if not candidates:
            return _break_osd(osd, Fault("unknown_fqn", fault.pick))
        fqn, name = candidates[fault.pick % len(candidates)]
        del osd["state"][fqn][name]
        return (fqn, name)
    raise ValueError(f"not an in-memory fault: {fault.kind!r}")


def _break_files(directory: str, fault: Fault) -> tuple[str, ...]:
    """Damage the largest file under `directory` (on rank 0; the others wait); return its name."""
    files = sorted(
        os.path.join(root, f) for root, _, names in os.walk(directory) for f in names
    )
    # The largest file: the one holding the tensors (not an index or metadata
    # file), so every backend is judged on the same kind of damage.
    target = max(files, key=lambda f: (os.path.getsize(f), f))
    size = os.path.getsize(target)
    if fault.kind == "truncate_file":
        with open(target, "r+b") as fh:
            fh.truncate(size // 2)
    else:
        with open(target, "r+b") as fh:
            fh.seek(size // 3)
            fh.write(b"\xde\xad\xbe\xef" * max(1, min(64, size // 12)))
    # What naming the file means: its path, or the checkpoint directory (unique
    # to this example), or its path under that directory when it has a folder
    # of its own.  Not its bare name: "checkpoint" or "optimizer.bin" also
    # appear in error texts that say nothing of where the file is (torch's
    # weights_only message mentions "the checkpoint").
    rel = os.path.relpath(target, directory)
    return (target, directory, *((rel,) if os.sep in rel else ()))


def errors(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None, fault: Fault) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    saved = save_state(ctx, backend, src, options, directory)
    target_scenario = other_optimizer(scenario) if fault.kind == "wrong_optimizer" else scenario
    dst = fresh(ctx, target_scenario, backend)
    with ctx.phase("train target"):
        train_steps(backend, dst, 1)
    with ctx.phase(f"inject fault {fault.kind}"):
        if fault.kind in ("truncate_file", "corrupt_file"):
            names = _break_files(directory, fault) if ctx.rank == 0 else ()
            holder = [names]
            dist.broadcast_object_list(holder, src=0)
            names = holder[0]
            dist.barrier()
        elif fault.kind == "wrong_optimizer":
            names = ()
        else:
            names = _break_osd(saved, fault)
    with ctx.phase("snapshot"):
        before = local_snapshot(dst)
    try:
        load_state(ctx, backend, dst, saved, options, directory)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - any type is allowed (DCP's CheckpointException
        # derives from BaseException); its message is judged
        message = f"{type(exc).__name__}: {exc}"
    else:
        raise AssertionError(
            f"errors ({fault.kind}): the load accepted a broken state without raising"
        )
    with ctx.phase("compare"):
        # Every check runs and every failing one is reported (PROBLEM_SEPARATOR
        # between them), so an expected failure for one cannot hide another.
        problems = []
        if names and not any(n in message for n in names):
            problems.append(
                f"errors ({fault.kind}): the exception does not name the offending key or file "
                f"(any of {list(names)}): {message[:500]}"
            )
        after = local_snapshot(dst)
        for what in ("osd", "params"):
            label = "optimizer" if what == "osd" else "parameters"
            context = f"errors ({fault.kind}): {label} before vs after the failed load"
            problems += [str(OSDMismatch(d, context)) for d in differences(before[what], after[what])]
        if problems:
            raise AssertionError(PROBLEM_SEPARATOR.join(problems))
    return {"message": message[:200]}
