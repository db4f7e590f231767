"""The server's window from its X-RateLimit-* headers: read by wire, learned by the limiter."""

from __future__ import annotations

import anyio
import pytest
from client_support import requests_to
from hypothesis import given
from hypothesis import strategies as st

from batchgen.limits import RequestLimiter, ServerWindow, WindowHint
from batchgen.retry import RetryPolicy
from batchgen.wire import window_hint

CREDITS = ("GET", "/api/v1/credits")


def test_window_hint_reads_the_contract_headers() -> None:
    """The emulator's three headers become one hint; without a usable Limit there is none."""
    headers = {"X-RateLimit-Limit": "40", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    assert window_hint(headers) == WindowHint(limit=40, remaining=0, reset_s=1.0)
    assert window_hint({}) is None
    assert window_hint({"X-RateLimit-Limit": "0"}) is None
    assert window_hint({"X-RateLimit-Limit": "100, 100;w=60"}) is None  # another dialect
    assert window_hint({"X-RateLimit-Limit": "10", "X-RateLimit-Reset": "-3"}) == WindowHint(10)
    assert window_hint({"X-RateLimit-Limit": "10", "X-RateLimit-Reset": "nan"}) == WindowHint(10)


@given(
    st.dictionaries(
        st.sampled_from(
            ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
        ),
        st.text(max_size=30),
    )
)
def test_window_hint_never_fails_on_hostile_headers(headers: dict[str, str]) -> None:
    """Any header text gives a hint with sane numbers or none, never an exception."""
    hint = window_hint(headers)
    if hint is not None:
        assert hint.limit is not None and hint.limit >= 1
        assert hint.remaining is None or hint.remaining >= 0
        assert hint.reset_s is None or hint.reset_s >= 0


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["seconds", "http-date", "none"])
async def test_a_client_at_twice_the_limit_learns_the_window(make_emulator, make_client, mode):
    """Whatever form Retry-After takes (or none), a client set at twice a 5-per-second limit
    learns the window from the headers and gets every call through, with few 429s."""
    switches = {"rate_limit_per_s": 5.0, "rate_limit_window_s": 1.0, "retry_after_mode": mode}
    patient = RetryPolicy(max_attempts=10, base_delay_s=0.2, max_delay_s=2, deadline_s=30)
    limiter = RequestLimiter(10, burst=1)
    async with (
        make_emulator(**switches) as emu,
        make_client(emu, limiter=limiter, retry=patient) as c,
    ):
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(c.get_credits)
        counts = requests_to(emu.ledger(), *CREDITS)
    assert limiter.window == ServerWindow(limit=5, window_s=1.0)
    assert counts[200] == 12
    assert counts.get(429, 0) <= 2  # at most the first second, before the window was known


@pytest.mark.anyio
async def test_a_burst_of_429s_with_a_limiter_pauses_everyone(make_emulator, make_client):
    """A burst of 429s longer than a window: after a few 429s the limiter stops treating them as
    jitter and pauses every caller for Retry-After; every call then gets through."""
    switches = {"rate_limit_burst_rate": 1.0, "rate_limit_burst_s": 2.2}
    patient = RetryPolicy(max_attempts=20, base_delay_s=0.05, max_delay_s=1, deadline_s=30)
    limiter = RequestLimiter(50, burst=5)
    async with make_emulator(**switches) as emu:
        async with make_client(emu, limiter=limiter, retry=patient) as c:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(c.get_credits)  # starts the burst
                    await anyio.sleep(0.05)
                    emu.set_switches(rate_limit_burst_rate=0.0)
                    for _ in range(5):
                        tg.start_soon(c.get_credits)
        counts = requests_to(emu.ledger(), *CREDITS)
    assert counts[200] == 6
    # Four fresh 429s escalate; each later pause covers every caller, so the count stays small.
    assert 4 <= counts[429] <= 20
    assert limiter.current_rate_per_s < 50
