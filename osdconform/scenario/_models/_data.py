"""What training needs from a model spec besides the module: freezes, inputs, loss.

Why its own module: the workload (`scenario._build`) and the golden twin
(`golden._twin`) train the same way; both take the steps' freezes, the
input rows and their data-parallel slices, and the loss from here, so the two
cannot disagree on what a training step is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ._modules import _torch_dtype
from ._nodes import INDEX_RANGE

if TYPE_CHECKING:
    from ._mlp import AnyModelSpec


def apply_freezes(module: nn.Module, spec: AnyModelSpec, step: int) -> None:
    """Freeze the parameters due before training step `step` (0-based): ``0 < k <= step``.

    Called by `train` before each step, so resuming at ``first_step`` freezes
    what an uninterrupted run would have frozen by then.
    """
    for fqn, k in spec.tree().frozen_after().items():
        if 0 < k <= step:
            try:
                param = module.get_parameter(fqn)
            except AttributeError:  # another pipeline stage's
                continue
            param.requires_grad_(False)


def model_inputs(spec: AnyModelSpec, rows: int, gen: torch.Generator, device: torch.device):
    """`rows` input rows ``(features, indices)``, drawn from `gen` (identical on every rank)."""
    tree = spec.tree()
    features = torch.randn(rows, tree.width, generator=gen)
    indices = torch.randint(0, INDEX_RANGE, (rows,), generator=gen)
    return (features.to(device=device, dtype=_torch_dtype(tree.dtype)), indices.to(device))


def select_rows(inputs, start: int, stop: int):
    """Rows ``start:stop`` of what `model_inputs` returned (a data-parallel slice)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    return tuple(t[start:stop] for t in inputs)


def loss(output: torch.Tensor) -> torch.Tensor:
    """The training loss of a model output: the mean of its squares."""
    return output.square().mean()
