"""The peer batchgen is measured against: the OpenAI cookbook's parallel processor, adapted.

See ``processor.py`` for where the original lives, its licence and exactly what was adapted.
Run it as ``python -m bench.peer --help``.
"""
