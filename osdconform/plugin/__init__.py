"""osdconform's pytest plugin, inert until a run asks for it.

pytest loads this module (the ``pytest11`` entry point) in every run of every
environment where osdconform is installed, so it must change nothing for
anyone else's tests: it imports neither torch nor the harness, registers no
Hypothesis profile, adds no fixture and prints nothing.  It only declares the
``--osd-*`` options (`_config`), so that they parse anywhere.

The conformance plugin (`osdconform.plugin.conformance`: the ``osd`` fixture,
the ``dev``/``ci``/``ci-full``/``nightly``/``smoke`` profiles, progress,
reports, coverage) is loaded when

* the run collects osdconform's suites: their ``conftest.py`` lists it in
  ``pytest_plugins`` (so do osdconform's own ``tests/``); or
* the run is given any ``--osd-*`` option; or
* a project asks for it itself: ``-p osdconform.plugin.conformance`` or
  ``pytest_plugins = ["osdconform.plugin.conformance"]`` in its conftest.

The other modules: `_profiles` (Hypothesis profiles), `_progress` (the
progress line), `_results` (counting examples across xdist workers),
`_coverage` (``--osd-coverage``).
"""

from __future__ import annotations

import pytest

from ._config import add_options, asked

#: The module that runs the suites; importing it imports torch.
CONFORMANCE_PLUGIN = "osdconform.plugin.conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before Hypothesis's own pytest_configure loads --hypothesis-profile,
    # which may name one of ours (a conftest-loaded conformance plugin has
    # registered them on import already).
    if asked(config) and not config.pluginmanager.has_plugin(CONFORMANCE_PLUGIN):
        from ._profiles import register_profiles

        register_profiles()


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_conformance(config: pytest.Config) -> None:
    # Last: the conformance plugin's own pytest_configure runs as it is
    # registered, and its progress line needs the terminal reporter.
    if asked(config) and not config.pluginmanager.has_plugin(CONFORMANCE_PLUGIN):
        config.pluginmanager.import_plugin(CONFORMANCE_PLUGIN)
