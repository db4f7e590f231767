"""Broken manifests: every kind of mistake is reported with its exact place and a teaching message.

Each test writes a small manifest into a temporary working folder (so locations read
``m.yaml:line:column``) and asserts the complete list of problem lines ``load_manifest`` raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_testkit import Write, gif_bytes, png_bytes, problems

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest
from batchgen.outcome import error_exit_code

ALLOWED_TOP = (
    "allowed: version, batch, model, defaults, matrix, prompt, id, exclude, repeat, jobs, rows, "
    "output, limits, schedule"
)
DURATIONS = "3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"


def _png(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png_bytes(8, 8, lambda x, y: (x * 30, y * 30, 90)))


def test_yaml_syntax_error_has_location_and_no_traceback(write: Write) -> None:
    """An unclosed flow list is reported at the offending character, as one plain line."""
    write(
        """
        version: 1
        matrix:
          product: [sneaker, watch
        prompt: "A {product}"
        """
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(Path("m.yaml"))
    assert error_exit_code(info.value) == 2
    assert "Traceback" not in str(info.value)
    assert [str(p) for p in info.value.problems] == [
        "m.yaml:4:7: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at 3:12); check indentation, quotes and brackets "
        "around here"
    ]


def test_tab_indentation_is_a_syntax_error(write: Write) -> None:
    """A tab used for indentation is pointed at, not crashed on."""
    write("version: 1\nmatrix:\n\tproduct: [a]\n")
    assert problems("m.yaml") == [
        "m.yaml:3:1: YAML syntax error: found character '\\t' that cannot start any token; "
        "check indentation, quotes and brackets around here"
    ]


def test_empty_manifest(write: Write) -> None:
    """An empty file says so and where to start from."""
    write("")
    assert problems("m.yaml") == ["m.yaml:1:1: the manifest is empty; start from jobs/demo.yaml"]


def test_missing_manifest_file(workdir: Path) -> None:
    """A manifest path that does not exist is a ManifestError naming the path, not an OSError."""
    assert problems("nope.yaml") == [
        "nope.yaml: manifest file not found; check the path (try: ls jobs/)"
    ]


def test_unknown_top_level_key_suggests_the_right_one(write: Write) -> None:
    """A misspelt top-level key gets a did-you-mean and the allowed keys."""
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        limts: {burst: 2}
        """
    )
    assert problems("m.yaml") == [
        f"m.yaml:3:1: unknown key 'limts' in the manifest; did you mean 'limits'? ({ALLOWED_TOP})"
    ]


def test_unknown_key_in_defaults(write: Write) -> None:
    """Unknown keys are caught in nested sections too, with that section's allowed keys."""
    write(
        """
        matrix: {product: [a]}
        prompt: "A {product}"
        defaults:
          parms: {mode: std}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:3: unknown key 'parms' in defaults; did you mean 'params'? "
        "(allowed: params, extra_params, references)"
    ]


def test_unknown_param_lists_the_model_params(write: Write) -> None:
    """A param kling-3-0 does not have is refused with a suggestion and the full list."""
    write(
        """
        matrix: {product: [a]}
        prompt: "A {product}"
        defaults:
          params: {mode: std, aspect: "16:9"}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:23: unknown param 'aspect'; did you mean 'aspect_ratio'? "
        "(kling-3-0 params: mode, multi_shots, duration, sound, aspect_ratio)"
    ]


def test_invalid_duration_in_a_matrix_axis_points_at_the_value(write: Write) -> None:
    """``duration: 20`` is refused at the exact value, with every allowed duration listed."""
    write(
        """
        matrix:
          product: [a]
          duration: [5, 20]
        prompt: "A {product}"
        """
    )
    assert problems("m.yaml") == [
        f"m.yaml:3:17: duration 20 is not allowed; kling-3-0 accepts duration: {DURATIONS}"
    ]


