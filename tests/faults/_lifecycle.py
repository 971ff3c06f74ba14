"""Faults only a lifecycle shows: a chain of loads, not one round trip into fresh objects."""

from __future__ import annotations

from osdconform import reference as ref
from osdconform.backends.reference import ReferenceBackend

from ._kit import fqn_of, map_entries, nested


class SecondLoadLosesState(ReferenceBackend):
    """A load that takes the live state for already loaded: it loads the state
    of the parameters that have none, and skips the others, whose state the
    optimizer's ``load_state_dict`` then drops.

    The class of this project's torch-dsd finding (a full set keeps the
    target's own later LBFGS history entries, mixing two histories:
    osdconform/expected_failures/torch-dsd.txt, repro
    torch_dsd_full_set_lbfgs_history_length.py) and of loaders guarded by
    "state exists, nothing to initialise" (torch-dsd's ``_init_optim_state``
    returns early for an optimizer that has state).  The round trip, the
    reshard and the resume load into fresh objects, which hold no state, and
    pass; a second load into the same objects (a rollback to an earlier
    checkpoint) loses the state of every parameter that had some.  The errors
    property's bad-input loads go into trained objects, so it catches the
    fault too, as a broken entry that is skipped instead of refused (the kill
    matrix's first failing test); the CI subset runs it on a lifecycle.

    Re-created: set leaves out the checkpoint's state of every parameter that has state now.
    """

    name = "second-load-loses-state"
    over = "reference"
    reports = ("osdconform torch-dsd.txt: full set keeps the target's LBFGS history",)

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            names = fqn_of(workload)
            live = {names.get(id(p)) for opt in workload.optimizers for p, st in ref.local_state(opt).items() if st}
            osd = map_entries(osd, lambda fqn, e: None if fqn in live else e)
        super().set_optimizer_state(workload, osd, options)


class KeepsItsFirstProcessGroup(ReferenceBackend):
    """A checkpointer that takes the process group it coordinates over once, at
    its first get or set, and keeps it for the life of the object.

    The class of checkpointers that make a group of their own once (a gloo
    group for async saves, created at the first save and cached with no
    invalidation: ByteDance-Seed/VeOmni#1176's review, "cached for the life of
    the process with no invalidation hook ... a note for whoever adds
    in-process reuse"; torchtitan's checkpoint manager makes its gloo group at
    construction) or are handed ``process_group=`` once.  After a job
    restarts its process groups in place (a fault-tolerant trainer that keeps
    its processes), the kept group is no longer registered and the next
    checkpoint fails ("... is not initialized in the world").  Every
    single-step property checkpoints within one process group; only a
    lifecycle that starts a new process-group world (``NewWorld``) and then
    gets or sets shows it.

    Re-created: each get and set first agrees on a checkpoint number by a
    broadcast from rank 0 over the group the first one used.
    """

    name = "keeps-its-first-process-group"
    over = "reference"
    reports = ("ByteDance-Seed/VeOmni#1176 (review): process groups cached for the life of the process",)

    _group = None

    def _agree(self) -> None:
        import torch.distributed as dist

        if self._group is None:
            self._group = dist.group.WORLD
        dist.broadcast_object_list([0], src=0, group=self._group)

    def get_optimizer_state(self, workload, options):
        self._agree()
        return super().get_optimizer_state(workload, options)

    def set_optimizer_state(self, workload, osd, options):
        self._agree()
        super().set_optimizer_state(workload, osd, options)
