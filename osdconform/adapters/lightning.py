"""The ``lightning`` adapter: Lightning Fabric's wrapping, training step and checkpoint (``fabric.save`` / ``load``).

Why Fabric and not the Trainer: the suite drives training step by step (k
steps, a checkpoint, fresh objects, a load, m more steps) on scenarios it
builds itself (any ``nn.Module``, several optimizers, LR schedulers, LBFGS's
closure).  Fabric is Lightning's API for exactly that: it wraps the user's own
module and optimizers (``setup_module`` / ``setup_optimizers``), runs their
backward (``fabric.backward``) and step, and saves and loads the training
state through the strategy (``fabric.save`` / ``fabric.load``), so every line
of Lightning's checkpoint path is exercised without a LightningModule or a
Trainer loop around it.  The Trainer shares the strategies' checkpoint code
(``lightning.fabric.strategies`` under ``lightning.pytorch``'s) but owns the
loop: a mid-run checkpoint would need a callback, a resume ``fit(ckpt_path)``.

Plans, through Lightning's own strategies:

* ``none``: ``SingleDeviceStrategy`` (each rank trains the whole batch alone;
  with several ranks every one holds the same state, so rank 0 saves, as a
  script would);
* ``ddp``: ``DDPStrategy`` (``find_unused_parameters=True``, as the suite's
  DDP: unused branches and frozen parameters get no gradient);
* ``fsdp2`` (``fully_shard`` on the drawn units, then the root; HSDP on a 2-D
  mesh): ``ModelParallelStrategy`` with a ``parallelize_fn``, Lightning's
  FSDP2 strategy, which works on CPU.  Its checkpoint is one full file
  (``save_distributed_checkpoint=False``) by default: the only form every
  strategy here loads, so a checkpoint crosses plans (reshard) as it crosses
  world sizes; ``fabric.load`` under DDP or a single device cannot read
  Lightning's distributed checkpoint folder (it must be consolidated first,
  ``python -m lightning.fabric.utilities.consolidate_checkpoint``).  ``lightning(distributed_checkpoint=True)`` tests that folder
  (``torch.distributed.checkpoint``), Lightning's default, instead.

Lightning's ``FSDPStrategy`` (FSDP1) refuses to run without CUDA; it is not
supported here (the reference needs what the suite's own FSDP1 wrapping
records, which the public kit does not give).  ``tp``, ``fsdp2+tp``, ``zero``
and ``dtensor`` are not offered.

The process group exists when the suite calls ``prepare`` (spawned ranks, or
torchrun).  `_environment` tells Lightning so: ranks and world size come from
``torch.distributed``, and ``creates_processes_externally`` keeps Fabric's
``launch()`` from spawning anything (its ``_init_dist_connection`` sees the
group is initialised and reuses it).  One launched Fabric per strategy, mesh
and world is kept in this process (`_FABRICS`): ``ModelParallelStrategy``
builds a device mesh (new process groups) at launch, and a fresh one per
example piles up gloo groups, each with its threads.
"""

from __future__ import annotations

import dataclasses
import os

from osdconform.backends import Capabilities, rebuild_optimizers, step_loss, user_submodule

#: ``fabric.save``'s path under the suite's directory: a file, or a folder under ModelParallelStrategy.
CHECKPOINT = "checkpoint"

#: Launched Fabrics of this process: (world group, plan, mesh shape, device, distributed) -> (Fabric, parallelize).
_FABRICS: dict = {}


class LightningBackend:
    """Lightning Fabric: ``setup_module`` + ``setup_optimizers``, ``fabric.backward``, ``fabric.save`` / ``load``."""

    name = "lightning"
    requires = {"lightning": "pip install 'osdconform[lightning]'"}
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, plans=frozenset({"none", "ddp", "fsdp2"})
    )

    def __init__(self, distributed_checkpoint: bool = False) -> None:
        self.distributed_checkpoint = distributed_checkpoint

    def prepare(self, workload):
        fabric, parallelize = _fabric(workload, self.distributed_checkpoint)
        parallelize.plan = workload.scenario.plan
        model = fabric.setup_module(workload.module)
        # Optimizers after the wrapping, as Fabric's docs say: fully_shard replaced the parameters.
        workload = rebuild_optimizers(dataclasses.replace(workload, model=model))
        optimizers = fabric.setup_optimizers(*workload.optimizers)
        optimizers = optimizers if isinstance(optimizers, tuple) else (optimizers,)
        return dataclasses.replace(workload, optimizers=tuple(optimizers), framework=fabric)

    def train(self, workload, steps, first_step):
        """Fabric's loop: ``zero_grad``, ``fabric.backward``, ``optimizer.step`` (LBFGS with a closure)."""
        fabric, sc = workload.framework, workload.scenario
        for step in range(first_step, first_step + steps):
            for opt in workload.optimizers:
                opt.zero_grad(set_to_none=True)
            _backward(fabric, workload, step_loss(workload, step))
            for spec, opt in zip(sc.optimizers, workload.optimizers):
                if not spec.needs_closure:
                    opt.step()
            for spec, opt in zip(sc.optimizers, workload.optimizers):
                if spec.needs_closure:
                    opt.step(_closure(fabric, workload, opt, step))
            for sched in workload.schedulers:
                sched.step()

    def save_checkpoint(self, workload, directory, options):
        if workload.scenario.plan.kind == "none" and workload.rank != 0:
            return  # every rank holds the same state, and each one's Fabric thinks it is rank 0
        workload.framework.save(os.path.join(directory, CHECKPOINT), _state(workload))

    def load_checkpoint(self, workload, directory, options):
        state = _state(workload)
        if workload.scenario.plan.kind != "fsdp2":
            # The parameters are the suite's business; ModelParallelStrategy needs the model to load at all.
            del state["model"]
        workload.framework.load(os.path.join(directory, CHECKPOINT), state)


