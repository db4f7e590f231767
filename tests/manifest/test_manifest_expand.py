"""Expansion: matrix, exclude, repeat, explicit jobs, rows, defaults and templates."""

from __future__ import annotations

from pathlib import Path

from manifest_testkit import Write, png_bytes

from batchgen.manifest import expand, load_manifest
from batchgen.manifest.doc import Axis, JobEntry, ManifestDoc, Val
from batchgen.models import Location

REPO = Path(__file__).resolve().parents[2]
DEMO_IDS = [
    "sneaker-16x9",
    "sneaker-9x16",
    "wristwatch-16x9",
    "wristwatch-9x16",
    "headphones-16x9",
    "headphones-9x16",
    "hero",
]


def _ids(path: str | Path) -> list[str]:
    return [job.id for job in load_manifest(Path(path)).jobs]


def test_demo_manifest_loads_exactly_as_written() -> None:
    """The issue's minimal form gives 6 matrix jobs and the hero with documented-string params."""
    manifest = load_manifest(REPO / "jobs" / "demo.yaml")
    assert [job.id for job in manifest.jobs] == DEMO_IDS
    assert manifest.batch == "demo"
    assert manifest.output_dir == REPO / "jobs" / "out" / "demo"
    assert (manifest.limits.rate_per_s, manifest.limits.max_in_flight) == (5.0, 20)
    first, hero = manifest.jobs[0], manifest.jobs[-1]
    assert first.prompt == (
        "A cinematic product reveal of a sneaker on a turntable, smooth camera movement"
    )
    assert first.params == (
        ("aspect_ratio", "16:9"),
        ("duration", "5"),
        ("mode", "std"),
        ("multi_shots", "false"),
        ("sound", "false"),
    )
    assert hero.params_dict == {
        "aspect_ratio": "16:9",
        "duration": "10",
        "mode": "pro",
        "multi_shots": "false",
        "sound": "false",
    }
    (ref,) = hero.references
    assert ref.source == str(REPO / "jobs" / "refs" / "hero.png")
    assert (ref.mime_type, ref.size_bytes) == ("image/png", 12777)
    assert ref.sha256 is not None and len(ref.sha256) == 64


def test_default_ids_do_not_depend_on_axis_order(write: Write) -> None:
    """Axis order changes the job order but not the ids: other axes first, then params."""
    write("matrix:\n  aspect_ratio: ['16:9', '1:1']\n  product: [Café Noir]\nprompt: '{product}'\n")
    assert _ids("m.yaml") == ["cafe-noir-16x9", "cafe-noir-1x1"]


def test_unquoted_ratio_stays_text(write: Write) -> None:
    """``16:9`` without quotes is the text 16:9 (YAML 1.2), not the base-60 number 969."""
    write("jobs:\n  - {id: a, prompt: p, params: {aspect_ratio: 9:16}}\n")
    (job,) = load_manifest(Path("m.yaml")).jobs
    assert job.params_dict["aspect_ratio"] == "9:16"


def test_exclude_skips_partial_combinations(write: Write) -> None:
    """An exclude entry skips every combination matching all its axes; lists match any value."""
    write(
        """
        matrix:
          product: [mug, lamp]
          duration: [5, 10, 15]
        prompt: "A {product}"
        exclude:
          - {product: lamp, duration: [10, 15]}
          - {duration: 5, product: mug}
        """
    )
    assert _ids("m.yaml") == ["mug-10", "mug-15", "lamp-5"]


def test_repeat_per_manifest_and_per_job(write: Write) -> None:
    """``repeat`` gives every job N numbered variations; a job's own ``repeat`` wins."""
    write(
        """
        repeat: 2
        matrix: {product: [mug]}
        prompt: "A {product}"
        jobs:
          - {id: once, prompt: "B", repeat: 1}
          - {id: thrice, prompt: "C", repeat: 3}
        """
    )
    assert _ids("m.yaml") == ["mug-1", "mug-2", "once", "thrice-1", "thrice-2", "thrice-3"]


def test_job_params_override_defaults_key_by_key(write: Write) -> None:
    """A job's params override the defaults one key at a time; unset ones take the contract's."""
    write(
        """
        defaults:
          params: {mode: std, duration: 8}
        jobs:
          - {id: a, prompt: p, params: {duration: 12, sound: true}}
        """
    )
    (job,) = load_manifest(Path("m.yaml")).jobs
    assert job.params_dict == {
        "aspect_ratio": "16:9",
        "duration": "12",
        "mode": "std",
        "multi_shots": "false",
        "sound": "true",
    }


def test_job_references_replace_the_defaults(write: Write) -> None:
    """``references`` of a job replace the default list as a whole; ``[]`` means none."""
    write(png_bytes(4, 4, lambda x, y: (1, 2, 3)), "a.png")
    write(png_bytes(4, 4, lambda x, y: (9, 9, 9)), "b.png")
    write(
        """
        defaults:
          references: [a.png]
        jobs:
          - {id: inherit, prompt: p}
          - {id: other, prompt: p, references: [b.png]}
          - {id: none, prompt: p, references: []}
        """
    )
    jobs = load_manifest(Path("m.yaml")).jobs
    assert [[r.name for r in job.references] for job in jobs] == [["a.png"], ["b.png"], []]


