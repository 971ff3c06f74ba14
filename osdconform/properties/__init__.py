"""Property steps: what the suites run on every rank of a world.

One module per area of the contract; each function is a `WorldPool.run` task
``fn(ctx, scenario, backend_spec, options)``.
"""

from ._roundtrip import FRESH_SEED_OFFSET, fidelity, roundtrip

__all__ = ["FRESH_SEED_OFFSET", "fidelity", "roundtrip"]