def _state(workload) -> dict:
    """What a Fabric script saves: the model and each optimizer under its own key."""
    return {"model": workload.model, **{f"optimizer{i}": opt for i, opt in enumerate(workload.optimizers)}}


def _backward(fabric, workload, loss) -> None:
    if loss.requires_grad:
        fabric.backward(loss)
    else:  # every used parameter frozen: no backward, so FSDP2 would keep its unsharded parameters
        from torch.distributed.fsdp import FSDPModule

        for m in workload.module.modules():
            if isinstance(m, FSDPModule):
                m.reshard()


def _closure(fabric, workload, opt, step):
    """LBFGS's closure; under data parallelism the mean loss of all ranks, so all take the same decisions."""
    sc = workload.scenario

    def closure():
        opt.zero_grad(set_to_none=True)
        value = step_loss(workload, step)
        _backward(fabric, workload, value)
        if sc.plan.data_parallel and sc.world_size > 1:
            value = fabric.all_reduce(value.detach(), reduce_op="mean")
        return value

    return closure


class _Parallelize:
    """ModelParallelStrategy's ``parallelize_fn``: ``fully_shard`` as the drawn plan says."""

    plan = None

    def __call__(self, module, mesh):
        from torch.distributed.fsdp import fully_shard

        # 1-D: shard over the data-parallel dim; HSDP: the whole 2-D mesh (replicate x shard).
        mesh = mesh if self.plan.mesh_2d else mesh["data_parallel"]
        for name in reversed(self.plan.shard):  # innermost first
            fully_shard(user_submodule(module, name), mesh=mesh, reshard_after_forward=self.plan.reshard_after_forward)
        fully_shard(module, mesh=mesh, reshard_after_forward=self.plan.reshard_after_forward)
        return module


def _fabric(workload, distributed_checkpoint: bool):
    """The launched Fabric for `workload`'s plan, made once per world, plan kind and mesh (see module doc)."""
    import torch.distributed as dist
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import DDPStrategy, ModelParallelStrategy, SingleDeviceStrategy

    sc, device = workload.scenario, workload.device
    mesh = sc.plan.mesh_shape(sc.world_size) if sc.plan.mesh_2d else (sc.world_size, 1)
    key = (dist.group.WORLD, sc.plan.kind, mesh, str(device), distributed_checkpoint)
    if key not in _FABRICS:
        parallelize = _Parallelize()
        if sc.plan.kind == "none":
            strategy = SingleDeviceStrategy(device=device)
        else:
            devices = [device] * sc.world_size  # each rank's own device at its rank
            backend = dist.get_backend()
            if sc.plan.kind == "ddp":
                strategy = DDPStrategy(parallel_devices=devices, cluster_environment=_environment(),
                                       process_group_backend=backend, find_unused_parameters=True)
            else:
                strategy = ModelParallelStrategy(parallelize, data_parallel_size=mesh[0], tensor_parallel_size=mesh[1],
                                                 save_distributed_checkpoint=distributed_checkpoint,
                                                 process_group_backend=backend)
                strategy.parallel_devices, strategy.cluster_environment = devices, _environment()
        fabric = Fabric(strategy=strategy)
        fabric.launch()  # joins the existing group (creates_processes_externally), spawns nothing
        _FABRICS[key] = (fabric, parallelize)
    return _FABRICS[key]


def _environment():
    """A Lightning ``ClusterEnvironment`` of the process group that already exists."""
    import torch.distributed as dist
    from lightning.fabric.plugins.environments import ClusterEnvironment

    class ExistingProcessGroup(ClusterEnvironment):
        creates_processes_externally = property(lambda self: True)
        main_address = property(lambda self: os.environ.get("MASTER_ADDR", "127.0.0.1"))
        main_port = property(lambda self: int(os.environ.get("MASTER_PORT", 0)))

        @staticmethod
        def detect() -> bool:
            return dist.is_initialized()

        def world_size(self) -> int:
            return dist.get_world_size()

        def set_world_size(self, size: int) -> None:
            if size != dist.get_world_size():
                raise ValueError(f"Lightning counts {size} processes in a world of {dist.get_world_size()}")

        def global_rank(self) -> int:
            return dist.get_rank()

        def set_global_rank(self, rank: int) -> None:
            if rank != dist.get_rank():
                raise ValueError(f"Lightning puts rank {dist.get_rank()} at {rank}")

        def local_rank(self) -> int:  # with node_rank 0: the index into the strategy's devices
            return dist.get_rank()

        def node_rank(self) -> int:
            return 0

    return ExistingProcessGroup()
