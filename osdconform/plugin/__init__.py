"""The pytest plugin: the ``--osd-*`` options, the ``osd`` fixture, Hypothesis profiles.

`_session`: options, the ``osd`` fixture (`Conformance`) and the run's set-up;
`_profiles`: Hypothesis profiles; `_progress`: the progress line;
`_results`: counting examples across xdist workers; `_coverage`: ``--osd-coverage``.
"""
