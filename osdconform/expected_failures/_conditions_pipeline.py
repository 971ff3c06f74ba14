"""Named conditions of torch-dcp under a pipeline: which stage's param groups a DCP save keeps (T72).

Under ``pp`` each rank's ``get_optimizer_state_dict`` lists its own stage's
param groups, numbered from 0, and ``dcp.save`` flattens them to keys every
stage has (``optimizer.param_groups.0.lr``, ``optimizer.param_groups.0.params``):
DCP writes each such key once, so stages lose theirs
(docs/findings.md T72, pytorch/pytorch#126595,
repro/torch_dcp_pipeline_stages_share_param_group_keys.py).  Which stage keeps
a key is DCP's ``dedup_save_plans`` (torch 2.13): it walks the write items of
rank 0's plan, then the items of rank 1's not met yet, and so on, and gives
each item to the rank, of those that hold it, with the fewest planned bytes so
far (ties: the lowest rank), a tensor counting its bytes and anything else
one.  So the stages' state sizes decide: rank 0's state comes first in the
walk, and while rank 0 has more bytes than its peers they keep the shared keys.

On load each rank reads its own keys and so gets the kept values; what
torch-dsd's set then does with another stage's values depends on whether the
template it filled (the fresh target's get) holds state:

* with state, ``_split_optim_state_dict`` takes a loaded group's
  hyperparameters into the optimizer's group whose parameters the loaded
  ``params`` names: a group whose ``params`` another stage kept names no
  parameter of this stage, and its group is left with ``params`` alone
  (`dcp_stage_loses_group_hparams`: "missing lr, ...", and a step after
  it fails), or, where it holds a tied parameter, which DSD lists only
  where a loaded group names it, with fewer parameters than the optimizer's
  (`dcp_stage_loads_group_of_other_size`); one whose ``params`` it kept
  takes hyperparameters other stages kept where they differ
  (`dcp_stage_loads_other_hparams`);
* without state, DSD hands the loaded OSD to ``Optimizer.load_state_dict``
  as it is: a group whose ``params`` another stage kept with another number
  of parameters is refused (`dcp_stage_loads_group_of_other_size`), and the
  hyperparameters come as kept (`dcp_stage_loads_other_hparams`).

The state sizes come from the golden twin (torch optimizers trained on the
same data, so the same shapes and dtypes as the backend's), or, where
torch-dsd's get primes an optimizer without state (`dcp_saved_state`), from
the zero-gradient step it runs on fresh objects.  tests/cover/test_dcp_pipeline_conditions.py
checks `kept_by` against DCP's own planner on drawn pipelines.  These take
``pipeline`` (the whole scenario) besides ``s`` (the stage's view), as a
stage's loss depends on its peers.
"""

from __future__ import annotations

import functools
from typing import Any

from ..scenario._pipeline import stage_param_fqns
from ._conditions_loaders import dcp_saved_state, dcp_template_state
from ._training import state_after_training, trainable_at_end

#: The DCP key prefix of the torch-dcp backend's optimizer state.
KEY = "optimizer"


def _stage_of(s: Any, pipeline: Any) -> int:
    """The stage whose view `s` is (the stage holding its optimizers' parameters)."""
    fqns = set(s.optimizers[0].param_fqns())
    n = pipeline.world_size
    return next(r for r in range(n) if fqns <= stage_param_fqns(pipeline.model, n, r))


def _items(prefix: str, value: Any) -> list[tuple[tuple[str, Any], int]]:
    """The write items DCP makes of `value` under `prefix`, as ((key, index), size).

    As ``flatten_state_dict`` traverses (``traverse_state_dict``): a mapping is
    entered; a list is one item unless it holds a tensor, a mapping or such a
    list, then each element is; anything else is one item.  A tensor's index
    carries its offsets (so a 0-d tensor and a float of one key are two items,
    never de-duplicated) and counts its bytes; anything else counts one.
    """
    import torch

    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _items(f"{prefix}.{k}", v)]
    if isinstance(value, list) and not _terminal(value):
        return [item for i, v in enumerate(value) for item in _items(f"{prefix}.{i}", v)]
    if isinstance(value, torch.Tensor):
        return [((prefix, value.dim()), value.numel() * value.element_size())]
    return [((prefix, None), 1)]


