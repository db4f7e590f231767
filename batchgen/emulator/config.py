"""Every emulator switch, as one frozen dataclass with a default per field.

The running server holds one ``EmulatorConfig`` and replaces it as a whole when an admin call
flips a switch, so a request always sees a consistent set of switches.

Times: ``time_scale`` multiplies only the service's run-time model (queue wait and processing).
Every other duration here (``*_ttl_s``, ``slow_delay_s``, bursts) is in real seconds, so a
test that sets ``time_scale=0.001`` does not also make URLs expire under the client's feet.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_SCOPES: tuple[str, ...] = (
    "models:read",
    "generations:create",
    "generations:read",
    "files:create",
    "files:read",
    "credits:read",
    "webhooks:manage",
)
KEY_STATUSES = ("active", "revoked", "expired")
DEFAULT_API_KEY = "rvya_sk_emulator_0000000000000000"
DEFAULT_ACCOUNT = "acct_emulator"

RETRY_AFTER_MODES = ("seconds", "none", "http-date")
INSUFFICIENT_CREDITS_MODES = ("402", "task", "generic")
CREATE_STATUS_MODES = ("201", "200", "202", "mixed")
FILE_ID_FIELDS = ("id", "file_id")
REPLAY_IN_FLIGHT_MODES = ("wait", "409")
FILES_ANSWERS = ("full", "minimal")
RESULT_ORIGINS = ("api", "other")
PROMPT_COUNTS = ("codepoints", "utf16")
SIZE_LIMITS = ("binary", "decimal")
END_STATUS_NAMES = ("cancelled", "expired", "canceled", "error", "timeout")
DOCUMENTED_STATUSES = ("queued", "processing", "succeeded", "failed")
_STATUS_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

# The readings of the contract's table "Readings the real service may take where the
# documentation is silent", each at its non-default value: what ``all_readings`` turns on.
# Shares (failure_rate, end_status_rate) and faults stay as given: they are not readings but
# weather, and an all-readings run should still be able to succeed.
ALL_READINGS: dict[str, Any] = {
    "insufficient_credits_mode": "generic",
    "replay_in_flight": "409",
    "files_answer": "minimal",
    "file_id_field": "file_id",  # shows only when files_answer is put back to full
    "extra_fields": True,
    "result_origin": "other",
    "prompt_count": "utf16",
    "size_limit": "decimal",
    "create_status": "mixed",
    "retry_after_mode": "http-date",
    "interim_status_name": "paused_for_review",
}


@dataclass(frozen=True)
class ApiKey:
    """One API key the emulator accepts (or refuses, when revoked or expired)."""

    key: str
    scopes: tuple[str, ...] = ALL_SCOPES
    status: str = "active"  # one of KEY_STATUSES
    account: str = DEFAULT_ACCOUNT

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("an API key must not be empty")
        if self.status not in KEY_STATUSES:
            raise ValueError(f"key status must be one of {KEY_STATUSES}, got {self.status!r}")
        unknown = sorted(set(self.scopes) - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known scopes are {list(ALL_SCOPES)}")

    @classmethod
    def parse(cls, spec: str) -> ApiKey:
        """Parse ``KEY[,scopes=A+B][,status=S][,account=A]`` (scopes: ``+`` list, ``*``, or empty).

        Example: ``rvya_sk_ro,scopes=generations:read+credits:read,status=active,account=a2``.
        """
        key, *options = spec.split(",")
        fields: dict[str, Any] = {}
        for option in options:
            name, sep, value = option.partition("=")
            if not sep or name not in ("scopes", "status", "account"):
                raise ValueError(
                    f"bad key option {option!r} in {spec!r}; "
                    "use scopes=..., status=... or account=..."
                )
            fields[name] = value
        scopes = fields.pop("scopes", "*")
        fields["scopes"] = ALL_SCOPES if scopes == "*" else tuple(s for s in scopes.split("+") if s)
        return cls(key=key, **fields)


@dataclass(frozen=True)
class EmulatorConfig:
    """All switches of the emulator. Defaults give a healthy service with no faults."""

    # --- time and randomness
    time_scale: float = 1.0  # multiplies queue wait and processing time of every task
    seed: int = 0  # drives which tasks fail, their timings and every fault decision
    # --- keys and accounts
    keys: tuple[ApiKey, ...] = (ApiKey(DEFAULT_API_KEY),)
    public_api_disabled: bool = False  # every /api/v1 call answers 503 public_api_disabled
    public_api_disabled_retry_after_s: int = 5  # its Retry-After, in whole seconds
    # --- rate limiting (per key, sliding window, all /api/v1 endpoints)
    rate_limit_per_s: float = 10.0
    rate_limit_window_s: float = 1.0
    retry_after_mode: str = "seconds"  # seconds | none | http-date
    rate_limit_burst_rate: float = 0.0  # share of requests that start a 429 burst for the key
    rate_limit_burst_s: float = 3.0  # how long such a burst lasts (longer than one window)
    # --- wallet and prices
    starting_credits: int = 1_000_000  # per account
    prices: Mapping[str, int] = field(default_factory=lambda: {"kling-3-0": 90})
    # 402 at submit | task: created, then fails insufficient_credits | generic: created with
    # reserved_credits 0, then fails generation_failed or error: null (alternating)
    insufficient_credits_mode: str = "402"
    # --- lifecycle
    max_processing_per_account: int = 10  # tasks beyond this wait in the queue
    failure_rate: float = 0.0  # share of tasks that end failed with generation_failed
    failure_null_error_share: float = 0.25  # share of those failures reported with error: null
    result_url_ttl_s: float = 3600.0  # result URLs answer 410 after this (real seconds)
    result_origin: str = "api"  # api | other: result URLs on a second origin (a "CDN")
    end_status_rate: float = 0.0  # share of would-be successes ending with end_status_name
    end_status_name: str = "cancelled"  # a terminal status the documentation does not list
    interim_status_name: str = ""  # when set, shown instead of "processing"
    # a service that added optional params: comma-separated names accepted (any string value)
    # besides the documented five, as the compatibility policy allows
    extra_params: str = ""
    # --- files
    file_ttl_s: float = 86400.0  # uploaded files expire after this (real seconds)
    file_id_field: str = "id"  # id | file_id: name of the id field in file objects
    files_answer: str = "full"  # full | minimal: file objects carry only url, duration_token
    size_limit: str = "binary"  # binary (10 MB = 10,485,760) | decimal (10,000,000)
    # --- request and response readings
    prompt_count: str = "codepoints"  # codepoints | utf16: units of the 2000 prompt limit
    extra_fields: bool = False  # API objects carry unknown fields (the compatibility policy)
    # --- idempotency
    idempotency_ttl_s: float = 86400.0
    replay_in_flight: str = "wait"  # wait | 409: a replay while the first request is in flight
    # --- faults (each a share of requests in 0..1, decided by the seed)
    fault_500_rate: float = 0.0
    fault_502_rate: float = 0.0
    fault_503_rate: float = 0.0
    drop_rate: float = 0.0  # connection closed without an answer
    drop_after_create_share: float = 0.5  # of dropped creates, share dropped after creating
    slow_rate: float = 0.0  # answers delayed by slow_delay_s
    slow_delay_s: float = 2.0
    create_status: str = "201"  # 201 | 200 | 202 | mixed: HTTP status for a new task
    # --- admin and persistence
    admin_enabled: bool | None = None  # None: on for loopback hosts only
    state_file: str | None = None  # JSON-lines journal; state survives restarts

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(_coerce_key(k) for k in self.keys))
        if self.state_file is not None:  # a Path is welcome too
            object.__setattr__(self, "state_file", os.fspath(self.state_file))
        _check_choices(self)
        _check_ranges(self)

    @property
    def api_key(self) -> str:
        """The key handed to users of the emulator: the first configured key."""
        return self.keys[0].key

    @classmethod
    def with_all_readings(cls, **overrides: Any) -> EmulatorConfig:
        """Every non-default reading of the contract on at once, then ``overrides`` on top.

        ``EmulatorConfig.with_all_readings(time_scale=0.01, seed=7)``; see ``ALL_READINGS``.
        """
        return cls().replace(all_readings=True, **overrides)

    @property
    def all_readings(self) -> bool:
        """Whether every reading of ``ALL_READINGS`` is on."""
        return all(getattr(self, name) == value for name, value in ALL_READINGS.items())

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (values coerced like ``from_dict``).

        ``all_readings=True`` first sets every reading of ``ALL_READINGS`` (``False`` puts them
        back to the contract's defaults); the other ``changes`` then apply on top.
        """
        changes = dict(changes)
        if "all_readings" in changes:
            on = _coerce_bool("all_readings", changes.pop("all_readings"))
            base = ALL_READINGS if on else {n: _DEFAULTS[n] for n in ALL_READINGS}
            changes = {**base, **changes}
        return dataclasses.replace(self, **_coerce_all(changes))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of every switch."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["keys"] = [dataclasses.asdict(k) | {"scopes": list(k.scopes)} for k in self.keys]
        out["prices"] = dict(self.prices)
        out["all_readings"] = self.all_readings
        return out


