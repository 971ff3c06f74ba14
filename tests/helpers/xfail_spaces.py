"""Which expected-failure entries some scenario of the core space can match (test helper).

An entry marked ``space: core`` (the default) is warned about when a core run
matched nothing, so the marking must be honest: `core_witnesses` searches the
core space the plugin would draw for a backend (its core plans and world
sizes, with and without property 10's schedulers) under every option form,
fault and step the backend can be given, and returns the entries some such
example makes true.  A witness is a proof; finding none in a derandomized
sample is evidence, which the test states as such.
"""

from __future__ import annotations

from typing import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osdconform.backends import resolve_backend
from osdconform.lifecycle import GetSet, Load, Save, Train
from osdconform.properties import IN_MEMORY_FAULTS, STORAGE_FAULTS, Fault
from osdconform.properties._forms import FORMS
from osdconform.strategies import core_plan_kinds, core_scenarios

WORLD_SIZES = (1, 2, 3, 4)  # the plugin's default
STEPS = (None, "reshard_save", "reshard_load")
_FLAGS = ("flatten", "cpu_offload", "broadcast_from_rank0", "async_save")


def backend_forms(caps) -> list:
    """The `StateOptions` of `FORMS` that a backend declares."""
    out = []
    for options in FORMS.values():
        kind_ok = caps.checkpoint if options.storage else caps.full if options.full else caps.sharded
        if kind_ok and all(getattr(caps, f) or not getattr(options, f) for f in _FLAGS):
            out.append(options)
    return out


def _examples(entry, forms) -> Iterable[tuple]:
    for options in forms:
        faults = [None]
        if "errors" in entry.properties:
            # Two picks: where a fault strikes can matter (missing_fqn_drops_a_group_head).
            faults = [Fault(k, pick) for k in (STORAGE_FAULTS if options.storage else IN_MEMORY_FAULTS)
                      for pick in (0, 1)]
        for fault in faults:
            for step in STEPS:
                yield options, fault, step


#: Lifecycles a ``lifecycle`` entry's predicate is tried on: a save before any
#: step, a rollback into trained live objects, a get set back after training.
LIFECYCLES = (
    (Save(0),),
    (Train(2), Save(0), Train(1), Load(0)),
    (Train(2), GetSet()),
)


def core_witnesses(backend: str, entries, max_examples: int = 300) -> set[str]:
    """The ``where`` of each entry of `entries` that a drawn core example makes true."""
    caps = resolve_backend(backend).capabilities
    sizes = tuple(w for w in WORLD_SIZES if caps.max_world_size is None or w <= caps.max_world_size)
    kinds = core_plan_kinds(sorted(caps.plans))
    forms = backend_forms(caps)
    found: set[str] = set()
    if not kinds:
        return found
    drawn = st.one_of(
        core_scenarios(world_sizes=sizes, plan_kinds=kinds),
        core_scenarios(world_sizes=sizes, plan_kinds=kinds, schedulers=True),
    )

    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn)
    def search(scenario):
        for entry in entries:
            if entry.where in found:
                continue
            for options, fault, step in _examples(entry, forms):
                prop = entry.properties[0]
                lifecycles = LIFECYCLES if prop == "lifecycle" else ((),)
                if any(entry.applies(prop, scenario, options, step=step, fault=fault, lifecycle=steps)
                       for steps in lifecycles):
                    found.add(entry.where)
                    break

    search()
    return found
