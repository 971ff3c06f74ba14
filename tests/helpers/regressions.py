"""Scenarios a run once failed on, kept as ``@example``s by the tests they concern.

Adagrad makes state in its constructor, also on the FSDP1 rank whose piece of
a parameter is empty: that rank never steps it, so neither its ``step`` nor
its local OSD is the parameter's (golden twin and reference both got it wrong).

A forward that no backward follows (every parameter frozen) left FSDP1's
unsharded views in the module where it does not reshard after the forward
(``SHARD_GRAD_OP``, the root): the reference then found a parameter in the
optimizer that the module no longer held (`scenario._build._reshard`).
"""

from osdconform.scenario import GroupSpec, LinearSpec, OptimizerSpec, PlanSpec, Scenario, TreeSpec

ADAGRAD_EMPTY_FSDP1_PIECE = Scenario(
    seed=0, world_size=2, model=TreeSpec(width=1, layers=(LinearSpec(out=1, bias=True),)),
    optimizers=(
        OptimizerSpec(
            "adagrad",
            (GroupSpec(("layers.0.weight", "layers.0.bias"), (("lr", 0.001), ("weight_decay", 0.01), ("eps", 1e-08))),),
        ),
    ),
    plan=PlanSpec("fsdp1"), steps=1,
)

FSDP1_FORWARD_WITHOUT_BACKWARD = Scenario(
    seed=0, world_size=2, model=TreeSpec(width=1, layers=(LinearSpec(out=1, freeze=0),)),
    optimizers=(OptimizerSpec("adadelta", (GroupSpec(("layers.0.weight",)),)),),
    plan=PlanSpec("fsdp1", sharding_strategy="SHARD_GRAD_OP"), steps=1,
)
