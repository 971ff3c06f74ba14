"""Strategies for the model dimension (see `osdconform.scenario._models`).

Dims are drawn small (1..9) so that sizes smaller than and not divisible by
the world size come up often; everything shrinks toward one 1x1 layer.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..scenario import ModelSpec

MAX_DIM = 9
MAX_LAYERS = 3


def dims(max_dim: int = MAX_DIM) -> st.SearchStrategy[int]:
    return st.integers(1, max_dim)


@st.composite
def mlp_models(draw, max_layers: int = MAX_LAYERS, max_dim: int = MAX_DIM) -> ModelSpec:
    """An MLP; each layer is drawn as one (width, bias) piece so it shrinks away whole."""
    d_in = draw(dims(max_dim))
    layers = draw(st.lists(st.tuples(dims(max_dim), st.booleans()), min_size=1, max_size=max_layers))
    return ModelSpec(
        dims=(d_in, *(width for width, _ in layers)), bias=tuple(b for _, b in layers)
    )


def models() -> st.SearchStrategy[ModelSpec]:
    """Any model of the space (drawn last by `scenarios`, see there)."""
    return mlp_models(max_layers=MAX_LAYERS)


#: Upper bound on the number of parameters of a drawn model, so that other
#: dimensions can draw per-parameter choices before the model (`scenarios`).
MAX_PARAMS = 2 * MAX_LAYERS
#: Upper bound on the number of submodules a plan may wrap on their own.
MAX_UNITS = MAX_LAYERS
