"""``python -m batchgen`` is the same as the ``batchgen`` command."""

from batchgen.cli import entry

entry()