def test_yaml11_boolean_words_get_a_hint(write: Write) -> None:
    """``sound: yes`` is text under YAML 1.2, so the message says to write true or false."""
    write(
        """
        jobs:
          - id: one
            prompt: "A lamp"
            params: {sound: yes}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:21: sound 'yes' is not allowed; kling-3-0 accepts sound: false, true "
        "(yes/no/on/off are text in YAML 1.2: write true or false)"
    ]


def test_templated_param_is_checked_after_templating(write: Write) -> None:
    """A param filled from an axis is validated per value, reported at the template."""
    write(
        """
        matrix:
          product: [a]
          ratio: ["16:9", "4:3"]
        prompt: "A {product}"
        defaults:
          params: {aspect_ratio: "{ratio}"}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:6:26: aspect_ratio '4:3' is not allowed; "
        "kling-3-0 accepts aspect_ratio: 16:9, 9:16, 1:1"
    ]


def test_prompt_too_long_after_templating(write: Write) -> None:
    """A prompt that passes 2000 characters only once a variable is inserted is caught."""
    write(
        f"""
        jobs:
          - id: long
            vars: {{word: {"x" * 1995}}}
            prompt: "A {{word}} prompt"
          - id: fine
            vars: {{word: short}}
            prompt: "A {{word}} prompt"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:13: the prompt of job 'long' is 2004 characters after templating; "
        "kling-3-0 allows at most 2000: shorten it"
    ]


def test_blank_prompt_is_refused(write: Write) -> None:
    """A prompt of only spaces is empty for the model, and said to be."""
    write(
        """
        jobs:
          - id: one
            prompt: "   "
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:3:13: the prompt of job 'one' is empty; kling-3-0 needs 1 to 2000 characters"
    ]


def test_unknown_template_variable_suggests_the_axis(write: Write) -> None:
    """A misspelt ``{variable}`` names the closest axis and lists the known ones."""
    write(
        """
        matrix:
          product: [sneaker]
        prompt: "A {prodcut} on a table"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:3:9: unknown template variable {prodcut}; did you mean {product}? "
        "(variables here: {product})"
    ]


def test_template_variable_in_a_job_without_vars(write: Write) -> None:
    """An explicit job has no variables unless it says ``vars:``; the message says how."""
    write(
        """
        jobs:
          - id: one
            prompt: "A {product}"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:3:13: unknown template variable {product}: nothing defines it here "
        "(give the job `vars:`, or write {{ and }} for literal braces)"
    ]


def test_duplicate_job_ids(write: Write) -> None:
    """A second job with an id already used is reported with where the first one is."""
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
          - {id: two, prompt: "B"}
          - {id: one, prompt: "C"}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:10: duplicate job id 'one' (the job at 2:10 has it too); "
        "every job needs its own id"
    ]


def test_ids_that_would_write_one_file(write: Write) -> None:
    """Ids that differ only by a trailing '.' or '_' or by letter case name one output file:
    refused at validation, before a credit is spent, with both ids and the file."""
    write(
        """
        jobs:
          - {id: clip, prompt: "A"}
          - {id: clip., prompt: "B"}
          - {id: Clip_, prompt: "C"}
          - {id: clip-, prompt: "D"}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:3:10: job ids 'clip' and 'clip.' would write the same file clip.mp4 (file "
        "names drop a leading or trailing '.' or '_', and macOS and Windows disks ignore "
        "letter case); give one of them another id",
        "m.yaml:4:10: job ids 'clip' and 'Clip_' would write the same file Clip.mp4 (file "
        "names drop a leading or trailing '.' or '_', and macOS and Windows disks ignore "
        "letter case); give one of them another id",
    ]


def test_id_template_that_misses_an_axis(write: Write) -> None:
    """An id template that leaves out an axis gives one id to several jobs: said once per id."""
    write(
        """
        matrix:
          product: [sneaker, watch]
          aspect_ratio: ["16:9", "9:16"]
        prompt: "A {product}"
        id: "{product}"
        """
    )
    message = (
        "is given to more than one job here; make the id template use every matrix axis "
        "(or make the values differ)"
    )
    assert problems("m.yaml") == [
        f"m.yaml:5:5: job id 'sneaker' {message}",
        f"m.yaml:5:5: job id 'watch' {message}",
    ]


def test_invalid_job_id_and_missing_id(write: Write) -> None:
    """Ids name output files: a job needs one, and only safe characters are allowed."""
    write(
        """
        jobs:
          - prompt: "A"
          - id: "my shoe!"
            prompt: "B"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:2:5: this job has no `id`; give it a unique id",
        "m.yaml:3:9: job id 'my shoe!' may contain only letters, digits, '.', '_' and '-' "
        "and must start with a letter or digit (it names the output file)",
    ]


