"""The golden twin: a scenario trained in one process, without any plan.

For any scenario, the twin builds the same model and optimizers (same seed,
so the same initial values), trains them on the same global data for the same
steps, and returns the canonical full OSD.  Nothing is sharded and no
collective runs, so its optimizer state is what the distributed run *should*
hold; a backend's full OSD is compared with it within `GOLDEN_TOLERANCE`.

Matching data parallelism: under a data-parallel plan each of the ``W`` ranks
takes its slice of the global batch, its loss is the mean over its rows, and
DDP / FSDP average the gradients over the ranks (under FSDP2+TP the ranks of
a TP group share one slice, so there are as many slices as data-parallel
ranks: `PlanSpec.batch_rows`).  The twin does the same
arithmetic in the same order as far as it can: one forward and backward per
rank slice (so batch statistics, e.g. BatchNorm's, are per slice as on the
ranks), each slice's gradient divided by ``W``, the results summed in rank
order.  At world 2 that is exactly what DDP and FSDP2 compute (one pre-divide,
one sum of two terms).  With more ranks, or where a collective sums in another
order or pre-/post-divides differently, the results differ by rounding only;
hence a tolerance.  Without a data-parallel plan every rank trains on the
whole global batch, as the twin does: then the twin is bit-identical.

A plan may also change *which* parameters get a gradient: FSDP1 computes
gradients per flat parameter, so an unused parameter sharing one with used
parameters gets a zero gradient instead of None, and the optimizer steps it.
The twin reproduces that (`_Fsdp1Grads`); every other plan leaves an unused
parameter's grad None, as the twin does without a plan.  Optimizers that need
a closure (LBFGS) step after the others with a closure over the same data,
as `_build.train` does (`_closure`).

Mixed precision (``PlanSpec.mixed_precision``): FSDP casts each unit's
parameters, and the root's floating inputs, to bfloat16 for the forward and
backward, and casts the bfloat16 gradients back to float32 to reduce them;
the optimizers step the float32 parameters.  The twin computes the same: its
forward runs on bfloat16 copies of the parameters (`_forward`), so each
parameter's gradient is the bfloat16 one cast back, averaged over the slices
in float32.  The state then carries bfloat16 rounding whatever the model's
dtype, so the comparison takes bfloat16's tolerance (`golden_tolerance`).

The twin runs in any process (the driver, a rank) and needs no process group;
it computes with one intra-op thread, as ranks do.

Devices and optimizer flags: the twin trains on the device it is given, and
the fidelity property gives it the rank's own (``ctx.device``), with the
scenario's optimizers exactly as drawn, ``fused`` and ``capturable``
included.  So under ``--osd-device=cuda`` the twin runs the same CUDA
kernels (fused Adam's ``_fused_adam_``, capturable's device-side ``step``)
as the ranks, and is compared within the same tolerance as on CPU.  Training
it on the CPU instead would need those flags dropped (``capturable`` alone
does not run there) or CPU fused kernels, whose rounding differs from CUDA's:
the comparison would then measure two kernels, not the backend's checkpoint.
"""

from __future__ import annotations

import torch

from ..compare import DTYPE_TOLERANCE
from ..reference import full_osd
from ..scenario._build import ROWS_PER_RANK, Workload, build_workload, global_batch
from ..scenario._models import apply_freezes, loss, select_rows
from ..scenario._pipeline import PP_MICROBATCHES, restrict_osd, stage_param_fqns
from ..scenario._plans import MIXED_PRECISION, PlanSpec, fsdp_unit_of
from ..scenario._spec import Scenario

#: Dtypes from the least to the most precise (for `golden_tolerance`).
_PRECISION_ORDER = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


