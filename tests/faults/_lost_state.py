"""Lost or dropped state: a checkpoint that silently leaves some optimizer state behind."""

from __future__ import annotations

import torch

from osdconform.backends.reference import ReferenceBackend
from osdconform.backends.torch_dcp import TorchDCPBackend
from osdconform.backends.torch_dsd import TorchDSDBackend
from osdconform.backends.zero import ZeroBackend

from ._kit import fqn_of, map_entries, nested


class DCPDropsStateWhenGradsPresent(TorchDCPBackend):
    """pytorch/pytorch#140898: saving with DCP dropped optimizer state when the
    gradients had not been zeroed before the save.

    Re-created: the save writes no state for a parameter that still has a
    gradient (the suite saves right after a step, as training loops do).
    """

    name = "dcp-drops-state-when-grads-present"
    over = "torch-dcp"
    reports = ("pytorch/pytorch#140898",)

    def save_checkpoint(self, workload, directory, options):
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        names = fqn_of(workload)
        with_grads = {names[id(p)] for p in workload.module.parameters() if p.grad is not None}
        osd = get_optimizer_state_dict(workload.model, workload.optimizers)
        osd = map_entries(osd, lambda fqn, e: None if fqn in with_grads else e)
        dcp.save({"optimizer": osd}, checkpoint_id=directory)


class FrozenParamStateDroppedOnLoad(ReferenceBackend):
    """pytorch/pytorch#192202: the state of frozen parameters (``requires_grad``
    False) was dropped on load.

    Over the reference (torch-dsd has this bug itself, an expected failure
    there, so a fault over it would hide behind its entry): set leaves out the
    state of every parameter of the target that does not require grad (the
    space freezes parameters after some steps).
    """

    name = "frozen-param-state-dropped-on-load"
    over = "reference"
    reports = ("pytorch/pytorch#192202",)

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            names = fqn_of(workload)
            frozen = {names[id(p)] for p in workload.module.parameters() if not p.requires_grad}
            osd = map_entries(osd, lambda fqn, e: None if fqn in frozen else e)
        super().set_optimizer_state(workload, osd, options)


class StepNotSaved(ZeroBackend):
    """microsoft/DeepSpeed#4396: the optimizer's ``step`` was not saved, so a
    resumed run restarted bias correction from step 1.

    Re-created over ZeroRedundancyOptimizer: get leaves out every ``step``.
    """

    name = "step-not-saved"
    over = "zero"
    reports = ("microsoft/DeepSpeed#4396",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        return map_entries(osd, lambda fqn, e: {k: v for k, v in e.items() if k != "step"})


class StepRestartsAfterLoad(TorchDSDBackend):
    """Megatron-LM PR#5976 and torchtitan PR#4382: after a load the step count
    started over (a resumed run's bias correction and schedules restart).

    Re-created: set loads every ``step`` as 0.
    """

    name = "step-restarts-after-load"
    over = "torch-dsd"
    reports = ("NVIDIA/Megatron-LM#5976", "pytorch/torchtitan#4382")

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            def zero_step(fqn, e):
                if isinstance(e.get("step"), torch.Tensor):
                    e["step"] = torch.zeros_like(e["step"])
                elif "step" in e:
                    e["step"] = type(e["step"])(0)
                return e

            osd = map_entries(osd, zero_step)
        super().set_optimizer_state(workload, osd, options)


class StepOffByOneOnLoad(ZeroBackend):
    """microsoft/DeepSpeed PR#5104: a loaded step count was off by one.

    Re-created over ZeroRedundancyOptimizer: set loads every ``step`` plus one.
    """

    name = "step-off-by-one-on-load"
    over = "zero"
    reports = ("microsoft/DeepSpeed#5104",)

    def set_optimizer_state(self, workload, osd, options):
        def bump(fqn, e):
            if "step" in e:
                e["step"] = e["step"] + 1
            return e

        super().set_optimizer_state(workload, map_entries(osd, bump), options)


class IgnoredModuleStateDropped(TorchDSDBackend):
    """pytorch/pytorch#112515: the optimizer state of parameters in modules
    the wrapper did not manage (FSDP's ``ignored_modules``) was left out of
    the state dict.

    Re-created: a get leaves out the state of the parameters of the model's
    last module (of two or more), as if it were ignored.
    """

    name = "ignored-module-state-dropped"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#112515",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        modules = list(dict.fromkeys(fqn.rsplit(".", 1)[0] for fqn, _ in workload.module.named_parameters()
                                     if "." in fqn))
        if not nested(osd) or len(modules) < 2:
            return osd
        ignored = modules[-1] + "."
        return map_entries(osd, lambda fqn, e: None if fqn.startswith(ignored) else e)
