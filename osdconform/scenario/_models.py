"""Model classes the scenario builds.  Module-level so they pickle by reference."""

from __future__ import annotations

import torch
from torch import nn

from ._spec import ModelSpec


class MLP(nn.Module):
    """``Linear`` layers in a ``ModuleList`` joined by ``tanh``.

    A ``ModuleList`` (not ``Sequential``) keeps FQNs readable
    (``layers.0.weight``) and lets a plan wrap single layers.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out, bias=b)
            for d_in, d_out, b in zip(spec.dims[:-1], spec.dims[1:], spec.bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.tanh(x)
        return x


def build_model(spec: ModelSpec, device: torch.device) -> nn.Module:
    return MLP(spec).to(device=device, dtype=getattr(torch, spec.dtype))
