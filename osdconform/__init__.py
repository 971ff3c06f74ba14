"""osdconform: a property-based conformance suite for optimizer-state checkpointing.

Where things are:

* `osdconform.reference`  - the reference implementation (the oracle);
* `osdconform.harness`    - warm worlds of rank processes that run property steps;
* `osdconform.scenario`   - the scenario model and how ranks build it;
* `osdconform.strategies` - Hypothesis strategies that draw scenarios;
* `osdconform.backends`   - the backend protocol and the built-in backends;
* `osdconform.properties` - the property steps the suites run on every rank;
* `osdconform.compare`    - OSD comparison with messages that say where;
* `osdconform.pytest_plugin` - the ``--osd-*`` options and the ``osd`` fixture.
"""

__version__ = "0.1.0"
