"""The reproducer scripts' rank launcher (`osdconform.reporting._launcher`) on its own.

The scripts embed its source; tests/nocover/test_repro.py runs whole scripts.
Here: its helpers, and that what a script embeds is the module's code and
not its placeholders.
"""

from __future__ import annotations

import os

from osdconform.reporting import _launcher, _repro


def test_context_writes_its_phase_where_the_launcher_reads_it(tmp_path):
    scratch = str(tmp_path)
    ctx = _launcher.Context(0, 2, "cpu", scratch)
    assert os.path.isdir(ctx.tmpdir) and ctx.current_phase == "start"
    with ctx.phase("save"):
        pass
    assert ctx.current_phase == "save"
    assert _launcher.phases(scratch, 2) == "rank 0 in 'save', rank 1 not started"


def test_load_step_resolves_module_and_qualname():
    assert _launcher.load_step("osdconform.reporting._launcher:Context.set_phase") is _launcher.Context.set_phase


def test_print_stacks_prints_each_ranks_dump_in_order(tmp_path, capsys):
    for rank in range(2):
        (tmp_path / f"stacks-{rank}").write_text(f"stack of {rank}\n")
    _launcher.print_stacks(str(tmp_path), 2, wait=1.0)
    assert capsys.readouterr().out == "--- rank 0: stacks ---\nstack of 0\n--- rank 1: stacks ---\nstack of 1\n"


def test_scripts_embed_the_launcher_code_but_not_its_placeholders():
    source = _repro.launcher_source()
    assert source.startswith("import argparse\n")
    assert "def rank_main(" in source and "def main(" in source
    assert "BEGIN" not in source and "END of the embedded part" not in source
    for name in ("TEST", "SCENARIO", "EXTRA", "DEFAULT_TIMEOUT"):
        assert f"\n{name} =" not in source, name
    compile(source, "launcher", "exec")
