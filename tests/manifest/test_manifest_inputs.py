"""Strict limits, extra params and safely read local inputs (issue 10, items 4, 6, 10 and 11).

Where the documentation is silent the manifest is held to the stricter reading (a prompt counted
in UTF-16 units too, "10 MB" as 10,000,000 bytes), and only regular files are read, never more
than a cap, so a FIFO or a swapped file cannot hang validation or be sent under an old identity.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from manifest_testkit import Write, png_bytes, problems

from batchgen.cli import main
from batchgen.errors import LocalJobError
from batchgen.manifest import load_manifest, manifest_json_schema, manifest_warnings
from batchgen.models import JobSpec
from batchgen.uploads import Uploader, read_local_reference

EMOJI = "\U0001f3ac"  # a clapper board: one character, two UTF-16 units


def _png(path: str) -> None:
    Path(path).write_bytes(png_bytes(8, 8, lambda x, y: (x * 30, y * 30, 90)))


def _one_job(prompt: str = "A", extra: str = "", refs: str = "") -> str:
    return f'jobs:\n  - id: one\n    prompt: "{prompt}"\n{extra}{refs}'


def _body(spec: JobSpec) -> dict[str, Any]:
    """The create request the uploader builds (a job without references needs no service)."""
    uploader = Uploader("b", spec.model, cast(Any, None), cast(Any, None), cast(Any, None))
    return anyio.run(uploader.body_for, spec)


# -- strict limits --------------------------------------------------------------------------


def test_emoji_prompt_over_2000_utf16_units_is_refused(write: Write) -> None:
    """1,200 emoji are 1,200 characters but 2,400 UTF-16 units: refused, and the message says
    which count went over and why."""
    write(_one_job(EMOJI * 1200))
    assert problems("m.yaml") == [
        "m.yaml:3:13: the prompt of job 'one' is 2,400 UTF-16 units long (1,200 characters; "
        "emoji and other characters beyond U+FFFF count twice in UTF-16, which the service may "
        "use); kling-3-0 allows at most 2000: shorten it"
    ]


def test_prompt_of_2000_utf16_units_is_accepted(write: Write) -> None:
    """1,000 emoji (2,000 UTF-16 units) and 2,000 accented letters are both within the limit."""
    write(
        f'jobs:\n  - {{id: a, prompt: "{EMOJI * 1000}"}}\n  - {{id: b, prompt: "{"é" * 2000}"}}\n'
    )
    assert len(load_manifest(Path("m.yaml")).jobs) == 2


# -- extra_params ---------------------------------------------------------------------------


def test_extra_params_are_sent_in_string_form_and_hashed(write: Write) -> None:
    """Defaults and a job's own extra params merge, native values become the documented string
    form, they go into the request's params and into the request hash, with a warning each."""
    write(
        """
        defaults:
          extra_params: {camera_fixed: true, seed: 5}
        jobs:
          - id: one
            prompt: "A"
            extra_params: {seed: 7, style: "{look}"}
            vars: {look: noir}
          - {id: two, prompt: "A"}
        """
    )
    manifest = load_manifest(Path("m.yaml"))
    one, two = manifest.jobs
    assert one.extra_params == (("camera_fixed", "true"), ("seed", "7"), ("style", "noir"))
    body = _body(one)
    assert body["params"]["camera_fixed"] == "true" and body["params"]["seed"] == "7"
    assert body["params"]["style"] == "noir" and body["params"]["mode"] == "pro"
    without = JobSpec(one.id, one.prompt, one.params, where=one.where)
    assert one.request_hash != without.request_hash
    assert JobSpec(two.id, two.prompt, two.params, extra_params=(("seed", "6"),)).request_hash != (
        two.request_hash
    )
    assert manifest_warnings(manifest) == [
        "m.yaml:4:5: extra_params sends 'camera_fixed' unchecked; the service may refuse it",
        "m.yaml:4:5: extra_params sends 'seed' unchecked; the service may refuse it",
        "m.yaml:4:5: extra_params sends 'style' unchecked; the service may refuse it",
    ]


