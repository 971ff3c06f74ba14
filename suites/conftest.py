"""The conformance suites run under osdconform's conformance plugin.

osdconform's pytest entry point is inert (installing osdconform changes no one
else's tests); collecting these suites is what turns the plugin on: the
``osd`` fixture, the Hypothesis profiles (``dev``/``ci``/``ci-full``/...), the
progress line and reports.
"""

pytest_plugins = ["osdconform.plugin.conformance"]
