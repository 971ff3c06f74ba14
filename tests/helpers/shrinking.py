"""What a failing test shrinks to: `minimal`, and the smallest model every model shrinks toward."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings

from osdconform.scenario import LinearSpec, TreeSpec

#: The smallest model of the space: every model shrinks toward it.
SMALLEST_MODEL = TreeSpec(width=1, layers=(LinearSpec(out=1),))


def all_ones(model) -> bool:
    """Every dim of every parameter is 1 (what widths shrink to)."""
    return all(set(shape) <= {1} for shape in model.param_shapes().values())


def minimal(strategy, condition):
    """The example Hypothesis shrinks to when a test fails exactly on `condition`.

    (Like ``hypothesis.find``, but through @given's shrinker, which is what a
    failing suite test goes through.)  No explain phase: the last example run
    is then the shrunk one.
    """
    seen = []

    @given(strategy)
    @settings(
        max_examples=500, database=None, deadline=None, derandomize=True,
        phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
    )
    def probe(x):
        seen.append(x)
        assert not condition(x)

    try:
        probe()
    except AssertionError:
        return seen[-1]
    raise AssertionError("no example satisfied the condition")
