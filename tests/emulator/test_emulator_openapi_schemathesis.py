"""Schemathesis, driven by the emulator's own OpenAPI document, finds no 500s or mismatches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from batchgen.emulator import EmulatorConfig, EmulatorThread, openapi

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live_emulator() -> Iterator[EmulatorThread]:
    """One emulator for the whole schemathesis run (fast time, no rate limit to speak of)."""
    cfg = EmulatorConfig(time_scale=0.001, seed=99, rate_limit_per_s=100_000.0)
    with EmulatorThread(cfg) as emu:
        yield emu


# The document the emulator serves (its server URL is replaced per call by the live one).
schema = schemathesis.openapi.from_dict(openapi.document("http://127.0.0.1"))


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_emulator_conforms_to_its_openapi_document(case, live_emulator):
    """Every generated request gets a non-5xx answer that matches the documented schema."""
    excluded = []
    if case.method == "POST":
        # An upload is judged by its bytes and a create by whether its reference URLs were
        # uploaded first: neither is expressible in a schema, so schema-valid data may get 400.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(
        base_url=live_emulator.base_url,
        headers={"Authorization": f"Bearer {live_emulator.api_key}"},
        excluded_checks=excluded,
    )


ALL_READINGS_CONFIG = EmulatorConfig.with_all_readings(
    time_scale=0.001, seed=99, rate_limit_per_s=100_000.0
)


@pytest.fixture(scope="module")
def all_readings_emulator() -> Iterator[EmulatorThread]:
    """One emulator with every reading of the contract on, for the second schemathesis run."""
    with EmulatorThread(ALL_READINGS_CONFIG) as emu:
        yield emu


# The document an emulator with every reading on serves: it must still describe its answers.
all_readings_schema = schemathesis.openapi.from_dict(
    openapi.document("http://127.0.0.1", ALL_READINGS_CONFIG)
)


@pytest.mark.slow
@all_readings_schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_all_readings_emulator_conforms_to_its_openapi_document(case, all_readings_emulator):
    """With every reading on, answers still match the document the emulator serves."""
    excluded = []
    if case.method == "POST":  # as above: schema-valid uploads and creates may get 400
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(
        base_url=all_readings_emulator.base_url,
        headers={"Authorization": f"Bearer {all_readings_emulator.api_key}"},
        excluded_checks=excluded,
    )
