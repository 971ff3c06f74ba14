"""osdconform: a property-based conformance suite for optimizer-state checkpointing.

Where things are:

* `osdconform.reference`  - the reference implementation (the oracle);
* `osdconform.golden`     - the golden twin (the second oracle: trained in one process);
* `osdconform.harness`    - warm worlds of rank processes that run property steps;
* `osdconform.scenario`   - the scenario model and how ranks build it;
* `osdconform.strategies` - Hypothesis strategies that draw scenarios;
* `osdconform.backends`   - the backend protocol and the built-in backends;
* `osdconform.properties` - the property steps the suites run on every rank;
* `osdconform.compare`    - OSD comparison with messages that say where;
* `osdconform.expected_failures` - known defects per backend, with reproducers;
* `osdconform.plugin`     - the pytest plugin: ``--osd-*`` options, the ``osd`` fixture, profiles;
* `osdconform.reporting`  - the JSON report and reproducer scripts;
* `osdconform.cli`        - the ``osdconform`` command.
"""

__version__ = "0.1.0"