# switch name -> its allowed values (the CLI offers them as choices)
CHOICES: dict[str, tuple[str, ...]] = {
    "retry_after_mode": RETRY_AFTER_MODES,
    "insufficient_credits_mode": INSUFFICIENT_CREDITS_MODES,
    "create_status": CREATE_STATUS_MODES,
    "file_id_field": FILE_ID_FIELDS,
    "replay_in_flight": REPLAY_IN_FLIGHT_MODES,
    "files_answer": FILES_ANSWERS,
    "result_origin": RESULT_ORIGINS,
    "prompt_count": PROMPT_COUNTS,
    "size_limit": SIZE_LIMITS,
    "end_status_name": END_STATUS_NAMES,
}


def _check_choices(cfg: EmulatorConfig) -> None:
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    if not cfg.keys:
        raise ValueError("configure at least one API key")
    interim = cfg.interim_status_name
    if interim and (
        not _STATUS_NAME.fullmatch(interim) or interim in DOCUMENTED_STATUSES + END_STATUS_NAMES
    ):
        raise ValueError(
            "interim_status_name must be empty or a new lower-case status name such as "
            f"paused_for_review (not one of {DOCUMENTED_STATUSES + END_STATUS_NAMES}), "
            f"got {interim!r}"
        )


_SHARES = (
    "rate_limit_burst_rate",
    "failure_rate",
    "failure_null_error_share",
    "fault_500_rate",
    "fault_502_rate",
    "fault_503_rate",
    "drop_rate",
    "drop_after_create_share",
    "slow_rate",
    "end_status_rate",
)
_NON_NEGATIVE = (
    "public_api_disabled_retry_after_s",
    "time_scale",
    "rate_limit_burst_s",
    "starting_credits",
    "result_url_ttl_s",
    "file_ttl_s",
    "idempotency_ttl_s",
    "slow_delay_s",
)