def golden_tolerance(model, plan: PlanSpec | None = None) -> dict[torch.dtype, tuple[float, float]]:
    """``(rtol, atol)`` per dtype for comparing `model`'s distributed state with the twin's.

    The tolerances are `osdconform.compare.DTYPE_TOLERANCE` (the reasons are
    written there), with one rule on top: in a model that mixes dtypes every
    tensor gets the tolerance of the *least* precise dtype the model uses,
    because gradients flow through every layer: a float64 parameter below a
    bfloat16 layer gets a gradient with bfloat16 rounding in it, which the
    two reduction orders round differently.  A `plan` that computes in
    bfloat16 (mixed precision) counts as a model that uses it.
    """
    used = {getattr(torch, name) for name in model.dtypes()}
    if plan is not None and plan.mixed_precision:
        used.add(getattr(torch, MIXED_PRECISION["param_dtype"]))
    loosest = next(d for d in _PRECISION_ORDER if d in used or d == torch.float64)
    return {d: DTYPE_TOLERANCE[loosest] for d in DTYPE_TOLERANCE}


def golden_workload(scenario: Scenario, device: torch.device) -> Workload:
    """Fresh objects of `scenario` without its plan, on `device` (rank 0's seed and data)."""
    return build_workload(scenario.replace(plan=PlanSpec()), rank=0, device=device)


def golden_train(workload: Workload, scenario: Scenario, steps: int, *, first_step: int = 0) -> None:
    """Train the twin as `scenario`'s ranks train under its plan (see the module docstring).

    In `_build.train`'s order: one backward, the optimizers that need no
    closure step, then those that do (LBFGS) step with a closure that
    re-evaluates the loss (`_closure`), then the schedulers.
    """
    specs = scenario.optimizers
    for step in range(first_step, first_step + steps):
        apply_freezes(workload.module, scenario.model, step)
        batch = global_batch(scenario, step, workload.device)
        for opt in workload.optimizers:
            opt.zero_grad(set_to_none=True)
        _loss_and_grads(workload.module, scenario, batch)
        for spec, opt in zip(specs, workload.optimizers):
            if not spec.needs_closure:
                opt.step()
        for spec, opt in zip(specs, workload.optimizers):
            if spec.needs_closure:
                opt.step(_closure(workload.module, scenario, opt, batch))
        for sched in workload.schedulers:
            sched.step()


def _closure(module: torch.nn.Module, scenario: Scenario, opt: torch.optim.Optimizer, batch):
    """The twin of `_build._closure`: `opt`'s gradients and the loss the ranks agree on.

    The ranks' closure zeroes `opt`'s gradients, runs forward and backward on
    the rank's batch and, under data parallelism at world > 1, returns the
    mean of the ranks' losses (their gradients are averaged already).  Here
    the same on the global batch: per-slice gradients averaged as in
    `_data_parallel_grads`, the slice losses summed in rank order and divided
    by the world size.
    """

    def closure():
        opt.zero_grad(set_to_none=True)
        return _loss_and_grads(module, scenario, batch)

    return closure


def _loss_and_grads(module: torch.nn.Module, scenario: Scenario, batch) -> torch.Tensor:
    """Set every parameter's grad as the ranks' plan leaves it; return the loss the ranks agree on.

    Gradients add to what is there (as a backward does): the closure zeroes
    only its own optimizer's.  Under FSDP1 gradients also follow its flat
    parameters (`_Fsdp1Grads`).
    """
    fsdp1 = _Fsdp1Grads(module, scenario.plan) if scenario.plan.kind == "fsdp1" else None
    if fsdp1 is not None:
        fsdp1.before_backward()
    try:
        if scenario.plan.data_parallel:
            value = _data_parallel_grads(module, batch, scenario)
        elif scenario.plan.kind == "pp":
            value = _microbatch_grads(module, batch)
        else:
            value = loss(_forward(module, scenario.plan, batch))
            if value.requires_grad:  # not when every used parameter is frozen
                value.backward()
            value = value.detach()
    finally:
        if fsdp1 is not None:
            fsdp1.after_backward()
    return value


