"""The model dimension of a scenario: `ModelSpec`, the module it builds, its inputs.

Owns everything model-shaped: which parameters exist (FQNs in registration
order, shapes), which submodules a plan may wrap, the dtype(s), and the input
rows a training step feeds in.  Classes are module-level so they pickle by
reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: ``Linear(dims[i], dims[i+1])`` layers joined by ``tanh``.

    Parameter FQNs are ``layers.<i>.weight`` and ``layers.<i>.bias``.
    """

    dims: tuple[int, ...]
    bias: tuple[bool, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.dims) < 2:
            raise ValueError(f"an MLP needs at least two widths, got dims={self.dims}")
        if len(self.bias) != len(self.dims) - 1:
            raise ValueError(
                f"bias has {len(self.bias)} flags for {len(self.dims) - 1} layers"
            )
        if min(self.dims) < 1:
            raise ValueError(f"widths must be >= 1, got dims={self.dims}")

    @property
    def num_layers(self) -> int:
        return len(self.dims) - 1

    def param_fqns(self) -> tuple[str, ...]:
        """Parameter FQNs in model (registration) order."""
        fqns: list[str] = []
        for i, has_bias in enumerate(self.bias):
            fqns.append(f"layers.{i}.weight")
            if has_bias:
                fqns.append(f"layers.{i}.bias")
        return tuple(fqns)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's full shape, by FQN."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (d_in, d_out) in enumerate(zip(self.dims[:-1], self.dims[1:])):
            shapes[f"layers.{i}.weight"] = (d_out, d_in)
            if self.bias[i]:
                shapes[f"layers.{i}.bias"] = (d_out,)
        return shapes

    def linear_fqns(self) -> tuple[str, ...]:
        """FQNs of the ``nn.Linear`` submodules (what tensor parallelism splits)."""
        return self.layer_fqns()

    def layer_fqns(self) -> tuple[str, ...]:
        """Submodules a plan may wrap on their own (FSDP units), outermost first."""
        return tuple(f"layers.{i}" for i in range(self.num_layers))

    def features(self) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates."""
        return frozenset({f"dtype:{self.dtype}"})

    def describe(self) -> str:
        widths = " -> ".join(str(d) for d in self.dims)
        biases = "".join("b" if b else "-" for b in self.bias)
        return f"MLP {widths} ({self.dtype}, bias per layer: {biases})"


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


def model_inputs(spec: ModelSpec, rows: int, gen: torch.Generator, device: torch.device):
    """`rows` input rows for the model, drawn from `gen` (identical on every rank)."""
    x = torch.randn(rows, spec.dims[0], generator=gen)
    return x.to(device=device, dtype=getattr(torch, spec.dtype))


def select_rows(inputs, start: int, stop: int):
    """Rows ``start:stop`` of what `model_inputs` returned (a data-parallel slice)."""
    return inputs[start:stop]


def loss(output: torch.Tensor) -> torch.Tensor:
    """The training loss of a model output: the mean of its squares."""
    return output.square().mean()