def _terminal(values: list) -> bool:
    import torch

    for v in values:
        if isinstance(v, dict) or isinstance(v, torch.Tensor):
            return False
        if isinstance(v, list) and not _terminal(v):
            return False
    return True


@functools.lru_cache(maxsize=8)
def saved_osds(pipeline: Any) -> tuple[dict, ...]:
    """What each stage's torch-dcp save hands DCP: the twin's OSD cut to the
    stage, and for a stage optimizer torch-dsd's get primes, the state of its
    zero-gradient step instead (module docstring)."""
    from ..golden import golden_full_osd
    from ..scenario._pipeline import restrict_osd, stage_views

    full = golden_full_osd(pipeline, "cpu")
    out = []
    for rank, view in enumerate(stage_views(pipeline)):
        osd = restrict_osd(full, stage_param_fqns(pipeline.model, pipeline.world_size, rank))
        for opt in view.optimizers:
            if not state_after_training(view, opt) and dcp_saved_state(view, opt):
                osd["state"].update(_primed_state(pipeline, view, opt))
        out.append(osd)
    return tuple(out)


def _primed_state(pipeline: Any, view: Any, spec: Any) -> dict:
    """The state torch-dsd's ``_init_optim_state`` gives the stage optimizer
    `spec`: one step (lr 0) with zero gradients on its parameters that
    require grad, on fresh objects."""
    if spec.needs_closure:
        return {}  # LBFGS: its get fails first (T19)
    from ..golden._twin import golden_workload
    from ..reference._fqn import param_fqns
    from ..scenario._optimizers import build_optimizer

    workload = golden_workload(pipeline, "cpu")
    names = param_fqns(workload.module)
    params = {names[id(p)]: p for p in workload.module.parameters()}
    opt = build_optimizer(spec, params)
    try:
        for fqn in trainable_at_end(view) & set(spec.param_fqns()):
            params[fqn].grad = params[fqn].detach().new_zeros(params[fqn].shape)
    except RuntimeError:
        return {}  # a parameter with a gradient dtype of its own: the get fails here too (T73)
    for group in opt.param_groups:
        if "lr" in group:
            group["lr"] = 0.0
    opt.step()
    return {names[id(p)]: dict(state) for p, state in opt.state.items()}


@functools.lru_cache(maxsize=8)
def kept_by(pipeline: Any) -> dict[tuple[str, Any], int]:
    """For each write item of the stages' saves, the stage whose value DCP keeps
    (``dedup_save_plans``' walk, module docstring)."""
    plans = [_items(KEY, osd) for osd in saved_osds(pipeline)]
    holders: dict[tuple[str, Any], list[int]] = {}
    sizes: dict[tuple[str, Any], int] = {}
    for rank, plan in enumerate(plans):
        for index, size in plan:
            holders.setdefault(index, []).append(rank)
            sizes[index] = size
    planned = [0] * len(plans)
    kept = {}
    for index, ranks in holders.items():
        rank = min(ranks, key=lambda r: planned[r])
        planned[rank] += sizes[index]
        kept[index] = rank
    return kept


def _groups(pipeline: Any, rank: int) -> list[dict]:
    return saved_osds(pipeline)[rank]["param_groups"]


def _value(pipeline: Any, rank: int, group: int, key: str) -> Any:
    return _groups(pipeline, rank)[group].get(key)


def _kept(pipeline: Any, rank: int, group: int, key: str) -> int:
    """The stage whose value of `rank`'s group `group` key `key` its load reads."""
    value = _value(pipeline, rank, group, key)
    index = (f"{KEY}.param_groups.{group}.{key}", value.dim() if hasattr(value, "dim") else None)
    return kept_by(pipeline).get(index, rank)


def _differs(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b))
    return type(a) is not type(b) or a != b


def _template_holds_state(s: Any) -> bool:
    return any(dcp_template_state(s, opt) for opt in s.optimizers)


def _params_kept_elsewhere(s: Any, pipeline: Any) -> list[tuple[int, int]]:
    """(group, keeper) of the stage's groups whose ``params`` another stage kept."""
    rank = _stage_of(s, pipeline)
    out = []
    for group in range(len(_groups(pipeline, rank))):
        keeper = _kept(pipeline, rank, group, "params")
        if keeper != rank:
            out.append((group, keeper))
    return out


