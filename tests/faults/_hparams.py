"""Hyperparameters and group fields lost: a load that leaves a group's values as the target had them.

The properties load into targets whose group values differ from the
source's (`osdconform.properties._other_values`), so each of these shows.
"""

from __future__ import annotations

import json
import os

from osdconform.backends.reference import ReferenceBackend
from osdconform.backends.torch_dcp import TorchDCPBackend
from osdconform.backends.torch_dsd import TorchDSDBackend
from osdconform.backends.torch_save import TorchSaveBackend

from ._kit import groups, keep_target_keys, nested


class EmptyGroupLosesHyperparameters(ReferenceBackend):
    """pytorch/pytorch#143828: a param group without parameters lost its
    hyperparameters (``betas``, ...) in a full get; only ``lr`` survived.

    Re-created over the reference (torch-dsd's own empty-group defects are
    expected failures there that would hide it): a get keeps only ``lr`` and
    ``params`` of an empty group, and set leaves the target's other values.
    """

    name = "empty-group-loses-hyperparameters"
    over = "reference"
    reports = ("pytorch/pytorch#143828",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        if nested(osd):
            osd["param_groups"] = [
                g if g["params"] else {"lr": g["lr"], "params": []} for g in osd["param_groups"]
            ]
        return osd

    def set_optimizer_state(self, workload, osd, options):
        if not nested(osd):
            return super().set_optimizer_state(workload, osd, options)
        empty = [not g["params"] for g in osd["param_groups"]]
        lean = [{**g, **{k: v for k, v in live.items() if k not in g}} if e else g
                for g, e, live in zip(osd["param_groups"], empty,
                                      groups(workload))]
        super().set_optimizer_state(workload, {**osd, "param_groups": lean}, options)


class LrNotLoaded(TorchDSDBackend):
    """pytorch/pytorch#129079: ``set_optimizer_state_dict`` stopped loading
    ``lr`` (a 2.3 regression); the target kept its own.
    """

    name = "lr-not-loaded"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#129079",)

    def set_optimizer_state(self, workload, osd, options):
        keep_target_keys(workload, lambda: TorchDSDBackend.set_optimizer_state(self, workload, osd, options),
                         lambda key, value: key == "lr")


class InitialLrLost(TorchDCPBackend):
    """pytorch/pytorch#140900: ``initial_lr`` (the key LR schedulers keep in a
    group) was lost across a DCP save and load.

    Re-created: the load leaves each group's ``initial_lr`` as the target had it.
    """

    name = "initial-lr-lost"
    over = "torch-dcp"
    reports = ("pytorch/pytorch#140900",)

    def load_checkpoint(self, workload, directory, options):
        keep_target_keys(workload, lambda: TorchDCPBackend.load_checkpoint(self, workload, directory, options),
                         lambda key, value: key == "initial_lr")


#: Keys LR schedulers write into a group (torch.optim.lr_scheduler).
SCHEDULER_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "base_lr", "base_momentum", "max_momentum"})


class SchedulerKeysNotRestored(TorchDSDBackend):
    """Lightning-AI/pytorch-lightning#15462 (OneCycleLR on resume): the group
    keys a scheduler owns (``initial_lr``, ``max_lr``, ...) came back as the
    freshly built scheduler set them, not as saved.
    """

    name = "scheduler-keys-not-restored"
    over = "torch-dsd"
    reports = ("Lightning-AI/pytorch-lightning#15462",)

    def set_optimizer_state(self, workload, osd, options):
        keep_target_keys(workload, lambda: TorchDSDBackend.set_optimizer_state(self, workload, osd, options),
                         lambda key, value: key in SCHEDULER_KEYS)


class LrRecomputedFromInitialLr(TorchDSDBackend):
    """pytorch/pytorch#65342 (CosineAnnealingLR) and #162591 (SequentialLR):
    on resume the lr was recomputed from the group's ``initial_lr`` instead of
    taken from the checkpoint.

    Re-created: after the load, a group with ``initial_lr`` gets it as ``lr``.
    """

    name = "lr-recomputed-from-initial-lr"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#65342", "pytorch/pytorch#162591")

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        for group in groups(workload):
            if "initial_lr" in group and not hasattr(group["lr"], "fill_"):
                group["lr"] = float(group["initial_lr"])


class CustomGroupKeysNotSaved(TorchSaveBackend):
    """A checkpoint that keeps only the keys the optimizer's constructor takes:
    a group's own keys (a name, a tag) come back as the script had set them.
    Seen by osdconform issue 18 (item 4) with a rank-0 ``torch.save`` adapter,
    which passed every suite while the targets held the source's values.

    Re-created over ``torch.save``: the save leaves out every group key the
    optimizer's ``defaults`` lack, and the load keeps the target's.
    """

    name = "custom-group-keys-not-saved"
    over = "torch-save"
    reports = ("osdconform issue 18 (item 4)",)

    def save_checkpoint(self, workload, directory, options):
        custom = sorted({k for o in workload.optimizers for g in o.param_groups for k in g
                         if k != "params" and k not in o.defaults})
        pending = super().save_checkpoint(workload, directory, options)
        with open(os.path.join(directory, "custom-keys.json"), "w") as fh:
            json.dump(custom, fh)
        return pending

    def load_checkpoint(self, workload, directory, options):
        with open(os.path.join(directory, "custom-keys.json")) as fh:
            custom = set(json.load(fh))
        keep_target_keys(workload, lambda: TorchSaveBackend.load_checkpoint(self, workload, directory, options),
                         lambda key, value: key in custom)