def test_too_many_references(write: Write) -> None:
    """kling-3-0 takes at most two reference images per job."""
    _png("a.png")
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: [a.png, a.png, a.png]
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:17: 3 references given; kling-3-0 takes at most 2 per job"
    ]


def test_missing_reference_file(write: Write, workdir: Path) -> None:
    """A reference that does not exist names the absolute path that was looked for."""
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: [refs/nope.png]
        """
    )
    assert problems("m.yaml") == [
        f"m.yaml:4:18: reference 'refs/nope.png' does not exist (looked for "
        f"{workdir}/refs/nope.png; relative paths start at the manifest's folder)"
    ]


def test_reference_that_is_not_an_image(write: Write) -> None:
    """A text file named .png is refused by its content, not accepted by its name."""
    write("hello\n", "fake.png")
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: [fake.png]
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:18: reference 'fake.png' is not a JPEG, PNG or WebP image (its content has "
        "no image signature; the file name does not matter, the bytes do)"
    ]


def test_reference_over_10_mb(write: Write) -> None:
    """A 10.1 MB image is refused before anything is uploaded: "10 MB" is read as the decimal
    10,000,000 bytes, the smaller reading, which the service may use."""
    with open("big.png", "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(10_100_000)
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: big.png
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:17: reference 'big.png' is 10.1 MB (10,100,000 bytes); kling-3-0 accepts "
        "images of at most 10 MB, which batchgen reads as 10,000,000 bytes (the service may "
        "count a MB as 1,000,000 bytes): shrink or recompress it"
    ]


def test_reference_of_an_unsupported_image_type(write: Write) -> None:
    """A GIF is recognised as a GIF and the accepted types are named."""
    write(gif_bytes(), "anim.gif")
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: [anim.gif]
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:18: reference 'anim.gif' is a GIF image; kling-3-0 accepts JPEG, PNG or "
        "WebP images: convert it"
    ]


def test_reference_url_must_be_http(write: Write) -> None:
    """``ftp://`` is refused while an https URL is accepted without being fetched."""
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            references: [ftp://example.com/a.png, "https://example.com/b.png"]
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:18: reference 'ftp://example.com/a.png' is neither a local file nor an "
        "http(s) URL; write a path relative to the manifest's folder, or an https:// address"
    ]


def test_output_dir_that_is_a_file(write: Write) -> None:
    """``output.dir`` must be a folder that exists or can be created."""
    write("not a folder\n", "taken")
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        output:
          dir: taken/videos
        """
    )
    assert problems("m.yaml") == [
        f"m.yaml:4:8: output.dir 'taken/videos' cannot be created: {Path.cwd()}/taken is a "
        "file, not a folder"
    ]


def test_output_dir_that_cannot_be_written(write: Write) -> None:
    """A folder whose permissions look fine but that takes no files (/proc, even for root) is
    refused at validation, before any task is paid for: a probe file is really written."""
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        output:
          dir: /proc/nope
        """
    )
    (only,) = problems("m.yaml")  # the reason after "/proc:" is the kernel's own words
    assert only.startswith("m.yaml:4:8: output.dir '/proc/nope' cannot be written (/proc: ")
    assert only.endswith("); choose another folder")


def test_wrong_types_of_sections(write: Write) -> None:
    """Each section of the wrong shape is named with the shape it needs."""
    write(
        """
        batch: [demo]
        matrix: [product]
        jobs: {id: one}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:1:8: batch must be text, not a list",
        "m.yaml:2:9: matrix must be a mapping (key: value lines), not a list",
        "m.yaml:3:7: jobs must be a list (- item lines or [a, b]), not a mapping",
    ]


def test_unsupported_model_and_version(write: Write) -> None:
    """Only ``version: 1`` and ``model: kling-3-0`` are accepted."""
    write(
        """
        version: 2
        model: kling-2-1
        jobs:
          - {id: one, prompt: "A"}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:1:10: version 2 is not supported; this batchgen reads `version: 1`",
        "m.yaml:2:8: model 'kling-2-1' is not supported; batchgen runs kling-3-0 "
        "(write `model: kling-3-0` or leave the key out)",
    ]


