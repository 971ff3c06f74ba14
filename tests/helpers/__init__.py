"""Helpers of osdconform's own tests, in one package (``tests/`` is on ``sys.path``).

* `rank_tasks`, `golden_tasks`, `plan_tasks`, `predicate_tasks`: functions that
  rank processes run (`WorldPool` pickles them by reference, so they live in
  importable modules);
* `faulty_backends`: backends with one seeded fault each, which the suites
  must catch; `kit_backends`: backends written from the public adapter kit;
* `suite_runner`: runs the suites as a user would (a nested pytest session, or a
  subprocess); `installed_backend`:
  registers an entry-point backend in a throwaway distribution;
* `scripts`: runs a standalone script (a shipped reproducer, a release floor's
  probe) or pytester's ``python -m pytest`` as its own process, forked from one
  that has imported torch alone (`_script_server`);
* `drawn`: the tags a strategy draws, until the wanted ones have all come;
* `regressions`: scenarios that once failed; `xfail_spaces`: which shipped
  expected failures the core space can match; `shrinking`: what a failing test
  shrinks to.
"""