def _check_ranges(cfg: EmulatorConfig) -> None:
    for name in _SHARES:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} is a share and must be within 0..1, got {getattr(cfg, name)}")
    for name in _NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must not be negative, got {getattr(cfg, name)}")
    if cfg.rate_limit_per_s <= 0 or cfg.rate_limit_window_s <= 0:
        raise ValueError("rate_limit_per_s and rate_limit_window_s must be positive")
    if cfg.max_processing_per_account < 1:
        raise ValueError("max_processing_per_account must be at least 1")
    if sum(getattr(cfg, f"fault_{c}_rate") for c in (500, 502, 503)) + cfg.drop_rate > 1.0:
        raise ValueError("fault_500/502/503 rates and drop_rate together must not exceed 1")
    bad_prices = {m: p for m, p in cfg.prices.items() if not isinstance(p, int) or p < 0}
    if bad_prices:
        raise ValueError(f"prices must be non-negative integers, got {bad_prices}")


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in dataclasses.fields(EmulatorConfig)}
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(EmulatorConfig) if f.name in ALL_READINGS
}


def _coerce_all(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(FIELD_TYPES))
    if unknown:
        known = sorted([*FIELD_TYPES, "all_readings"])
        raise ValueError(f"unknown switches {unknown}; known switches are {known}")
    return {name: coerce(name, value) for name, value in changes.items()}


def coerce(name: str, value: Any) -> Any:
    """Turn a JSON value into the type of switch ``name`` (raises ValueError when it can't)."""
    kind = FIELD_TYPES[name]
    if name == "keys":
        return tuple(_coerce_key(k) for k in value)
    if name == "prices":
        return {str(m): int(p) for m, p in dict(value).items()}
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        return _coerce_bool(name, value)
    if kind == "int":
        return _coerce_number(name, value, int)
    if kind == "float":
        return _coerce_number(name, value, float)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _coerce_key(value: Any) -> ApiKey:
    if isinstance(value, ApiKey):
        return value
    if isinstance(value, str):
        return ApiKey.parse(value)
    data = dict(value)
    data["scopes"] = tuple(data.get("scopes", ALL_SCOPES))
    return ApiKey(**data)


def _coerce_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1, "yes", "on"):
        return True
    if value in ("false", "0", 0, "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _coerce_number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if kind is int and number != float(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return number
