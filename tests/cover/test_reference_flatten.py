"""`reference.flatten` / `unflatten`: torch's flat key format, and its inverse.

The fidelity property compares a backend's flattened OSD against
``reference.flatten(reference.full_osd(...))``, and loading a flat OSD goes
through `unflatten`; so the key format must be exactly torch's and the two
functions must be inverse on every canonical OSD the suite can produce.  FQNs
contain dots, so the tricky inputs are FQNs that are prefixes of one another
(``a.b`` / ``a.b.c``, ``layers.1`` / ``layers.10``), nested state dicts, and
groups whose members' flat entries disagree.

Pure: no processes.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from osdconform.compare import assert_osd_equal
from osdconform.reference import FlatKeyError, flatten, unflatten

# -- strategies -------------------------------------------------------------

#: Pure and cheap: pin the example count rather than take the suite's profile
#: (the osdconform plugin loads ``dev``/``ci`` profiles sized for distributed
#: examples, 10-12 each).
many = settings(max_examples=200)

#: FQNs chosen so that many are prefixes of others, both on a dot boundary
#: ("a.b" / "a.b.c") and not ("layers.1.weight" / "layers.10.weight").
FQN_POOL = (
    "a",
    "a.b",
    "a.b.c",
    "a.bc",
    "ab",
    "layers.1.weight",
    "layers.10.weight",
    "layers.1.weight_g",
    "w",
)

#: State names share no component with the FQNs above.  (A nested state dict
#: whose name is the next component of another FQN - fqn "a.b", name "c",
#: inner key "x" vs fqn "a.b.c", name "x" - gives the same flat key
#: "state.a.b.c.x"; real modules cannot have both a parameter "a.b" and a
#: parameter "a.b.c", since "b" cannot be both a parameter and a submodule.)
STATE_NAMES = ("step", "exp_avg", "exp_avg_sq", "momentum_buffer", "max_exp_avg_sq")
INNER_NAMES = ("first", "second", "count")

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool)


@st.composite
def tensors(draw) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    if dtype == torch.bool:
        return t > 0
    return t.to(dtype)


scalars = st.one_of(
    st.floats(allow_nan=False, width=64),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.none(),
)

leaves = st.one_of(tensors(), scalars)

nested = st.dictionaries(st.sampled_from(INNER_NAMES), leaves, min_size=1, max_size=3)

state_values = st.dictionaries(
    st.sampled_from(STATE_NAMES), st.one_of(leaves, nested), min_size=1, max_size=4
)


def hparam_values():
    return st.one_of(
        st.floats(allow_nan=False, width=64),
        st.integers(0, 100),
        st.booleans(),
        st.none(),
        st.tuples(st.floats(0, 1), st.floats(0, 1)),  # betas stay a tuple
        st.builds(lambda x: torch.tensor(x, dtype=torch.float64), st.floats(0, 1)),  # tensor lr
        st.sampled_from(["fused", "foreach"]),
    )


HP_NAMES = ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize", "momentum")


@st.composite
def canonical_osds(draw, allow_empty_groups: bool = False) -> dict:
    fqns = draw(st.lists(st.sampled_from(FQN_POOL), min_size=1, max_size=len(FQN_POOL), unique=True))
    # Cut the FQNs (in drawn order) into consecutive non-empty groups.
    n_groups = draw(st.integers(1, len(fqns)))
    cuts = []
    if len(fqns) > 1:
        cut_points = st.integers(1, len(fqns) - 1)
        cuts = sorted(draw(st.lists(cut_points, unique=True, min_size=n_groups - 1, max_size=n_groups - 1)))
    bounds = [0, *cuts, len(fqns)]
    members = [fqns[a:b] for a, b in zip(bounds, bounds[1:])]
    if allow_empty_groups:
        for _ in range(draw(st.integers(0, 2))):
            members.insert(draw(st.integers(0, len(members))), [])
    groups = []
    for m in members:
        hp = draw(st.dictionaries(st.sampled_from(HP_NAMES), hparam_values(), max_size=5))
        # "params" last, as torch's param_groups keep it.
        groups.append({**hp, "params": list(m)})
    with_state = draw(st.lists(st.sampled_from(fqns), unique=True))
    state = {fqn: draw(state_values) for fqn in with_state}
    return {"state": state, "param_groups": groups}


def _layout(osd: dict) -> list[list[str]]:
    return [list(g["params"]) for g in osd["param_groups"]]


def _leaf_count(values: dict) -> int:
    return sum(_leaf_count(v) if isinstance(v, dict) else 1 for v in values.values())


# -- the inverse property ---------------------------------------------------


@many
@given(osd=canonical_osds())
def test_unflatten_inverts_flatten(osd):
    flat = flatten(osd)
    back = unflatten(flat, _layout(osd))
    assert_osd_equal(osd, back, context="unflatten(flatten(osd))")


@many
@given(osd=canonical_osds())
def test_flat_keys_have_torchs_format(osd):
    """One key per state leaf and one per (member, hyperparameter), nothing else."""
    flat = flatten(osd)
    expected_keys = set()
    for fqn, values in osd["state"].items():
        stack = [(f"state.{fqn}", values)]
        while stack:
            prefix, d = stack.pop()
            for k, v in d.items():
                if isinstance(v, dict):
                    stack.append((f"{prefix}.{k}", v))
                else:
                    expected_keys.add(f"{prefix}.{k}")
    for group in osd["param_groups"]:
        for fqn in group["params"]:
            expected_keys.update(f"param_groups.{fqn}.{hp}" for hp in group if hp != "params")
    assert set(flat) == expected_keys
    n_state = sum(_leaf_count(v) for v in osd["state"].values())
    n_groups = sum(len(g["params"]) * (len(g) - 1) for g in osd["param_groups"])
    assert len(flat) == n_state + n_groups  # no two leaves collapsed onto one key
    # A group's values appear under every member, as the same values.
    for group in osd["param_groups"]:
        for fqn in group["params"]:
            for hp, v in group.items():
                if hp != "params":
                    assert flat[f"param_groups.{fqn}.{hp}"] is v


def test_key_format_example():
    lr = torch.tensor(0.01)
    step = torch.tensor(3.0)
    osd = {
        "state": {
            "a.b": {"step": step, "exp_avg": torch.zeros(2)},
            "a.b.c": {"step": 1, "nested": {"inner": 2.5}},
        },
        "param_groups": [
            {"lr": lr, "betas": (0.9, 0.99), "params": ["a.b", "a.b.c"]},
            {"lr": 0.5, "params": ["w"]},
        ],
    }
    flat = flatten(osd)
    assert list(flat) == [
        "state.a.b.step",
        "state.a.b.exp_avg",
        "state.a.b.c.step",
        "state.a.b.c.nested.inner",
        "param_groups.a.b.lr",
        "param_groups.a.b.betas",
        "param_groups.a.b.c.lr",
        "param_groups.a.b.c.betas",
        "param_groups.w.lr",
    ]
    assert flat["state.a.b.step"] is step
    assert flat["param_groups.a.b.c.lr"] is lr
    assert flat["state.a.b.c.nested.inner"] == 2.5
    back = unflatten(flat, [["a.b", "a.b.c"], ["w"]])
    assert_osd_equal(osd, back)


# -- empty groups (documented loss) ------------------------------------------


def test_empty_group_loses_its_hyperparameters():
    """An empty group has no FQN to carry its hyperparameters in the flat form."""
    osd = {
        "state": {},
        "param_groups": [
            {"lr": 0.1, "params": ["a"]},
            {"lr": 0.7, "weight_decay": 0.5, "params": []},
        ],
    }
    flat = flatten(osd)
    assert flat == {"param_groups.a.lr": 0.1}
    back = unflatten(flat, [["a"], []])
    assert back == {"state": {}, "param_groups": [{"lr": 0.1, "params": ["a"]}, {"params": []}]}


@many
@given(osd=canonical_osds(allow_empty_groups=True))
def test_inverse_up_to_empty_groups(osd):
    """With empty groups mixed in, only those groups' hyperparameters are lost."""
    back = unflatten(flatten(osd), _layout(osd))
    expected = {
        "state": osd["state"],
        "param_groups": [g if g["params"] else {"params": []} for g in osd["param_groups"]],
    }
    assert_osd_equal(expected, back)


