"""``python -m osdconform``: the same command line as the ``osdconform`` script."""

import sys

from .cli import main

sys.exit(main())
