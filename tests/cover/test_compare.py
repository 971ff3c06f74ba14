"""The exact words of `OSDMismatch`: what a user reads when a property fails.

A failing conformance example is only as useful as its message, so each kind
of difference `compare.first_difference` knows is pinned here verbatim with
``assertExpectedInline``.  To update after a deliberate wording change, run
``EXPECTTEST_ACCEPT=1 pytest tests/cover/test_compare.py`` and review the diff.

Also pinned: the comparison semantics behind the messages (bitwise by default,
so NaN equals the same NaN and ``-0.0`` differs from ``0.0``; strict types).

Pure: no processes (DTensor comparisons live with the distributed tests).
"""

from __future__ import annotations

import unittest

import expecttest
import torch

from osdconform.compare import DTYPE_TOLERANCE, OSDMismatch, assert_osd_equal, first_difference


def _osd(value, name="exp_avg", fqn="layers.0.weight"):
    return {"state": {fqn: {name: value}}, "param_groups": [{"lr": 0.1, "params": [fqn]}]}


class TestMismatchMessages(expecttest.TestCase):
    def message(self, expected, actual, **kwargs) -> str:
        with self.assertRaises(OSDMismatch) as cm:
            assert_osd_equal(expected, actual, **kwargs)
        exc = cm.exception
        self.assertIsInstance(exc, AssertionError)  # pytest and unittest treat it as a failed check
        self.assertEqual(first_difference(expected, actual, tolerance=kwargs.get("tolerance")), exc.difference)
        return str(exc)

    def test_tensor_values_2d_first_index(self):
        e = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
        a = e.clone()
        a[1, 2] = 0.5
        a[2, 0] = -1.0
        a[2, 3] = 7.0
        self.assertExpectedInline(self.message(_osd(e), _osd(a)), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at index (1, 2): expected 1.5, actual 0.5 (3 of 12 elements differ)""")

    def test_zero_dim_tensor(self):
        self.assertExpectedInline(
            self.message(_osd(torch.tensor(3.0), "step"), _osd(torch.tensor(4.0), "step")), """OSD mismatch at state['layers.0.weight']['step']: values differ: expected 3.0, actual 4.0"""
        )

    def test_dtype(self):
        e = torch.zeros(2, 3)
        self.assertExpectedInline(self.message(_osd(e), _osd(e.double())), """OSD mismatch at state['layers.0.weight']['exp_avg']: dtype differs: expected torch.float32, actual torch.float64""")

    def test_shape(self):
        self.assertExpectedInline(self.message(_osd(torch.zeros(2, 3)), _osd(torch.zeros(3, 2))), """OSD mismatch at state['layers.0.weight']['exp_avg']: shape differs: expected (2, 3), actual (3, 2)""")

    @unittest.skipUnless(torch.cuda.is_available(), "needs a second device kind; CI is CPU only")
    def test_device(self):
        e = torch.zeros(2)
        self.assertExpectedInline(self.message(_osd(e), _osd(e.cuda())), """OSD mismatch at state['layers.0.weight']['exp_avg']: device differs: expected cpu, actual cuda:0""")

    def test_missing_key(self):
        e = {"state": {"a": {"step": 1, "exp_avg": 2}}, "param_groups": []}
        a = {"state": {"a": {"step": 1}}, "param_groups": []}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at state['a']: keys differ: missing ['exp_avg']""")

    def test_unexpected_key(self):
        e = {"state": {"a": {"step": 1}}, "param_groups": []}
        a = {"state": {"a": {"step": 1}, "module.a": {"step": 1}}, "param_groups": []}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at state: keys differ: unexpected ['module.a']""")

    def test_list_length(self):
        e = {"state": {}, "param_groups": [{"params": ["a", "b"]}]}
        a = {"state": {}, "param_groups": [{"params": ["a"]}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['params']: length differs: expected 2, actual 1""")

    def test_float_vs_tensor(self):
        e = {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]}
        a = {"state": {}, "param_groups": [{"lr": torch.tensor(0.1), "params": []}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['lr']: type differs: expected float 0.1, actual Tensor(0.10000000149011612, shape=(), dtype=torch.float32)""")

    def test_tensor_vs_float(self):
        e = {"state": {}, "param_groups": [{"lr": torch.tensor(0.1), "params": []}]}
        a = {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['lr']: type differs: expected Tensor(0.10000000149011612, shape=(), dtype=torch.float32), actual float 0.1""")

    def test_tuple_vs_list(self):
        e = {"state": {}, "param_groups": [{"betas": (0.9, 0.999), "params": []}]}
        a = {"state": {}, "param_groups": [{"betas": [0.9, 0.999], "params": []}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['betas']: type differs: expected tuple (0.9, 0.999), actual list [0.9, 0.999]""")

    def test_scalar_values(self):
        e = {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]}
        a = {"state": {}, "param_groups": [{"lr": 0.01, "params": []}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['lr']: values differ: expected 0.1, actual 0.01""")

    def test_negative_zero_differs_bitwise(self):
        self.assertExpectedInline(
            self.message(_osd(torch.zeros(3)), _osd(torch.tensor([0.0, -0.0, 0.0]))), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at index (1,): expected 0.0, actual -0.0 (1 of 3 elements differ)"""
        )

    def test_negative_zero_float_differs(self):
        e = {"state": {}, "param_groups": [{"weight_decay": 0.0, "params": []}]}
        a = {"state": {}, "param_groups": [{"weight_decay": -0.0, "params": []}]}
        self.assertExpectedInline(self.message(e, a), """OSD mismatch at param_groups[0]['weight_decay']: values differ: expected 0.0, actual -0.0""")

    def test_tolerance(self):
        e = torch.ones(2, 3)
        a = e.clone()
        a[0, 1] = 1.01
        a[1, 2] = 1.02
        self.assertExpectedInline(self.message(_osd(e), _osd(a), tolerance=DTYPE_TOLERANCE), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ beyond atol + rtol * max|expected| (rtol=0.0001, atol=1e-06) at index (0, 1): expected 1.0, actual 1.0099999904632568 (2 of 6 elements differ; max abs diff 0.02)""")

    def test_tolerance_zero_dim(self):
        self.assertExpectedInline(
            self.message(
                _osd(torch.tensor(1.0, dtype=torch.float64)),
                _osd(torch.tensor(1.001, dtype=torch.float64)),
                tolerance=DTYPE_TOLERANCE,
            ),
            """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ beyond atol + rtol * max|expected| (rtol=1e-09, atol=1e-12): expected 1.0, actual 1.001""",
        )

    def test_context_prefix(self):
        self.assertExpectedInline(
            self.message(_osd(torch.tensor(1.0)), _osd(torch.tensor(2.0)), context="round trip (get before vs after set)"),
            """round trip (get before vs after set): OSD mismatch at state['layers.0.weight']['exp_avg']: values differ: expected 1.0, actual 2.0""",
        )

    def test_top_level_difference_has_no_path(self):
        self.assertExpectedInline(self.message(torch.zeros(2), torch.ones(2)), """OSD mismatch: values differ at index (0,): expected 0.0, actual 1.0 (2 of 2 elements differ)""")

    def test_bfloat16_values_print_as_floats(self):
        e = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
        self.assertExpectedInline(self.message(_osd(e), _osd(e + 1)), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at index (0,): expected 1.0, actual 2.0 (2 of 2 elements differ)""")

    def test_nan_payloads_that_differ(self):
        """Two different NaNs differ bitwise; the message shows their bits."""
        e = torch.tensor([float("nan")])
        a = e.view(torch.int32).add(1).view(torch.float32)
        self.assertExpectedInline(self.message(_osd(e), _osd(a)), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at index (0,): expected nan (bits 0x7fc00000), actual nan (bits 0x7fc00001) (1 of 1 elements differ)""")

    def test_tolerance_with_nan_elsewhere(self):
        e = torch.tensor([float("nan"), 1.0])
        a = torch.tensor([float("nan"), 2.0])
        self.assertExpectedInline(self.message(_osd(e), _osd(a), tolerance=DTYPE_TOLERANCE), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ beyond atol + rtol * max|expected| (rtol=0.0001, atol=1e-06) at index (1,): expected 1.0, actual 2.0 (1 of 2 elements differ; max abs diff nan)""")

    def test_int_values(self):
        e = torch.arange(4)
        a = e.clone()
        a[3] = -1
        self.assertExpectedInline(self.message(_osd(e), _osd(a)), """OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at index (3,): expected 3, actual -1 (1 of 4 elements differ)""")


class TestComparisonSemantics(expecttest.TestCase):
    """What counts as equal: these must hold for the messages above to mean anything."""

    def test_nan_equals_same_nan(self):
        t = torch.tensor([float("nan"), 1.0])
        assert_osd_equal(_osd(t), _osd(t.clone()))
        assert_osd_equal({"lr": float("nan")}, {"lr": float("nan")})

    def test_nan_payloads_differ_bitwise(self):
        a = torch.tensor([float("nan")])
        b = a.view(torch.int32).add(1).view(torch.float32)  # another NaN
        self.assertTrue(torch.isnan(b).all())
        self.assertIsNotNone(first_difference(a, b))
        self.assertIsNone(first_difference(a, b, tolerance=DTYPE_TOLERANCE))

    def test_negative_zero_differs(self):
        self.assertIsNotNone(first_difference(torch.tensor(0.0), torch.tensor(-0.0)))
        self.assertIsNotNone(first_difference(0.0, -0.0))
        self.assertIsNone(first_difference(torch.tensor(0.0), torch.tensor(-0.0), tolerance=DTYPE_TOLERANCE))

    def test_tolerance_covers_computed_floats_in_state_not_hyperparameters(self):
        # LBFGS's prev_loss is a loss's .item(): it rounds with the reduction order.
        e = {"state": {"w": {"prev_loss": 1.0803587191521302e-11}}, "param_groups": [{"lr": 0.1}]}
        a = {"state": {"w": {"prev_loss": 1.078889321631804e-11}}, "param_groups": [{"lr": 0.1}]}
        self.assertIsNone(first_difference(e, a, tolerance=DTYPE_TOLERANCE))
        self.assertIsNotNone(first_difference(e, a))
        far = {"state": {"w": {"prev_loss": 1.5}}, "param_groups": [{"lr": 0.1}]}
        self.assertIn("beyond rtol", first_difference(e, far, tolerance=DTYPE_TOLERANCE).what)
        lr = {"state": e["state"], "param_groups": [{"lr": 0.1 + 1e-12}]}
        self.assertIsNotNone(first_difference(e, lr, tolerance=DTYPE_TOLERANCE))

    def test_tolerance_is_relative_to_the_tensors_scale(self):
        """Normwise: a small element may be off by more than its own rtol, not by
        more than rtol of the tensor's largest entry (see `DTYPE_TOLERANCE`)."""
        e = torch.tensor([1.0, 1e-3], dtype=torch.bfloat16)
        rtol, atol = DTYPE_TOLERANCE[torch.bfloat16]
        within = e.clone()
        within[1] = 1e-3 + 0.9 * (atol + rtol)  # 37x its own value off
        self.assertIsNone(first_difference(e, within, tolerance=DTYPE_TOLERANCE))
        beyond = e.clone()
        beyond[1] = 1e-3 + 1.2 * (atol + rtol)
        self.assertIsNotNone(first_difference(e, beyond, tolerance=DTYPE_TOLERANCE))

    def test_within_tolerance_passes(self):
        e = torch.ones(4)
        assert_osd_equal(_osd(e), _osd(e + 1e-7), tolerance=DTYPE_TOLERANCE)
        with self.assertRaises(OSDMismatch):
            assert_osd_equal(_osd(e), _osd(e + 1e-7))

    def test_tolerance_does_not_apply_to_integer_tensors(self):
        self.assertIsNotNone(first_difference(torch.tensor([1]), torch.tensor([2]), tolerance={torch.int64: (1.0, 1.0)}))

    def test_int_is_not_float_nor_bool(self):
        self.assertIsNotNone(first_difference(1, 1.0))
        self.assertIsNotNone(first_difference(1, True))

    def test_first_difference_in_expected_key_order(self):
        e = {"b": 1, "a": 1}
        a = {"a": 2, "b": 2}
        self.assertEqual(first_difference(e, a).path, "b")

    def test_equal_osds_pass(self):
        osd = _osd(torch.randn(3, 2))
        assert_osd_equal(osd, {"state": {k: dict(v) for k, v in osd["state"].items()}, "param_groups": [dict(g) for g in osd["param_groups"]]})


if __name__ == "__main__":
    expecttest.run_tests()
