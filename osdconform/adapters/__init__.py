"""Framework adapters: osdconform run against checkpointing code nobody here wrote.

One module per framework, each an optional extra (``pip install
'osdconform[deepspeed]'``) registered by name in the ``osdconform.backends``
entry-point group (pyproject.toml), exactly as a third party's adapter is.
Each is written only against the public adapter kit (`osdconform.backends`),
so it is also the example a third party copies:

* it imports its framework lazily, inside its methods, and names it in
  ``requires`` ({module: install line}), so ``osdconform backends`` lists it
  and ``--osd-backend`` refuses it with the install line where it is missing;
* it declares honestly what it supports (`Capabilities`: forms, plans, world
  sizes, ``gpu_plans``);
* a framework that wraps the model and optimizers or runs the training step
  itself does so in the kit's `Framework` hooks, ``prepare`` and ``train``.

Their recorded defects are in ``osdconform/expected_failures/<name>.txt``
like the built-ins', with reproducers that use the framework alone.
"""
