"""The option forms the suites run a property in (one test per form).

A form the backend does not declare is skipped as *unsupported* by
``osd.require``.
"""

from ..backends import StateOptions

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
    """

    def accepts(scenario) -> bool:
        return not (options.flatten and "empty group" in scenario.features)

    return accepts
