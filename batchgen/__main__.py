"""``python -m batchgen`` is the same as the ``batchgen`` command."""

import sys

from batchgen.cli import main

sys.exit(main())