def _data_parallel_grads(module: torch.nn.Module, batch, scenario: Scenario) -> torch.Tensor:
    """Add to each parameter's grad the mean over the ranks' slices of the slice's gradient.

    The slices are the plan's (`PlanSpec.batch_rows`): one per rank, except
    under FSDP2+TP, where the ranks of a TP group share theirs, so there are
    as many slices as data-parallel ranks and each is that much larger (which
    matters for batch statistics: a BatchNorm normalises over the rows its
    rank sees).  Returns the loss the ranks' closure returns
    (`_build._closure`): at world 1 the slice's loss, else the ranks' losses
    (a shared slice's once per rank) summed in rank order over the world size.
    """
    world = scenario.world_size
    rows = ROWS_PER_RANK * world
    rank_slices = [scenario.plan.batch_rows(rank, world, rows) for rank in range(world)]
    slices = list(dict.fromkeys(rank_slices))  # distinct, in rank order
    params = [p for p in module.parameters()]
    before = [p.grad for p in params]
    for p in params:
        p.grad = None
    totals: list[torch.Tensor | None] = [None] * len(params)
    losses = {}
    for start, stop in slices:
        out = loss(_forward(module, scenario.plan, select_rows(batch, start, stop)))
        losses[start, stop] = out.detach()
        if not out.requires_grad:
            continue
        out.backward()
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            part = p.grad / len(slices)
            totals[i] = part if totals[i] is None else totals[i] + part
            p.grad = None
    for p, old, total in zip(params, before, totals):
        p.grad = old if total is None else total if old is None else old + total
    if world == 1:
        return losses[rank_slices[0]]
    return torch.stack([losses[sl] for sl in rank_slices]).sum() / world


def _microbatch_grads(module: torch.nn.Module, batch) -> torch.Tensor:
    """A pipeline's gradients (plan ``pp``): one backward per microbatch, the
    gradients summed, then divided by the microbatch count, as the schedule
    does (its ``scale_grads``); microbatches are the batch's rows cut by
    ``torch.tensor_split``, as the schedule cuts them.  Returns the mean of
    the microbatches' losses (no closure runs under a pipeline)."""
    rows = len(batch[0])
    cuts = [len(part) for part in torch.tensor_split(torch.arange(rows), PP_MICROBATCHES)]
    losses, start = [], 0
    for size in cuts:
        out = loss(module(select_rows(batch, start, start + size)))
        start += size
        losses.append(out.detach())
        if out.requires_grad:
            out.backward()
    for p in module.parameters():
        if p.grad is not None:
            p.grad.div_(PP_MICROBATCHES)
    return torch.stack(losses).mean()


def _forward(module: torch.nn.Module, plan: PlanSpec, inputs) -> torch.Tensor:
    """`module`'s output on `inputs` as `plan` computes it.

    Under mixed precision on bfloat16 copies of the parameters and of the
    floating inputs (see the module docstring): the copies are made inside
    the graph, so each gradient reaches its full-precision parameter cast
    back, as FSDP's reduction receives it.  Buffers keep their dtype, as
    FSDP leaves them.
    """
    if not plan.mixed_precision:
        return module(inputs)
    dtype = getattr(torch, MIXED_PRECISION["param_dtype"])
    params = {name: p.to(dtype) for name, p in module.named_parameters()}
    cast = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    return torch.func.functional_call(module, params, (cast,))


