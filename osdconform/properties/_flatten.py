"""Property 5, flatten: the flat form is torch's documented key format, and loads the same.

The backend's flat OSD must equal the reference's flattening of its own nested
OSD (keys ``state.<fqn>.<name>`` and ``param_groups.<fqn>.<hp>``, values
unchanged), the reference's unflatten of it must give the nested OSD back,
and loading the flat form and the nested form into two fresh copies must give
equal optimizers.
"""

from __future__ import annotations

import dataclasses

from .. import reference as ref
from ..backends import make_backend
from ..scenario import Scenario
from ._steps import Checks, fresh, gather, source, summary


def flatten(ctx, scenario: Scenario, backend_spec: str, options) -> dict:
    backend = make_backend(backend_spec)
    flat_options = dataclasses.replace(options, flatten=True)
    nested_options = dataclasses.replace(options, flatten=False)
    src = source(ctx, scenario, backend)
    with ctx.phase("get flat"):
        flat = backend.get_optimizer_state(src, flat_options)
    with ctx.phase("get nested"):
        nested = backend.get_optimizer_state(src, nested_options)
    checks = Checks()
    with ctx.phase("check key format"):
        bad = [k for k in flat if not (isinstance(k, str) and k.startswith(("state.", "param_groups.")))]
        if bad:
            checks.fail(f"flat OSD keys outside the documented format: {bad[:5]}")
        checks.equal(ref.flatten(nested), flat, "flatten (reference flattening of the nested get vs flat get)")
        layout = ref.group_layout(src.module, src.optimizers)
        try:
            unflat = ref.unflatten(flat, layout)
        except (ref.FlatKeyError, ref.FlatParameterError) as exc:  # a problem too, after the ones above
            checks.fail(f"flatten (nested get vs unflatten of flat get): {type(exc).__name__}: {exc}")
        else:
            checks.equal(nested, unflat, "flatten (nested get vs unflatten of flat get)")
    from_flat = fresh(ctx, scenario, backend, "build fresh (flat)")
    from_nested = fresh(ctx, scenario, backend, "build fresh (nested)")
    with ctx.phase("set flat"):
        backend.set_optimizer_state(from_flat, flat, flat_options)
    with ctx.phase("set nested"):
        backend.set_optimizer_state(from_nested, nested, nested_options)
    a = gather(ctx, from_nested, "loaded nested")
    b = gather(ctx, from_flat, "loaded flat")
    with ctx.phase("compare"):
        checks.all_equal([(a, b, "flatten (optimizer loaded from nested vs from flat)")])
    checks.done()
    return summary(a)
