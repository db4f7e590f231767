"""The manifest language: YAML (+ CSV/JSONL rows) -> a validated ``Manifest``. No network, no DB.

``load_manifest(path)`` does everything and raises ``ManifestError`` listing every problem with
its ``file:line:column`` (or ``file:row``). ``expand(doc)`` is the pure expansion step, and
``manifest_json_schema()`` the JSON Schema editors use for completion; ``manifest_warnings()``
the lines to show before a run (extra params sent unchecked). See docs/manifest.md.
"""

from batchgen.manifest.check import manifest_warnings
from batchgen.manifest.expand import Expansion, expand
from batchgen.manifest.load import load_manifest
from batchgen.manifest.schema import manifest_json_schema

__all__ = ["Expansion", "expand", "load_manifest", "manifest_json_schema", "manifest_warnings"]
