"""``python -m osdconform.expected_failures``: the same as ``osdconform xfails``."""

import sys

from ._listing import xfails_main

sys.exit(xfails_main())
