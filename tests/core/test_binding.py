"""Which service and account a state belongs to: identities, fingerprints, and the defaults that
keep a rehearsal's state and videos apart from a real run's (``batchgen.binding``, ``config``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.binding import (
    EMULATOR_SERVICE,
    META_ACCOUNT,
    META_SALT,
    META_SERVICE,
    Target,
    account_fingerprint,
    check_binding,
    orphaned_videos,
    service_identity,
    sharing_warnings,
)
from batchgen.config import EmulatorChoice, RunSettings, resolve_run_config
from batchgen.errors import StateError
from batchgen.models import Manifest
from batchgen.store import StateStore

KEY = "rvya_sk_live_0123456789abcdef"
STATE = Path("/w/state/b.db")


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("https://Rivya.AI", "https://rivya.ai"),
        ("https://rivya.ai:443/", "https://rivya.ai"),
        ("https://api.example:8443", "https://api.example:8443"),
        ("http://127.0.0.1:54321", "http://127.0.0.1"),  # a local emulator's port changes
        ("http://localhost:8787", "http://localhost"),
        ("http://[::1]:9000", "http://[::1]"),
        (None, EMULATOR_SERVICE),
    ],
)
def test_the_service_is_the_origin_without_a_loopback_port(url: str | None, service: str) -> None:
    assert service_identity(url) == service


def test_the_fingerprint_tells_keys_apart_and_never_holds_the_key() -> None:
    """16 hex characters of an HMAC: not the key, no part of it, and salted per state."""
    one = account_fingerprint("salt-a", KEY)
    assert len(one) == 16 and int(one, 16) >= 0
    assert one not in KEY and KEY not in one and KEY[-8:] not in one
    assert one == account_fingerprint("salt-a", KEY)
    assert one != account_fingerprint("salt-a", KEY + "x")
    assert one != account_fingerprint("salt-b", KEY), "the salt makes it per state"


def test_a_state_without_a_binding_is_adopted() -> None:
    updates = check_binding({}, Target("https://rivya.ai", KEY), state_path=STATE)
    assert updates[META_SERVICE] == "https://rivya.ai"
    assert updates[META_ACCOUNT] == account_fingerprint(updates[META_SALT], KEY)
    assert KEY not in repr(updates) and KEY not in repr(Target("s", KEY))
    again = check_binding(updates, Target("https://rivya.ai", KEY), state_path=STATE)
    assert again == updates, "the same service and key: nothing changes"


def test_another_service_is_refused_naming_both() -> None:
    meta = check_binding({}, Target(EMULATOR_SERVICE, KEY), state_path=STATE)
    with pytest.raises(StateError) as caught:
        check_binding(meta, Target("https://rivya.ai", KEY), state_path=STATE, same_account=True)
    text = str(caught.value)
    assert EMULATOR_SERVICE in text and "https://rivya.ai" in text
    assert "--state FILE" in text and "output" in text


def test_another_key_is_refused_unless_it_is_the_same_account() -> None:
    meta = check_binding({}, Target("https://rivya.ai", KEY), state_path=STATE)
    other = KEY.replace("0123", "9999")
    with pytest.raises(StateError, match="--same-account") as caught:
        check_binding(meta, Target("https://rivya.ai", other), state_path=STATE)
    assert KEY not in str(caught.value) and other not in str(caught.value)
    rebound = check_binding(
        meta, Target("https://rivya.ai", other), state_path=STATE, same_account=True
    )
    assert rebound[META_SALT] == meta[META_SALT]
    assert rebound[META_ACCOUNT] == account_fingerprint(meta[META_SALT], other)


def test_sharing_warnings(tmp_path: Path) -> None:
    """Another batch in the folder, another existing manifest of this batch, or a state last
    run from another existing manifest: one line each. A manifest that is gone is no warning."""
    mine, other, gone = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "gone.yaml"
    mine.touch()
    other.touch()
    out = tmp_path / "out"

    def warn(found: dict[str, str] | None, meta: dict[str, str]) -> list[str]:
        return sharing_warnings(found, meta, batch="b", manifest=mine, output_dir=out)

    assert warn(None, {}) == []
    assert warn({"batch": "b", "manifest": str(mine)}, {}) == []
    assert warn({"batch": "b", "manifest": str(gone)}, {}) == []
    [line] = warn({"batch": "b", "manifest": str(other)}, {})
    assert str(other) in line
    [line] = warn({"batch": "z", "manifest": str(gone)}, {})
    assert "'z'" in line
    [line] = warn(None, {"manifest": str(other)})
    assert str(other) in line


def test_orphaned_videos_need_this_batch_and_a_video() -> None:
    assert orphaned_videos({"batch": "b"}, "b", 1)
    assert not orphaned_videos({"batch": "b"}, "b", 0)
    assert not orphaned_videos({"batch": "z"}, "b", 3)
    assert not orphaned_videos(None, "b", 3)


def manifest_in(folder: Path) -> Manifest:
    return Manifest(path=folder / "m.yaml", batch="b", jobs=(), output_dir=folder / "out" / "b")


def test_a_rehearsal_keeps_its_own_state_and_output(tmp_path: Path) -> None:
    manifest = manifest_in(tmp_path / "jobs")
    rehearsal = resolve_run_config(manifest, RunSettings(emulator=EmulatorChoice()))
    assert rehearsal.state_path == tmp_path / "jobs" / "state" / "b.emulator.db"
    assert rehearsal.output_dir == tmp_path / "jobs" / "out" / "b.emulator"
    env = {"RIVYA_BASE_URL": "https://api.example", "RIVYA_API_KEY": KEY}
    real = resolve_run_config(manifest, RunSettings(env=env), cwd=tmp_path)
    assert real.state_path == tmp_path / "jobs" / "state" / "b.db"
    assert real.output_dir == tmp_path / "jobs" / "out" / "b"


def test_an_old_default_state_under_the_cwd_is_used_with_a_note(tmp_path: Path) -> None:
    """The old default (``state/<batch>.db`` under the current folder) is still found when it
    is this batch's and the new default does not exist; another batch's is not."""
    manifest = manifest_in(tmp_path / "jobs")
    env = {"RIVYA_BASE_URL": "https://api.example", "RIVYA_API_KEY": KEY}
    legacy = tmp_path / "state" / "b.db"
    StateStore.open(legacy, "other").close()
    config = resolve_run_config(manifest, RunSettings(env=env), cwd=tmp_path)
    assert config.state_path == tmp_path / "jobs" / "state" / "b.db" and not config.notes
    legacy.unlink()
    StateStore.open(legacy, "b").close()
    config = resolve_run_config(manifest, RunSettings(env=env), cwd=tmp_path)
    assert config.state_path == legacy
    [note] = config.notes
    assert "move it" in note and str(tmp_path / "jobs" / "state" / "b.db") in note
