"""One RunConfig, resolved in one place: flag > environment > manifest > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.config import EmulatorChoice, RunSettings, resolve_run_config
from batchgen.errors import ConfigError
from batchgen.models import Limits, Manifest

MANIFEST = Manifest(
    path=Path("/w/jobs/m.yaml"),
    batch="b",
    jobs=(),
    output_dir=Path("out"),
    limits=Limits(rate_per_s=3.0, burst=2, max_in_flight=7),
)
KEY = "rvya_sk_test_0123456789"


def env(url: str) -> dict[str, str]:
    return {"RIVYA_BASE_URL": url, "RIVYA_API_KEY": KEY}


def test_flags_override_the_manifest_which_overrides_defaults() -> None:
    """A flag wins over the manifest's limits; what no one set keeps the manifest's value."""
    config = resolve_run_config(
        MANIFEST, RunSettings(rate_per_s=9.0, env=env("https://api.example")), cwd=Path("/w")
    )
    assert config.limits == Limits(rate_per_s=9.0, burst=2, max_in_flight=7)
    assert config.state_path == Path("/w/jobs/state/b.db"), "beside the manifest, not the cwd"
    assert MANIFEST.limits.rate_per_s == 3.0, "the manifest stays what the file said"


@pytest.mark.parametrize(
    ("asked", "url"),
    [
        (0.001, "https://api.example"),
        (0.5, "https://api.example"),
        (0.01, "https://127.evil.example"),
    ],
)
def test_a_real_service_is_never_polled_faster_than_its_guidance(asked: float, url: str) -> None:
    """--time-scale below 1 against a host that is not loopback (a name that merely starts
    with "127." included) is ignored, with a note."""
    config = resolve_run_config(MANIFEST, RunSettings(time_scale=asked, env=env(url)))
    assert config.poll.time_scale == 1.0
    assert config.notes and "ignored" in config.notes[0]


def test_a_rehearsal_on_loopback_may_poll_faster() -> None:
    """A standalone emulator on loopback gets the time scale asked for; so may slower polls."""
    local = resolve_run_config(
        MANIFEST, RunSettings(time_scale=0.02, env=env("http://127.0.0.1:8787"))
    )
    assert (local.poll.time_scale, local.notes) == (0.02, ())
    slower = resolve_run_config(
        MANIFEST, RunSettings(time_scale=3.0, env=env("https://api.example"))
    )
    assert slower.poll.time_scale == 3.0


def test_the_in_process_emulator_shares_its_time_scale_with_the_polls() -> None:
    """With --emulator the flag scales the emulator's time model and the polls alike."""
    config = resolve_run_config(MANIFEST, RunSettings(emulator=EmulatorChoice(), time_scale=0.1))
    assert config.emulator is not None and config.emulator.time_scale == 0.1
    assert config.poll.time_scale == 0.1 and config.connection is None
    default = resolve_run_config(MANIFEST, RunSettings(emulator=EmulatorChoice()))
    assert default.poll.time_scale == default.emulator.time_scale == 0.02  # type: ignore[union-attr]


def test_a_missing_key_is_a_config_error_before_anything_else() -> None:
    """No key and no emulator: one clear error naming the variable."""
    with pytest.raises(ConfigError, match="RIVYA_API_KEY"):
        resolve_run_config(MANIFEST, RunSettings(env={}))