def test_exclude_with_unknown_axis_and_value(write: Write) -> None:
    """``exclude`` may only name matrix axes and their values."""
    write(
        """
        matrix:
          product: [sneaker, watch]
          aspect_ratio: ["16:9", "9:16"]
        prompt: "A {product}"
        exclude:
          - {product: sneakr}
          - {size: big}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:6:15: 'sneakr' is not a value of matrix axis 'product'; did you mean "
        "'sneaker'? (values: sneaker, watch)",
        "m.yaml:7:6: exclude names 'size', which is not a matrix axis "
        "(axes: product, aspect_ratio)",
    ]


def test_repeat_must_be_a_positive_whole_number(write: Write) -> None:
    """``repeat`` is checked at the manifest level and per job."""
    write(
        """
        repeat: 0
        jobs:
          - {id: one, prompt: "A", repeat: two}
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:1:9: repeat must be a whole number of at least 1, not 0",
        "m.yaml:3:36: repeat must be a whole number of at least 1, not 'two'",
    ]


def test_limits_are_checked(write: Write) -> None:
    """Rates must be positive, counts whole, and keys known."""
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        limits:
          requests_per_second: -1
          burst: 2.5
          max_inflight: 3
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:24: limits.requests_per_second must be a number greater than 0, not -1",
        "m.yaml:5:10: limits.burst must be a whole number of at least 1, not 2.5",
        "m.yaml:6:3: unknown key 'max_inflight' in limits; did you mean 'max_in_flight'? "
        "(allowed: requests_per_second, burst, max_in_flight, max_credits, max_jobs)",
    ]


def test_duplicate_yaml_key(write: Write) -> None:
    """A key written twice would silently lose a value in plain YAML; here it is an error."""
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            prompt: "B"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:5: duplicate key 'prompt' (first at 3:5); YAML would silently keep only the "
        "last one: remove or rename one"
    ]


def test_csv_rows_errors_are_located_by_row(write: Write) -> None:
    """Problems in a CSV are reported as ``file:row``: a typo'd column, a bad value, no prompt."""
    write("id,prompt,duration,aspect-ratio\nr1,A cat,5,\nr2,A dog,20,\n\nr3,,5,\n", "rows.csv")
    write("rows: rows.csv\n")
    assert problems("m.yaml") == [
        "rows.csv:1: column 'aspect-ratio' is not one batchgen reads; did you mean "
        "'aspect_ratio'? (batchgen reads id, prompt, references, repeat, mode, multi_shots, "
        "duration, sound, aspect_ratio; other columns are template variables)",
        f"rows.csv:3: duration '20' is not allowed; kling-3-0 accepts duration: {DURATIONS}",
        "rows.csv:5: this row has no prompt; fill its prompt cell, or give the manifest a "
        "top-level `prompt:` template that uses the row's columns",
    ]


def test_jsonl_rows_errors_are_located_by_line(write: Write, workdir: Path) -> None:
    """Broken JSON, a non-object line, a bad param and a missing reference each get their line."""
    _png("ok.png")
    write(
        '{"id": "j1", "prompt": "A cat", "duration": 5}\n'
        '{"id": "j2", "prompt": "A", \n'
        '["x"]\n'
        '{"id": "j4", "prompt": "B", "sound": "maybe", "references": "ok.png|nope.png"}\n',
        "rows.jsonl",
    )
    write("rows: rows.jsonl\n")
    assert problems("m.yaml") == [
        "rows.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes at "
        "column 29",
        'rows.jsonl:3: each line must be one JSON object, like {"id": ..., "prompt": ...}',
        f"rows.jsonl:4: reference 'nope.png' does not exist (looked for {workdir}/nope.png; "
        "relative paths start at the manifest's folder)",
        "rows.jsonl:4: sound 'maybe' is not allowed; kling-3-0 accepts sound: false, true",
    ]


