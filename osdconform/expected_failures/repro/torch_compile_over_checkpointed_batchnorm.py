"""torch.compile around an activation-checkpointed BatchNorm: the backward fails.

A BatchNorm in training mode bumps its ``num_batches_tracked`` buffer in place
in every forward.  Non-reentrant activation checkpointing (``checkpoint_wrapper``,
torch's default) runs the forward again in the backward; under
``torch.compile`` (even the ``eager`` backend, which compiles nothing) that
recomputation trips autograd's saved-tensor version check: "one of the
variables needed for gradient computation has been modified by an inplace
operation: [torch.LongTensor []] is at version 2; expected version 1".
Without compile, or with compile inside the checkpoint wrapper, or with
``track_running_stats=False``, the same model trains.  So such a model cannot
train at all (whatever saves its checkpoint), and the suite does not draw
it (`osdconform.scenario._refusals.accepts`).  Exits 1 while the bug exists.
"""

import sys

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper


def train(model: nn.Module) -> str | None:
    try:
        model(torch.randn(4, 1)).sum().backward()
    except RuntimeError as e:
        return str(e)
    return None


def main() -> int:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(1, 1), checkpoint_wrapper(nn.BatchNorm1d(1)))
    assert train(plain) is None, "the checkpoint-wrapped BatchNorm does not train even without compile"
    torch.compiler.reset()
    compiled = torch.compile(nn.Sequential(nn.Linear(1, 1), checkpoint_wrapper(nn.BatchNorm1d(1))), backend="eager")
    error = train(compiled)
    if error is None:
        print("fixed: the compiled model with a checkpoint-wrapped BatchNorm trains")
        return 0
    print("torch.compile over a checkpoint-wrapped BatchNorm fails in backward:", error.splitlines()[0])
    return 1


if __name__ == "__main__":
    sys.exit(main())