def test_a_job_without_extra_params_keeps_its_hash() -> None:
    """Adding the extra_params feature changes no existing job's request hash (the value was
    computed by the batchgen before it)."""
    spec = JobSpec("one", "A", (("duration", "5"), ("mode", "pro")))
    assert spec.request_hash == "528242525e2ab43cec8435fff7186d206cb2ee5db327afb7812eef0c994db0d4"


def test_extra_params_bad_names_known_params_and_values(write: Write) -> None:
    """A known param, referenceMediaItems, a malformed name and a float value are each refused
    at their place."""
    write(
        """
        jobs:
          - id: one
            prompt: "A"
            extra_params:
              duration: 5
              referenceMediaItems: x
              9lives: a
              ratio: 1.5
        """
    )
    assert problems("m.yaml") == [
        "m.yaml:5:7: extra_params 'duration' is a kling-3-0 param batchgen knows and checks; "
        "set it under `params` instead",
        "m.yaml:6:7: extra_params 'referenceMediaItems' is built by batchgen from `references`; "
        "list the images under `references` instead",
        "m.yaml:7:7: extra_params name '9lives' must be 1 to 64 letters, digits or '_', "
        "starting with a letter",
        "m.yaml:8:14: extra_params 'ratio' 1.5 has no documented string form; write it as text "
        "in quotes (e.g. '1.5') if the service expects that",
    ]


def test_extra_params_in_rows(write: Write) -> None:
    """A CSV column ``extra_params.<name>`` and a JSONL ``extra_params`` object set extra
    params of their row; a known param there is refused at the row."""
    write("id,prompt,extra_params.seed\nr1,A cat,42\n", "rows.csv")
    write('{"id": "j1", "prompt": "A", "extra_params": {"style": "noir", "hd": true}}\n', "r.jsonl")
    write("rows: [rows.csv, r.jsonl]\n")
    jobs = load_manifest(Path("m.yaml")).jobs
    assert [job.extra_params for job in jobs] == [
        (("seed", "42"),),
        (("hd", "true"), ("style", "noir")),
    ]
    write('{"id": "j1", "prompt": "A", "extra_params": {"mode": "std"}}\n', "r.jsonl")
    write("rows: r.jsonl\n")
    assert problems("m.yaml") == [
        "r.jsonl:1: extra_params 'mode' is a kling-3-0 param batchgen knows and checks; "
        "set it under `params` instead"
    ]


def test_schema_describes_extra_params() -> None:
    """``batchgen schema`` offers extra_params wherever params may be given."""
    schema = manifest_json_schema()
    assert schema["properties"]["defaults"]["properties"]["extra_params"] == {
        "$ref": "#/definitions/extra_params"
    }
    job = schema["definitions"]["job"]["properties"]
    assert job["extra_params"] == {"$ref": "#/definitions/extra_params"}
    names = schema["definitions"]["extra_params"]["propertyNames"]
    assert names["pattern"] == "^[A-Za-z][A-Za-z0-9_]{0,63}$"
    assert "duration" in names["not"]["enum"] and "referenceMediaItems" in names["not"]["enum"]


def test_validate_prints_the_extra_params_warning(write: Write) -> None:
    """``batchgen validate`` names each extra param it will send unchecked."""
    write(_one_job(extra="    extra_params: {seed: 5}\n"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["validate", "m.yaml"]) == 0
    assert "extra_params sends 'seed' unchecked; the service may refuse it" in err.getvalue()


# -- local inputs are read safely -----------------------------------------------------------


def _validate_in_a_process(path: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "validate", path],
        capture_output=True,
        text=True,
        timeout=30,  # a hang fails the test instead of stalling the suite
    )
    return done.returncode, done.stderr


def test_fifo_manifest_does_not_hang_validate(workdir: Path) -> None:
    """A FIFO given as the manifest is refused at once (exit 2), never read from (a blocking
    read would wait for a writer forever: the subprocess timeout would fail the test)."""
    os.mkfifo("m.yaml")
    code, err = _validate_in_a_process("m.yaml")
    assert code == 2, err
    assert "m.yaml: the manifest is a FIFO (named pipe), not a regular file" in err


