"""Which optimizer state entries torch.optim keeps in their parameter's shape.

One table, read by the reference load (an entry named here must have the
parameter's shape, or the checkpoint is wrong) and by the expected-failure
conditions (which entries an optimizer's parameter holds).  Keyed by the
optimizer class's lower-case name; ``tests/cover/test_optimizers.py`` checks
the table against real torch.optim optimizers.
"""

from __future__ import annotations

#: Entries an optimizer keeps for every parameter it has stepped.
ALWAYS: dict[str, tuple[str, ...]] = {
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
    "nadam": ("exp_avg", "exp_avg_sq"),
    "radam": ("exp_avg", "exp_avg_sq"),
    "adamax": ("exp_avg", "exp_inf"),
    "adadelta": ("square_avg", "acc_delta"),
    "rprop": ("prev", "step_size"),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum",),
    "asgd": ("ax",),
}

#: Entries kept only under some hyperparameters: Adam/AdamW ``amsgrad``,
#: RMSprop ``centered`` and ``momentum``, SGD ``momentum``, Muon (always
#: with momentum).  Which group keeps which is `OptimizerSpec.optional_state`.
OPTIONAL: dict[str, tuple[str, ...]] = {
    "adam": ("max_exp_avg_sq",),
    "adamw": ("max_exp_avg_sq",),
    "rmsprop": ("grad_avg", "momentum_buffer"),
    "sgd": ("momentum_buffer",),
    "muon": ("momentum_buffer",),
}

#: Every entry name that is parameter-shaped, whatever the optimizer.
PARAM_SHAPED: frozenset[str] = frozenset(
    name for table in (ALWAYS, OPTIONAL) for names in table.values() for name in names
)

#: Adafactor's state, whose shape follows from its parameter's: ``variance`` (a
#: parameter of one dimension or none) is shaped like it; ``row_var`` and ``col_var``
#: (the factors of a matrix's second moment) like it with the last, or the
#: second-to-last, dimension 1.  The value is that dimension (None: none).
FACTORED: dict[str, int | None] = {"variance": None, "row_var": -1, "col_var": -2}


def factored_shape(name: str, param_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape Adafactor gives entry `name` of a parameter of `param_shape` (None: not such an entry)."""
    if name not in FACTORED:
        return None
    dim = FACTORED[name]
    if dim is None:
        return tuple(param_shape)
    if len(param_shape) < 2:
        return None  # no factors of a vector: torch keeps `variance` for it
    shape = list(param_shape)
    shape[dim] = 1
    return tuple(shape)


#: Entries that are flat vectors over all the parameters of a param group,
#: kept under the group's first parameter: LBFGS's search direction, last
#: gradient and the history of directions and steps (lists of such vectors).
FLAT: dict[str, tuple[str, ...]] = {"lbfgs": ("d", "prev_flat_grad", "old_dirs", "old_stps")}