# -- rejected flat dicts -------------------------------------------------------


def test_unknown_fqn_is_rejected_naming_the_key():
    flat = {"state.a.step": 1, "state.nope.exp_avg": torch.zeros(1)}
    with pytest.raises(FlatKeyError) as info:
        unflatten(flat, [["a"]])
    assert "'state.nope.exp_avg'" in str(info.value)
    assert "names no parameter" in str(info.value)


def test_unknown_fqn_in_param_groups_is_rejected_naming_the_key():
    with pytest.raises(FlatKeyError, match=r"'param_groups\.a\.bx\.lr'"):
        unflatten({"param_groups.a.bx.lr": 0.1}, [["a.b"]])


def test_fqn_without_a_name_is_rejected():
    """``state.a.b`` with FQN ``a.b`` has no state name after the FQN."""
    with pytest.raises(FlatKeyError, match=r"'state\.a\.b'"):
        unflatten({"state.a.b": 1}, [["a.b"]])


def test_unknown_section_is_rejected_naming_the_key():
    with pytest.raises(FlatKeyError, match=r"'stat\.a\.step' is neither"):
        unflatten({"stat.a.step": 1}, [["a"]])


@pytest.mark.parametrize(
    "b_lr",
    [0.2, torch.tensor(0.2), torch.tensor([0.1])],
    ids=["float", "tensor-vs-float", "tensor-shape"],
)
def test_disagreeing_group_members_are_rejected(b_lr):
    flat = {"param_groups.a.lr": 0.1, "param_groups.a.b.lr": b_lr}
    with pytest.raises(FlatKeyError) as info:
        unflatten(flat, [["a", "a.b"]])
    msg = str(info.value)
    assert msg == "param_groups.a.b.* differs from param_groups.a.* though both are in group 0"


def test_group_member_missing_a_hyperparameter_is_rejected():
    flat = {"param_groups.x.lr": 0.1, "param_groups.x.eps": 1e-8, "param_groups.y.lr": 0.1}
    with pytest.raises(FlatKeyError, match=r"param_groups\.y\.\* differs from param_groups\.x\.\* .* group 1"):
        unflatten(flat, [["w"], ["x", "y"]])


def test_equal_tensor_hyperparameters_in_distinct_objects_agree():
    """A flat dict read back from disk holds equal, not identical, values."""
    flat = {"param_groups.a.lr": torch.tensor(0.1), "param_groups.b.lr": torch.tensor(0.1)}
    back = unflatten(flat, [["a", "b"]])
    assert_osd_equal({"state": {}, "param_groups": [{"lr": torch.tensor(0.1), "params": ["a", "b"]}]}, back)


def test_flat_key_error_message_is_not_quoted():
    """`KeyError` would repr its message; `FlatKeyError` prints it as written."""
    err = FlatKeyError("flat key 'x' names no parameter of the optimizer")
    assert str(err) == "flat key 'x' names no parameter of the optimizer"
    assert isinstance(err, KeyError)
