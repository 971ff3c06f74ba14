"""Faults behind known defects: each fires in the same example as a torch defect
that is an expected failure of the backend it wraps, and after it in the
order the checks report.  They are caught only because every check of an
example runs and each problem is judged on its own (issue 18, item 3).
"""

from __future__ import annotations

from osdconform.backends.torch_dsd import TorchDSDBackend


class FullSetKeepsAdamCustomKeys(TorchDSDBackend):
    """A full set that leaves an Adam/AdamW group's own keys (``name``, ``tag``,
    ``initial_lr``: those the optimizer's defaults lack) as the target had them,
    in the examples where torch-dsd's own defect turns the group's ``betas``
    tuple into a list (an expected failure, reported first: ``betas`` comes
    before them in the group).  Custom keys do not change a step, so no other
    check sees it.  Modelled on the lost group fields of pytorch/pytorch#140900
    (``initial_lr``) and #143828.
    """

    name = "full-set-keeps-adam-custom-keys"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#140900", "pytorch/pytorch#143828")

    def set_optimizer_state(self, workload, osd, options):
        if not options.full:
            return super().set_optimizer_state(workload, osd, options)

        def adam_groups():  # a load replaces the group dicts: look them up again after it
            return [(g, o.defaults) for o in workload.optimizers if type(o).__name__ in ("Adam", "AdamW")
                    for g in o.param_groups]

        before = [{k: v for k, v in g.items() if k != "params" and k not in defaults}
                  for g, defaults in adam_groups()]
        super().set_optimizer_state(workload, osd, options)
        for (group, _), own in zip(adam_groups(), before):
            group.update(own)
