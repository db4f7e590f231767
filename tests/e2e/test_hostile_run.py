"""A whole run against a hostile server, and a key in the wrong variable: the key reaches no
stored or printed byte; odd statuses and numbers fail one job each, never the run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .helpers import batchgen_cmd
from .hostile_api import HostileApi

SCRIPTS = ("echo", "expired", "cancelled", "limbo", "absurd", "negative", "plain")


def _manifest(folder: Path, scripts: tuple[str, ...] = SCRIPTS) -> Path:
    jobs = "".join(f'  - id: {s}\n    prompt: "{s} a quiet lake"\n' for s in scripts)
    text = (
        "version: 1\nbatch: h\nmodel: kling-3-0\n"
        "defaults:\n  params: {mode: std, duration: 5}\n"
        f"jobs:\n{jobs}output:\n  dir: out\nlimits:\n  requests_per_second: 100\n"
    )
    path = folder / "m.yaml"
    path.write_text(text)
    return path


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RIVYA_")}
    return subprocess.run(
        batchgen_cmd(*args),
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _secret_forms(key: str) -> list[str]:
    return [key, key.removeprefix("rvya_sk_")]


def _stored_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_a_server_that_echoes_the_key_gets_it_stored_or_printed_nowhere(tmp_path: Path) -> None:
    """The server puts the key in a task's error message, its status text and an unknown
    field. The run, its log at -vv, the state database, and a later ``report``/``status``
    (a process that never learns the key) show none of it; the odd statuses end their jobs
    as failed with the status's name."""
    manifest = _manifest(tmp_path)
    with HostileApi() as api:
        env = {"RIVYA_BASE_URL": api.base_url, "RIVYA_API_KEY": api.key}
        run = _run("-vv", "run", str(manifest), "--time-scale", "0.01", env=env, cwd=tmp_path)
    report = _run("report", str(manifest), "--format", "json", env={}, cwd=tmp_path)
    table = _run("report", str(manifest), env={}, cwd=tmp_path)
    status = _run("status", str(manifest), env={}, cwd=tmp_path)
    printed = run.stdout + run.stderr + report.stdout + table.stdout + status.stdout
    assert "Traceback" not in printed
    for secret in _secret_forms(api.key):
        assert secret not in printed
        assert secret.encode() not in _stored_bytes(tmp_path), "the key reached a file"
    assert run.returncode == 3, run.stderr
    jobs = {j["id"]: j for j in json.loads(report.stdout)["jobs"]}
    assert {j: jobs[j]["status"] for j in SCRIPTS} == dict.fromkeys(SCRIPTS, "failed")
    assert jobs["expired"]["error"]["code"] == "expired"
    assert jobs["cancelled"]["error"]["code"] == "cancelled"
    for absurd in ("absurd", "negative"):  # one job fails with a clear code, the run goes on
        assert jobs[absurd]["error"]["code"] == "bad_answer", jobs[absurd]
    assert "<redacted>" in jobs["echo"]["error"]["message"]
    assert "paused_for_review" in run.stderr  # an unknown status is named once
    assert api.polls[jobs["limbo"]["task_id"]] == 4  # polled through it, then it failed


def test_a_key_in_the_base_url_variable_is_never_echoed(tmp_path: Path) -> None:
    """The two variables swapped, or the key written into the URL: refused before anything
    is sent, with a message that says what to do and shows no part of the key."""
    manifest = _manifest(tmp_path, ("plain",))
    key = HostileApi.key
    cases = [
        {"RIVYA_BASE_URL": key, "RIVYA_API_KEY": "https://rivya.ai"},
        {"RIVYA_BASE_URL": key},
        {"RIVYA_BASE_URL": f"https://{key}@rivya.ai", "RIVYA_API_KEY": key},
        {"RIVYA_BASE_URL": f"https://user:{key}@rivya.ai"},
        {"RIVYA_BASE_URL": f"ftp://{key}", "RIVYA_API_KEY": "x" * 20},
    ]
    for env in cases:
        for verbose in ((), ("-vv",)):
            result = _run(*verbose, "run", str(manifest), env=env, cwd=tmp_path)
            printed = result.stdout + result.stderr
            assert result.returncode == 1, (env, printed)
            assert "RIVYA_" in printed
            assert verbose or "Traceback" not in printed  # -v adds the traceback: no key there
            for secret in _secret_forms(key):
                assert secret not in printed, (env, printed)
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