def test_id_template_slugifies_inserted_values(write: Write) -> None:
    """Values put into an id template are made id-safe; the literal parts stay as written."""
    write(
        """
        matrix:
          product: [Red Mug]
          aspect_ratio: ["9:16"]
        prompt: "A {product}"
        id: "Shot_{product}.{aspect_ratio}"
        """
    )
    assert _ids("m.yaml") == ["Shot_red-mug.9x16"]


def test_literal_braces_and_plain_braces(write: Write) -> None:
    """``{{`` and ``}}`` are literal braces, and a brace around non-names is kept as written."""
    write("jobs:\n  - {id: a, prompt: 'Sign: {{OPEN}} and { CLOSED }'}\n")
    (job,) = load_manifest(Path("m.yaml")).jobs
    assert job.prompt == "Sign: {OPEN} and { CLOSED }"


def test_job_vars_fill_the_shared_prompt(write: Write) -> None:
    """An explicit job without a prompt uses the top-level template with its ``vars``."""
    write(
        """
        prompt: "A {product} on a table"
        jobs:
          - {id: a, vars: {product: vase}}
        """
    )
    (job,) = load_manifest(Path("m.yaml")).jobs
    assert job.prompt == "A vase on a table"


def test_merge_keys_and_extension_keys(write: Write) -> None:
    """YAML anchors kept under ``x-`` keys can be merged with ``<<``; local keys win."""
    write(
        """
        x-base: &base {mode: std, duration: 8}
        jobs:
          - id: a
            prompt: p
            params:
              <<: *base
              duration: 10
        """
    )
    (job,) = load_manifest(Path("m.yaml")).jobs
    assert (job.params_dict["mode"], job.params_dict["duration"]) == ("std", "10")


def test_csv_rows_with_variables_and_default_ids(write: Write) -> None:
    """CSV columns that are not params are template variables; rows without id get stem-n."""
    write(png_bytes(4, 4, lambda x, y: (1, 2, 3)), "refs/a.png")
    write(png_bytes(4, 4, lambda x, y: (3, 2, 1)), "refs/b.png")
    write(
        "product,duration,references,prompt\n"
        "mug,8,refs/a.png | refs/b.png,\n"
        'lamp,,,"A lamp, lit"\n',
        "data/products.csv",
    )
    write(
        """
        prompt: "A {product} spinning"
        rows: data/products.csv
        """
    )
    jobs = load_manifest(Path("m.yaml")).jobs
    assert [(j.id, j.prompt, j.params_dict["duration"]) for j in jobs] == [
        ("products-1", "A mug spinning", "8"),
        ("products-2", "A lamp, lit", "5"),
    ]
    assert [r.name for r in jobs[0].references] == ["a.png", "b.png"]
    assert jobs[0].where is not None and str(jobs[0].where) == "data/products.csv:2"


def test_jsonl_rows_accept_native_values(write: Write) -> None:
    """JSONL rows may use native JSON values (numbers, booleans, lists of references)."""
    write(png_bytes(4, 4, lambda x, y: (1, 2, 3)), "a.png")
    write(
        '{"id": "j1", "prompt": "A", "duration": 12, "sound": true, "references": ["a.png"]}\n'
        "\n"
        '{"id": "j2", "prompt": "B", "repeat": 2}\n',
        "rows.jsonl",
    )
    write("rows: rows.jsonl\n")
    jobs = load_manifest(Path("m.yaml")).jobs
    assert [j.id for j in jobs] == ["j1", "j2-1", "j2-2"]
    assert (jobs[0].params_dict["duration"], jobs[0].params_dict["sound"]) == ("12", "true")


def test_paths_resolve_against_the_manifest_folder(write: Write, workdir: Path) -> None:
    """References, rows and output.dir are relative to the manifest, not the working folder."""
    write(png_bytes(4, 4, lambda x, y: (1, 2, 3)), "proj/refs/a.png")
    write("id,prompt,references\nr,A,refs/a.png\n", "proj/rows.csv")
    write("rows: rows.csv\noutput: {dir: videos}\n", "proj/m.yaml")
    manifest = load_manifest(Path("proj/m.yaml"))
    assert manifest.output_dir == workdir / "proj" / "videos"
    assert manifest.jobs[0].references[0].source == str(workdir / "proj" / "refs" / "a.png")


def test_expand_is_pure_over_parsed_data() -> None:
    """``expand`` works on a hand-built document whose folder does not even exist."""
    here = Location("x.yaml", 1, 1)
    doc = ManifestDoc(
        file="x.yaml",
        base_dir=Path("/nonexistent"),
        batch=Val("b", here),
        prompt=Val("A {product}", here),
        axes=(Axis("product", here, (Val("mug", here), Val("lamp", here))),),
        matrix_where=here,
        repeat=Val(2, here),
        jobs=(JobEntry(here, id=Val("solo", here), prompt=Val("S", here)),),
    )
    expansion = expand(doc)
    assert expansion.problems == ()
    assert [d.id for d in expansion.drafts] == [
        "mug-1",
        "mug-2",
        "lamp-1",
        "lamp-2",
        "solo-1",
        "solo-2",
    ]
    assert expand(doc) == expansion