def test_fifo_rows_file_does_not_hang_validate(write: Write) -> None:
    """A FIFO named as a rows file is a located problem (exit 2), not a hang."""
    os.mkfifo("rows.csv")
    write("rows: rows.csv\n")
    code, err = _validate_in_a_process("m.yaml")
    assert code == 2, err
    assert (
        "m.yaml:1:7: rows file 'rows.csv' is a FIFO (named pipe), not a regular file; "
        "name a .csv or .jsonl file"
    ) in err


def test_fifo_and_device_references_say_what_they_are(write: Write) -> None:
    """A FIFO or a device as a reference is named for what it is, not called a folder."""
    os.mkfifo("pipe.png")
    write(_one_job(refs="    references: [pipe.png, /dev/null]\n"))
    assert problems("m.yaml") == [
        "m.yaml:4:18: reference 'pipe.png' is a FIFO (named pipe), not a regular file; "
        "name an image file",
        "m.yaml:4:28: reference '/dev/null' is a character device, not a regular file; "
        "name an image file",
    ]


def _validated_reference(write: Write) -> Any:
    _png("ref.png")
    write(_one_job(refs="    references: ref.png\n"))
    (job,) = load_manifest(Path("m.yaml")).jobs
    return job.references[0]


def test_reference_grown_after_validation_is_refused(write: Write) -> None:
    """A reference replaced after validation by a file over the limit fails its job with
    ``reference_changed``; at most the limit + 1 bytes are read."""
    ref = _validated_reference(write)
    with open("ref.png", "r+b") as handle:
        handle.truncate(10_000_001)
    with pytest.raises(LocalJobError) as info:
        read_local_reference(ref)
    assert info.value.code == "reference_changed"
    assert str(info.value) == (
        f"{ref.source} changed after validation: it now is 10,000,001 bytes (at most "
        "10,000,000 bytes are sent); run the same command again to validate it anew"
    )


def test_reference_with_other_content_or_a_fifo_is_refused(write: Write) -> None:
    """Same size but other bytes, or a FIFO in its place: never sent under the old identity."""
    ref = _validated_reference(write)
    assert read_local_reference(ref) == Path("ref.png").read_bytes()
    data = bytearray(Path("ref.png").read_bytes())
    data[-20] ^= 0xFF
    Path("ref.png").write_bytes(bytes(data))
    with pytest.raises(LocalJobError, match="its content hash differs") as info:
        read_local_reference(ref)
    assert info.value.code == "reference_changed"
    Path("ref.png").unlink()
    os.mkfifo("ref.png")
    with pytest.raises(LocalJobError, match="now is a FIFO") as info:
        read_local_reference(ref)
    assert info.value.code == "reference_changed"


# -- the CLI refuses before anything is sent ------------------------------------------------


@pytest.fixture(params=["emoji", "big_png"])
def refused_manifest(request: pytest.FixtureRequest, write: Write) -> str:
    """A manifest refused for a strict limit: an emoji prompt, or a 10.1 MB PNG."""
    if request.param == "emoji":
        write(_one_job(EMOJI * 1200))
        return "2,400 UTF-16 units"
    with open("big.png", "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(10_100_000)
    write(_one_job(refs="    references: big.png\n"))
    return "10.1 MB (10,100,000 bytes)"


@pytest.mark.parametrize("command", [["validate"], ["run", "--emulator", "-q"]])
def test_cli_refuses_with_exit_2_and_sends_nothing(
    refused_manifest: str, command: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``validate`` and ``run --emulator`` exit 2 naming the limit; the emulator is never
    started and no state is written."""
    import batchgen.commands

    def never(*_: object) -> None:
        raise AssertionError("the emulator was started for a manifest that does not validate")

    monkeypatch.setattr(batchgen.commands, "_start_emulator", never)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([command[0], "m.yaml", *command[1:]])
    assert code == 2, err.getvalue()
    assert refused_manifest in err.getvalue()
    assert not (workdir / "state").exists()
    assert not list(workdir.rglob("*.db"))
