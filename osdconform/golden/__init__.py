"""The golden twin, the second oracle: the scenario trained in one process, without any plan.

The reference (`osdconform.reference`) says what a backend's OSD *is* given
the live optimizers; the twin says what the optimizers *should* hold after
training, so a backend that gathers faithfully from wrongly trained or wrongly
loaded state is still caught (``fidelity``, ``resume``).  See `_twin`.
"""

from ._twin import golden_full_osd, golden_stage_osd, golden_tolerance, golden_train, golden_workload

__all__ = ["golden_full_osd", "golden_stage_osd", "golden_tolerance", "golden_train", "golden_workload"]