def _holds_tied(pipeline: Any, rank: int, group: int) -> bool:
    """Whether the stage's group holds a tied parameter (one of several FQNs)."""
    tied = set(pipeline.model.tied_fqns().values())
    return bool(tied.intersection(_value(pipeline, rank, group, "params")))


def dcp_stage_loses_group_hparams(s: Any, pipeline: Any) -> bool:
    """The stage's load template holds state and some group's ``params`` is
    another stage's: DSD's set leaves that group without hyperparameters
    (unless it holds a tied parameter: `dcp_stage_loads_group_of_other_size`)."""
    if pipeline.plan.kind != "pp" or not _template_holds_state(s):
        return False
    rank = _stage_of(s, pipeline)
    return any(not _holds_tied(pipeline, rank, group) for group, _ in _params_kept_elsewhere(s, pipeline))


def dcp_stage_loads_group_of_other_size(s: Any, pipeline: Any) -> bool:
    """Some group's ``params`` is another stage's, and ``Optimizer.load_state_dict``
    finds a group of another size: with a template without state, DSD hands
    it the loaded group (another stage's list) as it is; with one holding
    state, DSD drops a tied parameter that no loaded group names (its
    ``shared_params_mapping`` check) from the group it builds."""
    if pipeline.plan.kind != "pp":
        return False
    rank = _stage_of(s, pipeline)
    foreign = _params_kept_elsewhere(s, pipeline)
    if _template_holds_state(s):
        return any(_holds_tied(pipeline, rank, group) for group, _ in foreign)
    return any(
        len(_value(pipeline, keeper, group, "params")) != len(_value(pipeline, rank, group, "params"))
        for group, keeper in foreign
    )


def _other_hparams(s: Any, pipeline: Any) -> list[tuple[Any, Any]]:
    """(the stage's value, the value it loads) of each hyperparameter that
    another stage kept, in the groups of the stage that keep their
    hyperparameters on load (its own ``params`` kept, or a template without
    state: module docstring)."""
    rank = _stage_of(s, pipeline)
    stateless = not _template_holds_state(s)
    out = []
    for group, mine in enumerate(_groups(pipeline, rank)):
        if not stateless and _kept(pipeline, rank, group, "params") != rank:
            continue
        for key, value in mine.items():
            keeper = _kept(pipeline, rank, group, key) if key != "params" else rank
            if keeper != rank:
                out.append((value, _value(pipeline, keeper, group, key)))
    return out


def dcp_stage_loads_other_hparams(s: Any, pipeline: Any) -> bool:
    """Some group of the stage that keeps its hyperparameters on load takes one
    another stage kept with another value (or type)."""
    if pipeline.plan.kind != "pp":
        return False
    return any(_differs(mine, loaded) for mine, loaded in _other_hparams(s, pipeline))


def dcp_stage_loads_other_hparam_types(s: Any, pipeline: Any) -> bool:
    """As `dcp_stage_loads_other_hparams`, of another type (a tensor ``lr``
    where the stage has a float, ...): what the types property sees."""
    if pipeline.plan.kind != "pp":
        return False
    return any(type(mine) is not type(loaded) for mine, loaded in _other_hparams(s, pipeline))


def dcp_save_lists_a_key_twice(s: Any, pipeline: Any) -> bool:
    """Some key the stages share is a tensor on one stage and not on another
    (a tensor ``lr`` in one stage's group 0 only, say), or tensors of other
    dimensions: its write items differ in index, so de-duplication keeps
    both, and DCP's global plan refuses a key met twice ("item.index.fqn not
    in md", an AssertionError of ``create_default_global_save_plan``)."""
    if pipeline.plan.kind != "pp":
        return False
    kinds: dict[str, set] = {}
    for key, dims in kept_by(pipeline):
        kinds.setdefault(key, set()).add(dims)
    return any(len(d) > 1 for d in kinds.values())


#: The conditions above, by name (`_conditions.HELPERS` adds them).
PIPELINE = (
    dcp_stage_loses_group_hparams,
    dcp_stage_loads_group_of_other_size,
    dcp_stage_loads_other_hparams,
    dcp_stage_loads_other_hparam_types,
    dcp_save_lists_a_key_twice,
)
