"""``--osd-coverage``: the counts of what a run exercised, added up across xdist workers."""

from __future__ import annotations

from collections import Counter

from helpers.scripts import runpytest_subprocess
from osdconform.plugin._coverage import format_report, group_counts
from osdconform.strategies import space

PROBE = '''
from hypothesis import given, settings, strategies as st

from osdconform import properties
from osdconform.backends import StateOptions
from osdconform.scenario import GroupSpec, LinearSpec, OptimizerSpec, Scenario, TiedLinearSpec, TreeSpec

FULL = StateOptions(full=True)


def _scenario(model):
    groups = (GroupSpec(model.param_fqns(), (("momentum", 0.9),)),)
    return Scenario(seed=0, world_size=1, model=model, optimizers=(OptimizerSpec("sgd", groups),), steps=1)


TIED = _scenario(TreeSpec(width=1, layers=(TiedLinearSpec(),)))
PLAIN = _scenario(TreeSpec(width=1, layers=(LinearSpec(out=1),)))


# Conformance.check runs inside a Hypothesis test (it notes the scenario).
@settings(max_examples=2, database=None)
@given(s=st.sampled_from([TIED, PLAIN]))
def test_two_examples(osd, s):
    osd.check("roundtrip", properties.roundtrip, s, FULL)


@settings(max_examples=1, database=None)
@given(s=st.just(PLAIN))
def test_one_example(osd, s):
    osd.check("roundtrip", properties.roundtrip, s, FULL)


@settings(max_examples=1, database=None)
@given(s=st.just(TIED))
def test_another_example(osd, s):
    osd.check("roundtrip", properties.roundtrip, s, FULL)
'''


def test_counts_are_added_up_across_xdist_workers(pytester):
    pytester.makepyfile(test_probe=PROBE)
    result = runpytest_subprocess(
        pytester,
        "-p", "no:cacheprovider", "-n", "2", "--osd-coverage", "--osd-world-sizes=1", "-q"
    )
    assert result.ret == 0, result.outlines
    out = "\n".join(result.outlines)
    assert "osdconform coverage" in out
    # 4 examples in 3 tests, spread over 2 worker processes.
    result.stdout.fnmatch_lines(
        [
            "4 example(s) reached a world",
            "optimizer: sgd 4",
            "plan: none 4",
            "world: 1 4",
            "dtype: float32 4",
            "module: linear 2",
            "feature: *tied 2*",
            "model features no example drew: *module:conv1d*",
        ]
    )


def test_no_report_without_the_option(pytester):
    pytester.makepyfile(test_probe="def test_nothing():\n    pass\n")
    result = runpytest_subprocess(pytester, "-p", "no:cacheprovider", "-q")
    assert result.ret == 0
    assert "osdconform coverage" not in "\n".join(result.outlines)


def test_report_groups_tags_by_prefix_and_lists_model_features_never_drawn():
    totals = Counter({"examples": 3, "plan:ddp": 2, "plan:none": 1, "world:2": 3, "tied": 1, "dtype:float32": 3})
    assert group_counts(totals) == {
        "plan": {"ddp": 2, "none": 1},
        "world": {"2": 3},
        "feature": {"tied": 1},
        "dtype": {"float32": 3},
    }
    lines = format_report(totals)
    assert lines[:5] == [
        "3 example(s) reached a world",
        "plan: ddp 2, none 1",
        "world: 2 3",
        "dtype: float32 3",
        "feature: tied 1",
    ]
    assert lines[5].startswith("model features no example drew: ")
    assert "tied," not in lines[5] and "dtype:float32" not in lines[5] and "module:linear" in lines[5]


def test_report_names_the_values_of_the_space_no_example_drew():
    from osdconform.backends import resolve_backend

    totals = Counter({"examples": 1, "optimizer:sgd": 1, "plan:none": 1, "world:1": 1})
    expected = space("core").values(resolve_backend("reference").capabilities, (1, 2))
    assert expected == ["optimizer:adam", "optimizer:sgd", "optimizer:adamw", "plan:none", "plan:ddp",
                        "plan:fsdp2", "world:1", "world:2"]
    lines = format_report(totals, expected)
    assert "values of the space no example drew: optimizer:adam, optimizer:adamw, plan:ddp, plan:fsdp2, world:2" in lines
    full = space("full").values(resolve_backend("torch-save").capabilities, (1, 2, 3, 4))
    assert "optimizer:lbfgs" in full and "plan:zero" not in full  # torch-save declares plan none only