class _Fsdp1Grads:
    """Gradients as FSDP1 (``use_orig_params=True``) leaves them: per flat parameter.

    FSDP1 flattens the parameters of each unit (a wrapped submodule, or the
    root for everything no inner unit took) into one flat parameter, and
    autograd computes the gradient of that flat parameter as a whole.  So
    after a backward (torch 2.13, ``FlatParamHandle._use_sharded_grad_views``
    after ``_reset_is_grad_none``):

    * if the unit's flat parameter got a gradient, every parameter of the unit
      that requires grad gets its view of it, a zero gradient where it took no
      part in the loss (an unused branch): the optimizer then creates state
      for it and steps it (Adam's moments stay 0 but its step count grows;
      weight decay moves the parameter);
    * if it got none (no parameter of the unit in the loss's graph: a unit
      whose forward never ran, or the root when only inner units are used),
      every parameter of the unit keeps grad None, as without a plan.

    A frozen parameter (``requires_grad=False``) always gets None, but it
    still counts for the first rule: the flat parameter requires grad as soon
    as one parameter of the unit does, so the views FSDP1 hands the forward,
    the frozen ones too, are part of the graph and pass a gradient to the
    flat parameter.  The twin reproduces that by letting the frozen
    parameters of such a unit require grad during its forward and backward
    (their gradients are dropped after); this does not change what the other
    parameters' gradients compute, it adds branches only.

    Which unit holds a parameter: the innermost wrapped submodule whose FQN
    prefixes its canonical FQN, else the root (a tied parameter's names lie
    under one unit; ``TreeSpec.layer_fqns`` never splits a tie).  FSDP1 also
    gives a rank whose piece of a parameter is empty no gradient for it; that
    concerns a rank's piece only, never the whole parameter the twin holds.
    """

    def __init__(self, module: torch.nn.Module, plan: PlanSpec) -> None:
        units: dict[str, list[torch.nn.Parameter]] = {}
        for fqn, param in module.named_parameters():
            units.setdefault(fsdp_unit_of(plan, fqn), []).append(param)
        self.units = list(units.values())
        self.pretend: list[torch.nn.Parameter] = []
        self.reached: set[int] = set()  # ids of parameters a gradient reached in this backward
        self.hooks: list = []

    def before_backward(self) -> None:
        for params in self.units:
            if any(p.requires_grad for p in params):
                for p in params:
                    if not p.requires_grad:
                        p.requires_grad_(True)
                        self.pretend.append(p)
        # "Got a gradient in this backward", not "has a grad": a parameter no
        # optimizer holds is never zeroed and keeps its grad from earlier steps.
        for params in self.units:
            for p in params:
                if p.requires_grad:
                    self.hooks.append(p.register_post_accumulate_grad_hook(lambda q: self.reached.add(id(q))))

    def after_backward(self) -> None:
        for hook in self.hooks:
            hook.remove()
        got = [any(id(p) in self.reached for p in params) for params in self.units]
        for p in self.pretend:
            p.grad = None
            p.requires_grad_(False)
        self.pretend, self.reached, self.hooks = [], set(), []
        for params, flat_has_grad in zip(self.units, got):
            if flat_has_grad:
                for p in params:
                    if p.requires_grad and p.grad is None:
                        p.grad = torch.zeros_like(p)


def golden_full_osd(scenario: Scenario, device: torch.device | str = "cpu") -> dict:
    """The canonical full OSD the scenario's ranks should hold after training (see module doc)."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    # One intra-op thread, as ranks run (harness/_worker.py): on CPU the
    # number of threads changes how kernels split their reductions, hence
    # the rounding; with the same setting the twin is bitwise where it can be.
    torch.set_num_threads(1)
    try:
        workload = golden_workload(scenario, device)
        golden_train(workload, scenario, scenario.steps)
        return full_osd(workload.module, workload.optimizers)
    finally:
        torch.set_num_threads(threads)


def golden_stage_osd(scenario: Scenario, device: torch.device | str, rank: int) -> dict:
    """What `rank` should hold after training: the twin's full OSD, under a
    pipeline (plan ``pp``) cut to the rank's stage (`_pipeline.restrict_osd`)."""
    osd = golden_full_osd(scenario, device)
    if scenario.plan.kind != "pp":
        return osd
    return restrict_osd(osd, stage_param_fqns(scenario.model, scenario.world_size, rank))
