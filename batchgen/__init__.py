"""batchgen: run batches of Rivya kling-3-0 video generations from a YAML manifest."""

__version__ = "0.1.0"
