"""torch.optim: loading LBFGS's state casts it to its first parameter's dtype, and the next step fails.

LBFGS works on one flat vector: ``_gather_flat_grad`` concatenates every
parameter's gradient, so when its parameters have different floating dtypes
(a float32 layer and a float64 one) the flat gradient is of their promoted
dtype (float64), and so is the state it keeps, all under the first
parameter's entry: ``d``, ``prev_flat_grad``, ``H_diag`` and the history lists
``old_dirs``, ``old_stps``, ``ro``, ``al``.  ``Optimizer.load_state_dict``
casts every floating state value but ``step`` (list elements included) to the
dtype of the parameter it is keyed by (``_process_value_according_to_param_policy``),
here the float32 first parameter.  So after a save and a load the state is
float32 where the saved one was float64 (a round trip changes it and drops
precision), and the next ``step`` mixes the new float64 flat gradient with the
loaded float32 direction: ``y.dot(s)`` raises "dot : expected both vectors to
have same dtype, but found Double and Float".  The same optimizer, not saved
and loaded, keeps stepping.

The step length ``t`` is cast the same way: with a tensor ``lr`` (float32)
LBFGS keeps ``t`` as a float32 tensor whatever its parameters, so on a
bfloat16 model a round trip turns it into bfloat16 (no error there: the next
step recomputes ``t`` before using it).

Standalone: torch only, one process.  Exits 1 while the defect holds.
"""

import io
import sys

import torch


def build():
    torch.manual_seed(0)
    first = torch.nn.Linear(2, 2)  # float32: the parameter LBFGS keys its state by
    second = torch.nn.Linear(2, 1, dtype=torch.float64)
    return first, second


def make(first, second):
    return torch.optim.LBFGS([first.weight, second.weight], lr=0.5, max_iter=3)


def step(optim, first, second, x):
    def closure():
        optim.zero_grad()
        loss = second(first(x).double()).pow(2).sum()
        loss.backward()
        return loss

    optim.step(closure)


def roundtrip(optim) -> dict:
    buffer = io.BytesIO()
    torch.save(optim.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def step_length_dtype() -> bool:
    """A bfloat16 model, tensor lr: ``t`` saved as float32, loaded as bfloat16."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1, dtype=torch.bfloat16)
    optim = torch.optim.LBFGS(model.parameters(), lr=torch.tensor(0.5), max_iter=3)
    x = torch.randn(4, 2, dtype=torch.bfloat16)

    def closure():
        optim.zero_grad()
        loss = model(x).float().pow(2).sum()
        loss.backward()
        return loss

    optim.step(closure)
    saved = optim.state_dict()["state"][0]["t"].dtype
    fresh = torch.optim.LBFGS(torch.nn.Linear(2, 1, dtype=torch.bfloat16).parameters(), lr=torch.tensor(0.5))
    fresh.load_state_dict(roundtrip(optim))
    loaded = fresh.state_dict()["state"][0]["t"].dtype
    print(f"bfloat16 model, tensor lr: LBFGS state 't' saved as {saved}, loaded as {loaded}")
    return loaded != saved


def main() -> int:
    t_cast = step_length_dtype()
    x = torch.randn(4, 2)
    first, second = build()
    optim = make(first, second)
    step(optim, first, second, x)
    saved = optim.state_dict()
    saved_dtype = saved["state"][0]["d"].dtype

    loaded = roundtrip(optim)

    first2, second2 = build()
    with torch.no_grad():
        for a, b in zip((*first.parameters(), *second.parameters()), (*first2.parameters(), *second2.parameters())):
            b.copy_(a)
    fresh = make(first2, second2)
    fresh.load_state_dict(loaded)
    loaded_dtype = fresh.state_dict()["state"][0]["d"].dtype
    print(f"LBFGS state 'd' saved as {saved_dtype}, loaded as {loaded_dtype}")

    step(optim, first, second, x)
    print("the optimizer that was not reloaded steps on")
    try:
        step(fresh, first2, second2, x)
    except RuntimeError as exc:
        print(f"the reloaded optimizer's next step raises: RuntimeError: {exc}")
        return 1
    return 1 if loaded_dtype != saved_dtype or t_cast else 0


if __name__ == "__main__":
    sys.exit(main())
