"""What the installed torch release can run: plans refused on older torch, with the release that can.

Why its own module: osdconform accepts a range of torch releases
(pyproject.toml), and some plans cannot even train on the older ones on some
devices.  Such a plan must be refused when scenarios are drawn, with the
reason and the release that runs it, never reported as a backend's failure
(thousands of failing examples shrunk to a 1x1 layer say nothing about the
backend).  `Capabilities.on` applies these refusals, so every draw, the
``osdconform backends`` listing and the run's header see them.

Each floor was found by running the suites on the releases around it
(docs/torch-versions.md) and has a probe script (``expected_failures/floors/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from packaging.version import Version

#: (plan kind, device kind) -> (first torch release that runs it, why older ones cannot).
#: A reason may name its probe (``expected_failures/floors/``), which a test
#: runs to check the floor against the installed torch.
FLOORS: dict[tuple[str, str], tuple[str, str]] = {
    ("fsdp2", "cpu"): (
        "2.7",
        "fully_shard's all-gather records an event on the CPU stream "
        "('Stream' object has no attribute 'record_event'); "
        "probe: expected_failures/floors/torch_fsdp2_cpu.py",
    ),
    ("fsdp2+tp", "cpu"): ("2.7", "it is built on fully_shard (see fsdp2)"),
}


def installed_release() -> str:
    """The installed torch's release (``2.13.0`` of ``2.13.0+cpu``)."""
    import torch

    return Version(torch.__version__).base_version


def release_refusals(device: str, release: str | None = None) -> dict[str, str]:
    """Plan kind -> why torch `release` (default: the installed one) cannot run it on `device`."""
    release = release or installed_release()
    refused = {}
    for (kind, dev), (floor, why) in FLOORS.items():
        if dev == device and Version(release) < Version(floor):
            refused[kind] = f"plan {kind!r} on {device} needs torch >= {floor} (installed {release}): {why}"
    return refused


# -- Floors that depend on the model too ---------------------------------------
# Found by the full space on 2.6.0 (docs/torch-versions-notes.md): scenarios
# older torch cannot even build or train with the plan, whatever the backend.
# `_refusals.accepts` applies them, so the strategies never draw them there.


@dataclass(frozen=True)
class ModelFloor:
    """A (plan, model) combination torch releases before `first` cannot run."""

    first: str
    why: str  # names its probe script, "probe: expected_failures/floors/<name>.py"
    applies: Callable[[Any, Any, "int | None"], bool]  # (plan, model, steps) -> bool


def _trains_a_convolution(plan: Any, model: Any, steps: int | None) -> bool:
    """The dtensor plan runs forward (a step) through a used Conv1d/Conv2d."""
    if plan.kind != "dtensor" or steps == 0:
        return False
    from ._refusals import conv_param_fqns

    unused = set(model.unused_param_fqns())
    return any(f not in unused for f in conv_param_fqns(model))


def _trains_an_embedding(plan: Any, model: Any, steps: int | None) -> bool:
    """The dtensor plan runs backward (a step) through a used Embedding."""
    if plan.kind != "dtensor" or steps == 0:
        return False
    from ._refusals import embedding_param_fqns

    unused = set(model.unused_param_fqns())
    return any(f not in unused for f in embedding_param_fqns(model))


def _trains_a_batch_norm(plan: Any, model: Any, steps: int | None) -> bool:
    """The dtensor plan runs forward (a step) through a batch norm that is used (it may have no parameters)."""
    if plan.kind != "dtensor" or steps == 0:
        return False
    from ._models import BatchNormSpec
    from ._models._layout import _layout

    return any(u.kind is BatchNormSpec and u.used for u in _layout(model.tree()).units)


def _trains_on_a_2d_mesh(plan: Any, model: Any, steps: int | None) -> bool:
    return plan.kind == "dtensor" and plan.mesh_2d and steps != 0


def tp_plan_reaches_another_module(plan: Any, model: Any, steps: int | None = None) -> bool:
    """Whether ``parallelize_module`` before torch 2.9 applies a plan entry to a
    module it does not name that is no Linear or Embedding (and so raises).

    Its loop pops the path's atoms one by one at the level it started from,
    even after descending with the rest: for ``layers.1.0`` it also matches
    ``0`` against the children of ``layers`` (a Conv1d at ``layers.0``).
    This follows that loop over the model's module names."""
    if plan.kind not in ("tp", "fsdp2+tp"):
        return False
    from ._models import EmbeddingSpec, LinearSpec

    tree = model.tree()
    modules = set(tree.layer_fqns())
    for fqn in tree.param_fqns():
        parts = fqn.split(".")[:-1]
        modules |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    splittable = set(tree.unit_fqns(LinearSpec)) | set(tree.unit_fqns(EmbeddingSpec))

    def children(prefix: str) -> list[str]:
        depth = prefix.count(".") + 1 if prefix else 0
        return sorted(m for m in modules if m.count(".") == depth and (not prefix or m.startswith(prefix + ".")))

    def reached(prefix: str, path: str) -> set[str]:
        atoms, found = path.split("."), set()
        while atoms:
            atom = atoms.pop(0)
            for child in children(prefix):
                if fnmatch(child.rsplit(".", 1)[-1], atom):
                    found |= reached(child, ".".join(atoms)) if atoms else {child}
        return found

    return any(m != fqn and m not in splittable for fqn, _ in plan.tp for m in reached("", fqn))


MODEL_FLOORS: tuple[ModelFloor, ...] = (
    ModelFloor(
        "2.10",
        "DTensor cannot run a convolution over replicated DTensors (Conv1d: 'Sharding propagation "
        "failed on aten.convolution'; a padded Conv2d fails inside gloo, and on 2.6 a Conv2d with a "
        "bias in backward); probe: expected_failures/floors/torch_dtensor_conv.py",
        _trains_a_convolution,
    ),
    ModelFloor(
        "2.11",
        "an Embedding's backward over DTensors takes its gradient's shape from another Embedding "
        "trained earlier in the process (a sharding-propagation cache that leaves out num_weights); "
        "probe: expected_failures/floors/torch_dtensor_embedding_cache.py",
        _trains_an_embedding,
    ),
    ModelFloor(
        "2.12",
        "batch norm has no DTensor sharding strategy ('Operator aten.native_batch_norm.default "
        "does not have a sharding strategy registered'); "
        "probe: expected_failures/floors/torch_dtensor_batch_norm.py",
        _trains_a_batch_norm,
    ),
    ModelFloor(
        "2.8",
        "parameters replicated over a 2-D mesh fail in backward ('redistribute failed!'); "
        "probe: expected_failures/floors/torch_dtensor_2d_mesh.py",
        _trains_on_a_2d_mesh,
    ),
    ModelFloor(
        "2.9",
        "parallelize_module applies a plan entry naming a nested Linear to another module too "
        "('ColwiseParallel currently only support nn.Linear and nn.Embedding!'); "
        "probe: expected_failures/floors/torch_tp_nested_plan.py",
        tp_plan_reaches_another_module,
    ),
)


def release_model_refusal(plan: Any, model: Any, steps: int | None, release: str | None = None) -> str | None:
    """Why torch `release` (default: the installed one) cannot run `plan` with `model`, or None."""
    release = release or installed_release()
    for floor in MODEL_FLOORS:
        if Version(release) < Version(floor.first) and floor.applies(plan, model, steps):
            return f"plan {plan.kind!r} with this model needs torch >= {floor.first} (installed {release}): {floor.why}"
    return None
