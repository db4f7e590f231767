"""Signals in quick succession, or before the run has started, still end the run cleanly."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import batchgen_cmd, env_for, run_cli, tasks_per_job, wait_until, write_manifest

STORM_ROUNDS = 20
STORM_PRODUCTS = tuple(f"p{i:03d}" for i in range(200))  # 400 jobs: more than 20 rounds finish
END_WITHIN_S = 10.0  # "within a few seconds" (loose)


class _Run:
    """``batchgen run`` in a child process; ``started`` is set once it prints its first line
    on stderr (the run's first progress line: validation and job sync are behind it)."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            batchgen_cmd(*args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self.started.set()

    def end(self, timeout_s: float) -> int | None:
        """The exit code, or None if it had not ended within ``timeout_s`` (then it is killed)."""
        try:
            code: int | None = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


@pytest.mark.slow
def test_two_quick_sigints_end_promptly_with_130(tmp_path: Path) -> None:
    """Two SIGINTs 10-50 ms apart, repeated 20 times against a running batch, end every time
    within a few seconds with exit 130 and a state the next run resumes."""
    # Tasks take 3-6 s on the emulator's clock, so 20 short rounds cannot finish 400 jobs
    # however fast this machine is; the service is made fast for the final rerun.
    cfg = EmulatorConfig(
        time_scale=0.05, seed=31, rate_limit_per_s=1000.0, max_processing_per_account=100
    )
    rng = random.Random(31)
    manifest = write_manifest(tmp_path, products=STORM_PRODUCTS)
    jobs = len(STORM_PRODUCTS) * 2 + 1
    args = ("run", str(manifest), "--state", str(tmp_path / "s.db"), "--time-scale", "0.05")
    bad: list[str] = []
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        for round_no in range(STORM_ROUNDS):
            first_s, gap_s = rng.uniform(0.0, 1.2), rng.uniform(0.010, 0.050)
            run = _Run((*args, "--progress-interval", "0.25"), env)
            if not run.started.wait(timeout=30):
                run.end(timeout_s=0)
                pytest.fail(f"round {round_no}: the run never started: {run.stderr}")
            time.sleep(first_s)
            run.proc.send_signal(signal.SIGINT)
            time.sleep(gap_s)
            run.proc.send_signal(signal.SIGINT)
            sent_at = time.monotonic()
            code = run.end(END_WITHIN_S)
            took = time.monotonic() - sent_at
            if code != 130 or "Traceback" in run.stderr:
                tail = " | ".join(line for line in run.stderr.splitlines()[-3:] if line.strip())
                bad.append(
                    f"round {round_no} (SIGINT {first_s:.2f}s into the run, again after "
                    f"{gap_s * 1000:.0f} ms): "
                    + ("hung" if code is None else f"exit {code} after {took:.1f}s")
                    + (", traceback" if "Traceback" in run.stderr else "")
                    + f"; stderr ends {tail!r}"
                )
        emu.set_switches(time_scale=0.002)
        rerun = run_cli(*args, "-q", env=env, timeout=120)
        ledger = emu.ledger()
    assert not bad, f"{len(bad)} of {STORM_ROUNDS} rounds did not end with 130:\n" + "\n".join(bad)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(tasks_per_job(ledger).values()) == [1] * jobs


def _write_huge_manifest(folder: Path) -> Path:
    """20,000 jobs (10 products x 2 aspect ratios x 1,000 takes): seconds to validate and sync."""
    products = ", ".join(f"p{i}" for i in range(10))
    path = folder / "huge.yaml"
    path.write_text(
        f"""version: 1
batch: huge
model: kling-3-0
defaults:
  params: {{mode: std, duration: 5, sound: false}}
matrix:
  product: [{products}]
  aspect_ratio: ["16:9", "9:16"]
prompt: "A cinematic product reveal of a {{product}} on a turntable"
repeat: 1000
output:
  dir: out
"""
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["at-launch", "during-job-sync"])
def test_sigterm_before_the_first_request_exits_4(tmp_path: Path, moment: str) -> None:
    """SIGTERM before a large run has sent anything (0.3 s after launch, or while its 20,000 jobs
    are written to a new state database) ends it with exit 4, not by the signal."""
    manifest = _write_huge_manifest(tmp_path)
    state = tmp_path / "s.db"
    with EmulatorThread(EmulatorConfig(time_scale=0.02, rate_limit_per_s=1000.0)) as emu:
        proc = subprocess.Popen(
            batchgen_cmd("run", str(manifest), "--state", str(state), "-q"),
            env=env_for(emu),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if moment == "during-job-sync":  # the state database appears when validation is done
            assert wait_until(state.exists, timeout_s=30, interval_s=0.005)
        time.sleep(0.3)
        # the preflight's GETs (models, credits) may come first; nothing is uploaded or sent
        requests_before = sum(r["count"] for r in emu.ledger()["requests"] if r["method"] == "POST")
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert requests_before == 0, "the signal should land before the run submits anything"
    assert proc.returncode == 4, f"exit {proc.returncode}; stderr: {err[-1000:]}"
    assert "Traceback" not in err