def test_rows_file_missing_or_of_unknown_kind(write: Write, workdir: Path) -> None:
    """A rows file must exist and be CSV or JSONL."""
    write("rows: [nope.csv, data.txt]\n")
    assert problems("m.yaml") == [
        f"m.yaml:1:8: rows file 'nope.csv' does not exist (looked for {workdir}/nope.csv)",
        "m.yaml:1:18: rows file 'data.txt' must end in .csv or .jsonl",
    ]


def test_manifest_without_jobs(write: Write) -> None:
    """A manifest with no job source says which keys make jobs."""
    write("version: 1\nbatch: demo\n")
    assert problems("m.yaml") == [
        "m.yaml:1:1: the manifest defines no jobs; add a `matrix:` with a `prompt:`, a `jobs:` "
        "list, or `rows:` (a CSV or JSONL file)"
    ]


def test_matrix_without_prompt(write: Write) -> None:
    """A matrix alone cannot make prompts; the message shows the template to add."""
    write("matrix:\n  product: [a]\n")
    assert problems("m.yaml") == [
        "m.yaml:1:1: a matrix needs a top-level `prompt:` template that uses its axes, "
        'e.g. prompt: "A {product} on a turntable"'
    ]


def test_empty_and_unused_axes(write: Write) -> None:
    """An axis with no values, and an axis nothing uses (identical jobs), are both mistakes."""
    write(
        """
        matrix:
          product: []
          color: [red, blue]
          size: [s]
        prompt: "A {product} {size}"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:2:12: matrix axis 'product' has no values; add at least one",
        "m.yaml:3:3: matrix axis 'color' is not used: it is not a param and no template "
        "mentions {color}, so its jobs would be identical; use it in the prompt, or use "
        "`repeat:` for variations",
    ]


def test_every_problem_is_listed_in_file_order(write: Write) -> None:
    """Validation does not stop at the first mistake: all of them come back, top to bottom."""
    write(
        """
        batch: demo
        modle: kling-3-0
        defaults:
          params: {mode: standard, duration: 20}
        matrix:
          product: [sneaker, watch, sneaker]
        prompt: "A {product} on a table"
        jobs:
          - {id: sneaker-x, prompt: ""}
        """
    )
    found = problems("m.yaml")
    assert [line.split(": ", 1)[0] for line in found] == [
        "m.yaml:2:1",
        "m.yaml:4:18",
        "m.yaml:4:38",
        "m.yaml:6:29",
        "m.yaml:9:29",
    ]


def test_a_schedule_window_and_zone_are_checked(write: Write) -> None:
    """A window that is not HH:MM-HH:MM, a time zone the machine does not know, and a schedule
    without a window are each refused at their place."""
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        schedule:
          window: "10pm-6am"
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:4:11: schedule.window: '10pm-6am' is not a window like 22:00-06:00 "
        "(start-end, 24-hour clock)"
    ]
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        schedule:
          window: "22:00-06:00"
          timezone: Mars/Olympus
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:5:13: schedule.timezone 'Mars/Olympus' is not a time zone this machine knows; "
        "write an IANA name like Europe/Berlin or America/New_York"
    ]
    write(
        """
        jobs:
          - {id: one, prompt: "A"}
        schedule:
          timezone: UTC
        """
    )
    assert problems("m.yaml") == ['m.yaml:4:3: schedule needs a `window:` like "22:00-06:00"']


def test_a_matrix_a_typo_away_from_ten_million_jobs_stops_at_once(write: Write) -> None:
    """10,000,000 jobs (a repeat with three zeros too many) stop at validation with the count
    and how to raise the cap, without expanding a single job; a raised cap lets it through
    to expansion (here capped to stay small)."""
    axis = ", ".join(f"p{i}" for i in range(100))
    write(
        f"""
        matrix:
          product: [{axis}]
        prompt: "A {{product}}"
        repeat: 100000
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:1:1: this manifest expands to 10,000,000 jobs (before exclude), more than "
        "limits.max_jobs (100,000); check the matrix and repeat for a typo, or raise "
        "limits.max_jobs if you mean it"
    ]
    write(
        f"""
        matrix:
          product: [{axis}]
        prompt: "A {{product}}"
        repeat: 3
        limits:
          max_jobs: 299
        """
    )
    assert problems("m.yaml")[0].startswith("m.yaml:1:1: this manifest expands to 300 jobs")
