"""Applying a plan on a rank: the torch wrappers, meshes and ZeRO around the optimizers.

Why its own module: this is the only part of the plan dimension that runs
torch.distributed; `apply_plan` checks the plan against `accepts` (in
`_refusals`) and dispatches to one function per kind (`_APPLY`), and
`trainable_params` maps whatever the plan wrapped back to the user's FQNs.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence

import torch
from torch import nn

from ._plans import MIXED_PRECISION, PlanSpec, _placement
from ._refusals import accepts
from ._wrappers import module_path, user_submodule


def apply_plan(plan: PlanSpec, module: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Apply `plan` to `module` in place where possible; return what to train."""
    reason = accepts(plan, world_size)
    if reason:
        raise ValueError(f"plan {plan.kind!r} at world size {world_size}: {reason}")
    return _APPLY[plan.kind](plan, module, device, world_size)


def wrap_optimizers(
    plan: PlanSpec, optimizers: Sequence[torch.optim.Optimizer]
) -> tuple[torch.optim.Optimizer, ...]:
    """The optimizers the workload steps: ZeRO wraps each one; other plans keep them."""
    if plan.kind != "zero":
        return tuple(optimizers)
    return tuple(_zero(opt) for opt in optimizers)


def _zero(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``ZeroRedundancyOptimizer`` with `optimizer`'s class, param groups and defaults.

    The groups carry every hyperparameter (as built), so ZeRO's local
    optimizers get them too; the defaults are cut to what the class's
    constructor takes.
    """
    from torch.distributed.optim import ZeroRedundancyOptimizer

    cls = type(optimizer)
    accepted = inspect.signature(cls.__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted and k != "params"}
    groups = [dict(g, params=list(g["params"])) for g in optimizer.param_groups]
    return ZeroRedundancyOptimizer(groups, optimizer_class=cls, **defaults)


# -- one function per kind ------------------------------------------------------


#: Device meshes built in this process, by default process group, device
#: type, shape and dim names.  A 2-D mesh creates a process group per dim, and
#: nothing destroys them: a gloo group keeps three threads alive, so a warm
#: world that built a mesh per example slowed down as it piled up thousands
#: of them.  A mesh holds no model state, so one per shape serves every
#: example; keying on the default group keeps a re-initialised world from
#: seeing the old world's meshes.
_MESHES: dict[tuple, object] = {}


def device_mesh(device_type: str, shape: tuple[int, ...], names: tuple[str, ...] | None = None):
    """The device mesh of `shape` over this process's world, built once (`_MESHES`)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    key = (dist.group.WORLD, device_type, tuple(shape), names)
    for stale in [k for k in _MESHES if k[0] is not dist.group.WORLD]:
        del _MESHES[stale]  # a restarted world's (`RankContext.restart_process_group`): dead groups
    if key not in _MESHES:
        _MESHES[key] = init_device_mesh(device_type, tuple(shape), mesh_dim_names=names)
    return _MESHES[key]


def _mesh(plan: PlanSpec, device: torch.device, world_size: int, names=None):
    return device_mesh(device.type, plan.mesh_shape(world_size), names)


def _none(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    return module


def _ddp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device] if device.type == "cuda" else None
    # Unused branches and parameters frozen after some steps get no gradient:
    # DDP must look for them, or it waits for their reduction forever.
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def _fsdp1(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    from ..reference import remember_full_shapes

    # FSDP1 flattens the original parameters into 1-D pieces and keeps no
    # public record of their shapes; the reference reads them from here.
    remember_full_shapes(module)
    units = {user_submodule(module, name) for name in plan.shard}
    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: m in units)
    mesh = _mesh(plan, device, world_size) if plan.mesh_ndim == 2 else None
    return FullyShardedDataParallel(
        module,
        auto_wrap_policy=policy,
        sharding_strategy=ShardingStrategy[plan.sharding_strategy],
        use_orig_params=plan.use_orig_params,
        device_id=device,
        device_mesh=mesh,
        mixed_precision=_fsdp1_mixed_precision(plan),
    )


def _precision_dtypes() -> dict[str, torch.dtype]:
    return {k: getattr(torch, v) for k, v in MIXED_PRECISION.items()}


def _fsdp1_mixed_precision(plan: PlanSpec):
    """FSDP1's ``MixedPrecision`` for `plan` (None: full precision).

    Buffers keep their dtype (``buffer_dtype`` unset), as under FSDP2, whose
    policy casts parameters only.  The root casts the model's inputs
    (``cast_root_forward_inputs``, the default), as FSDP2's root does.
    """
    if not plan.mixed_precision:
        return None
    from torch.distributed.fsdp import MixedPrecision

    return MixedPrecision(**_precision_dtypes())


def _fsdp2_policy(plan: PlanSpec) -> dict:
    """``fully_shard``'s ``mp_policy`` argument for `plan` (none: its default, full precision)."""
    if not plan.mixed_precision:
        return {}
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return {"mp_policy": MixedPrecisionPolicy(**_precision_dtypes())}


def _fully_shard(plan: PlanSpec, module: nn.Module, mesh) -> None:
    from torch.distributed.fsdp import fully_shard

    # Innermost first: fully_shard on a module whose parameters an outer
    # fully_shard already made DTensors fails (it takes them for TP shards).
    policy = _fsdp2_policy(plan)
    for name in reversed(plan.shard):
        fully_shard(user_submodule(module, name), mesh=mesh, reshard_after_forward=plan.reshard_after_forward, **policy)
    fully_shard(module, mesh=mesh, reshard_after_forward=plan.reshard_after_forward, **policy)


def _fsdp2(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    # On a 2-D mesh fully_shard replicates over dim 0 and shards over dim 1 (HSDP).
    names = ("replicate", "shard") if plan.mesh_ndim == 2 else None
    _fully_shard(plan, module, _mesh(plan, device, world_size, names=names))
    return module


def _tp_plan(plan: PlanSpec, module: nn.Module) -> dict:
    """Each Linear's style, with replicated input and output so it stands alone,
    by the Linear's path in `module` (inside whatever wraps it)."""
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    styles = {
        "colwise": lambda: ColwiseParallel(output_layouts=Replicate()),
        "rowwise": lambda: RowwiseParallel(input_layouts=Replicate()),
    }
    return {module_path(module, fqn, outermost=False): styles[style]() for fqn, style in plan.tp}


def _tp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    """TP, and each DTensor parameter's gradient in its own layout (see `_like_param`)."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import parallelize_module

    parallelize_module(module, _mesh(plan, device, world_size), _tp_plan(plan, module))
    for param in module.parameters():
        if isinstance(param, DTensor) and param.requires_grad:
            param.register_hook(functools.partial(_like_param, param))
    return module


def _fsdp2_tp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.tensor.parallel import parallelize_module

    mesh = _mesh(plan, device, world_size, names=("dp", "tp"))
    parallelize_module(module, mesh["tp"], _tp_plan(plan, module))
    _fully_shard(plan, module, mesh["dp"])
    return module


def _zero_model(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    return _ddp(plan, module, device, world_size)


def _dtensor(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    """Distribute each parameter with its placements; inputs and outputs stay plain tensors.

    Inputs enter as replicated DTensors, so every op runs on DTensors and
    autograd gives each parameter its gradient in its own layout; the output
    is made replicated and local again, so the loss is the same on every rank.
    """
    from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_module, distribute_tensor

    mesh = _mesh(plan, device, world_size)
    chosen = dict(plan.placements)
    replicate = tuple(Replicate() for _ in range(mesh.ndim))
    from ..reference._fqn import user_fqn

    canonical: dict[int, str] = {}  # by the user's FQN, as `placements` names them
    for name, param in module.named_parameters(remove_duplicate=False):
        canonical.setdefault(id(param), user_fqn(name))
    made: dict[int, nn.Parameter] = {}  # tied parameters stay tied

    def partition(prefix: str, submodule: nn.Module, mesh) -> None:
        for name, param in list(submodule.named_parameters(recurse=False)):
            if id(param) not in made:
                places = chosen.get(canonical[id(param)], ("R",) * mesh.ndim)
                placements = [Replicate() if (d := _placement(p)) is None else Shard(d) for p in places]
                made[id(param)] = new = nn.Parameter(
                    distribute_tensor(param.detach(), mesh, placements), requires_grad=param.requires_grad
                )
                if new.requires_grad:
                    new.register_hook(functools.partial(_like_param, new))
            submodule.register_parameter(name, made[id(param)])

    def replicated(a):
        # The model's input is a tuple (features, indices): convert inside it too.
        if isinstance(a, torch.Tensor) and not isinstance(a, DTensor):
            return DTensor.from_local(a, mesh, replicate, run_check=False)
        if isinstance(a, (tuple, list)):
            return type(a)(replicated(x) for x in a)
        return a

    def inputs(mod, args, mesh):
        return tuple(replicated(a) for a in args)

    def outputs(mod, out, mesh):
        return out.redistribute(mesh, replicate).to_local() if isinstance(out, DTensor) else out

    distribute_module(module, mesh, partition, inputs, outputs)
    return module


def _pp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    """Cut `module` to this rank's pipeline stage (`_pipeline`), in place.

    The layers of other stages go: a module becomes an ``nn.Identity`` (so a
    ``ModuleList`` keeps its indices and the stage's FQNs stay the user's), a
    bare parameter is removed, and neither runs in the forward.  The schedule
    that trains the stage is `pipeline_schedule`'s.
    """
    import torch.distributed as dist

    from ._models import TreeModel
    from ._pipeline import stage_bounds

    if not isinstance(module, TreeModel):
        raise TypeError(f"a pipeline stage is cut from the suite's TreeModel, not {type(module).__name__}")
    stage = dist.get_rank()
    names = module.top_level_names
    start, stop = stage_bounds(len(names), world_size, stage)
    owned = set(names[start:stop])
    layers = user_submodule(module, "layers", outermost=False)  # the ModuleList, whatever wraps it
    for name in list(layers._parameters):
        if name not in owned:
            del layers._parameters[name]
    for name in list(layers._modules):
        if name not in owned:
            layers._modules[name] = nn.Identity()
    layers._steps = [step for step in layers._steps if step[0] in owned]
    module.hands_on = stage < world_size - 1
    return module


def pipeline_schedule(module: nn.Module, device: torch.device, world_size: int):
    """The GPipe schedule that trains this rank's stage `module` (a ``pp`` plan's).

    ``PP_MICROBATCHES`` microbatches; the last stage's loss is the suite's
    (`_models.loss`) of each microbatch's output, and the schedule divides
    the summed gradients by the microbatch count (its ``scale_grads``), so
    a step's gradient is the global batch's mean as without a plan.
    """
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    from ._models import loss
    from ._pipeline import PP_MICROBATCHES

    stage = PipelineStage(module, dist.get_rank(), world_size, device)
    return ScheduleGPipe(stage, n_microbatches=PP_MICROBATCHES, loss_fn=lambda output, target: loss(output))


def _like_param(param, grad):
    """`grad` in `param`'s layout.

    Autograd may hand a DTensor parameter a gradient laid out otherwise (torch
    2.13: a dim sharded on both mesh dims, or a TP bias split into empty
    pieces, comes back replicated); optimizers update their state in place,
    which DTensor allows only between equal layouts.
    """
    if grad.placements != param.placements:
        return grad.redistribute(param.device_mesh, param.placements)
    return grad


def trainable_params(module: nn.Module) -> dict[str, nn.Parameter]:
    """The module's parameters by the user's FQN (the segments FSDP1, activation
    checkpointing and torch.compile insert removed, as the reference keys them)."""
    from ..reference._fqn import user_fqn

    params: dict[str, nn.Parameter] = {}
    for name, param in module.named_parameters():
        params.setdefault(user_fqn(name), param)
    return params


_APPLY: dict[str, Callable[..., nn.Module]] = {
    "none": _none,
    "ddp": _ddp,
    "fsdp1": _fsdp1,
    "fsdp2": _fsdp2,
    "tp": _tp,
    "fsdp2+tp": _fsdp2_tp,
    "zero": _zero_model,
    "dtensor": _dtensor,
    "pp": _pp,
}
