"""The option forms the suites run a property in (one test per form).

A form the backend does not declare is skipped as *unsupported* by
``osd.require``.
"""

from ..backends import StateOptions
from ..scenario._pipeline import RANK0_OPTIONS

FORMS = {
    "full": StateOptions(full=True),
    "sharded": StateOptions(full=False),
    "full+flatten": StateOptions(full=True, flatten=True),
    "sharded+flatten": StateOptions(full=False, flatten=True),
    "full+cpu_offload": StateOptions(full=True, cpu_offload=True),
    "full+broadcast_from_rank0": StateOptions(full=True, broadcast_from_rank0=True),
    "full+cpu_offload+broadcast_from_rank0": StateOptions(full=True, cpu_offload=True, broadcast_from_rank0=True),
    "storage": StateOptions(storage=True),
    "storage+async_save": StateOptions(storage=True, async_save=True),
}


def forms(*names: str) -> dict:
    return {name: FORMS[name] for name in names}


def representable(options: StateOptions):
    """A filter for scenarios whose OSD the form can carry at all.

    The flat form keys a group's hyperparameters by its parameters' FQNs
    (``param_groups.<fqn>.<hp>``), so a param group without parameters cannot
    be written in it: that is the format, not a backend's defect.

    Under a pipeline (plan ``pp``) each rank holds its own stage's state, so
    the forms in which rank 0 alone gets or gives the whole state
    (`_pipeline.RANK0_OPTIONS`: torch's ``cpu_offload`` of a full state dict,
    ``broadcast_from_rank0``) cannot carry it.
    """
    rank0 = any(getattr(options, name) for name in RANK0_OPTIONS) and options.full

    def accepts(scenario) -> bool:
        if rank0 and scenario.plan.kind == "pp":
            return False
        return not (options.flatten and "empty group" in scenario.features)

    return accepts
