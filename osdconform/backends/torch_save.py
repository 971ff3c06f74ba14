"""The ``torch-save`` backend: ``optimizer.state_dict()`` through ``torch.save`` / ``torch.load``.

The plain single-process checkpoint most training scripts write: each
optimizer's native state dict (keyed by parameter index) saved to one file,
read back with ``torch.load(weights_only=True)`` (the safe loader, default
since torch 2.6) onto the CPU (``map_location="cpu"``: a checkpoint written on
a GPU loads on a machine without one) and handed to
``optimizer.load_state_dict``, which moves each state tensor to its parameter.  Only through
storage, one process, no parallelism plan.
"""

from __future__ import annotations

import os

import torch

from ..scenario import Workload
from ._protocol import Capabilities, StateOptions

FILE_NAME = "optimizers.pt"


class TorchSaveBackend:
    name = "torch-save"
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, plans=frozenset({"none"}), max_world_size=1
    )

    def save_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        states = [opt.state_dict() for opt in workload.optimizers]
        torch.save(states, os.path.join(directory, FILE_NAME))

    def load_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        # To the CPU, as a script that may run without the saving GPU does;
        # load_state_dict then puts each state tensor where its parameter is.
        states = torch.load(os.path.join(directory, FILE_NAME), weights_only=True, map_location="cpu")
        for opt, state in zip(workload.optimizers, states):
            opt.load_state_dict(state)
