"""Faults only a save in flight shows: an async save that does not copy what it writes."""

from __future__ import annotations

from osdconform.backends.torch_dcp import KEY, TorchDCPBackend


class _Deferred:
    """A save in flight that does its work when waited on (``result()``)."""

    def __init__(self, write) -> None:
        self._write = write

    def result(self) -> None:
        self._write()


class AsyncSaveWritesLiveState(TorchDCPBackend):
    """An async save that returns before it has staged (copied) the state it
    writes: it writes the live optimizer's tensors later, after the job has
    stepped or loaded on, so the checkpoint holds a later moment than the
    one it was taken at (or a mixture of two).

    The class of torchtitan#930 (``CheckpointManager.save`` in async mode
    returned before the state was staged, and a load right after failed) and
    of every hand-made async checkpointer that hands a background thread the
    live state dict: ``get_optimizer_state_dict`` returns the optimizer's own
    tensors, which ``torch.optim`` updates in place.  Every property that
    waits for its save at once passes; only training on while the save is in
    flight (suites/test_in_flight.py) shows it.

    Re-created over torch-dcp: with ``async_save`` the save takes the state
    dict now and runs ``dcp.save`` on it when waited on.
    """

    name = "async-save-writes-live-state"
    over = "torch-dcp"
    reports = ("pytorch/torchtitan#930",)

    def save_checkpoint(self, workload, directory, options):
        if not options.async_save:
            return super().save_checkpoint(workload, directory, options)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = {KEY: get_optimizer_state_dict(workload.model, workload.optimizers)}
        return _Deferred(lambda: dcp.save(state, checkpoint_id=directory))
