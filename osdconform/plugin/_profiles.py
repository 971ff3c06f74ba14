"""Hypothesis profiles: ``dev`` (default), ``ci``, ``ci-full``, ``nightly`` and ``smoke``.

Registered when the conformance plugin is imported (or, for a run given an
``--osd-*`` option, by the entry point), before Hypothesis reads
``--hypothesis-profile``; never in a run that did not ask for osdconform.  Every profile inherits from Hypothesis's built-in
``default`` profile, never from whatever is loaded: Hypothesis auto-loads its
own ``ci`` profile (derandomized, no database) when a CI variable is set, and
``nightly`` must not inherit that.

* ``dev``: a quick look while developing a backend (random, small).
* ``ci``: bounded and derandomized (no database), sized so all suites finish
  in minutes on 2 cores; the profile CI runs.  Derandomized is not quite
  deterministic: Hypothesis also draws constants from the source of the local
  (not installed) modules loaded in the process, so which tests ran before in
  the same process can change a test's examples (two oracle bugs were found
  in whole runs that the same test alone never drew).  An XPASS (an
  example covered by an expected failure that passes) fails the test here;
  under the other profiles it is reported at the end of the run but does not
  fail (a nightly job should not go red because a bug got fixed).
* ``ci-full``: ``ci`` with 100 examples and no target phase, for
  ``--osd-space=full``.
* ``nightly``: long and random; keeps a directory database (path from
  ``OSDCONFORM_HYPOTHESIS_DB``, default ``.hypothesis/osdconform-nightly``),
  so a failure found one night is replayed first the next.
* ``smoke``: a first check that an adapter is wired up: 5 examples, no
  shrinking (a failure is reported as found, unshrunk).

None runs Hypothesis's ``explain`` phase (see `PHASES`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

DEFAULT_PROFILE = "dev"
NIGHTLY_DB_ENV = "OSDCONFORM_HYPOTHESIS_DB"
NIGHTLY_DB_DEFAULT = os.path.join(".hypothesis", "osdconform-nightly")
#: Profiles under which an XPASS fails the test.
STRICT_XPASS_PROFILES = frozenset({"ci", "ci-full"})

# Distributed examples take tens of milliseconds to seconds (the first one of a
# world includes spawning it): deadlines would only report noise.
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

#: Every phase but ``explain``: after a failure has shrunk, Hypothesis's explain
#: phase replays it with each part varied to find the lines "always and only
#: run by failing test cases" (hundreds of distributed examples: 709 replays
#: after one failure of test_errors + test_fidelity were seen), and those lines
#: are osdconform's own plumbing (the expected-failure check, the reproducer
#: writer), not the backend's: a cost with nothing for the reader.
PHASES = tuple(p for p in Phase if p is not Phase.explain)


def register_profiles() -> None:
    base = settings.get_profile("default")
    settings.register_profile("dev", parent=base, max_examples=10, phases=PHASES, **_COMMON)
    settings.register_profile(
        "ci", parent=base, max_examples=25, derandomize=True, database=None, phases=PHASES, **_COMMON
    )
    # The whole space (``--osd-space=full``) has far more values to reach
    # than the core one: 25 examples a test leave optimizers and plans out.
    # Without the target phase: from the 50th example Hypothesis hill-climbs
    # `target()` scores (larger models), which made one test run for over
    # 20 minutes; breadth is what this profile is for (nightly keeps it).
    settings.register_profile(
        "ci-full",
        parent=settings.get_profile("ci"),
        max_examples=100,
        phases=[p for p in PHASES if p is not Phase.target],
    )
    settings.register_profile(
        "smoke",
        parent=base,
        max_examples=5,
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        **_COMMON,
    )
    db_path = os.environ.get(NIGHTLY_DB_ENV) or NIGHTLY_DB_DEFAULT
    settings.register_profile(
        "nightly",
        parent=base,
        max_examples=300,
        derandomize=False,
        database=DirectoryBasedExampleDatabase(db_path),
        phases=PHASES,
        **_COMMON,
    )


def profile_for_environment() -> str:
    """The profile to load when none was asked for: ``ci`` under CI, else ``dev``."""
    try:
        from hypothesis._settings import is_in_ci
    except ImportError:  # pragma: no cover - older/newer Hypothesis
        return "ci" if os.environ.get("CI") else DEFAULT_PROFILE
    return "ci" if is_in_ci() else DEFAULT_PROFILE


def current_profile_name() -> str:
    """The name of the Hypothesis profile in effect (after ``--hypothesis-profile``)."""
    getter = getattr(settings, "get_current_profile_name", None)
    if getter is not None:
        return getter()
    return getattr(settings, "_current_profile", None) or "default"  # pragma: no cover - older Hypothesis


def xpass_is_strict() -> bool:
    return current_profile_name() in STRICT_XPASS_PROFILES
