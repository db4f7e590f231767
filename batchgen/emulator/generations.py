"""Creating generation tasks and showing them: the logic behind the two generation routes."""

from __future__ import annotations

import hashlib
from typing import Any

from .catalog import MODELS
from .config import ApiKey
from .envelope import ApiError
from .results import issued_at, result_path
from .state import EmulatorState
from .tasks import FAILURE_MESSAGE, Task, funded_task, task_view, unfunded_task
from .timemodel import plan_task, task_rng
from .validation import validate_generation


def create_task(state: EmulatorState, key: ApiKey, body: Any, idem_key: str | None) -> Task:
    """Validate ``body``, charge the wallet and record a new task (or raise an ApiError)."""
    now = state.clock.now()
    cfg = state.config
    params = validate_generation(
        body,
        lambda url: state.files.resolve(key.account, url, now),
        count_utf16=cfg.prompt_count == "utf16",
        extra_params=frozenset(n.strip() for n in cfg.extra_params.split(",") if n.strip()),
    )
    model = body["model"]
    price = cfg.prices.get(model, MODELS[model]["base_credits"])
    state.tasks.settle(now, state.wallet)
    balance = state.wallet.balance(key.account)
    if balance < price and cfg.insufficient_credits_mode == "402":
        raise ApiError(
            402,
            "insufficient_credits",
            f"the wallet holds {balance} credits and this {model} task needs {price}; "
            "top up, then submit again",
        )
    index, task_id = state.tasks.next_id()
    rng = task_rng(cfg.seed, key.account, idem_key if idem_key is not None else f"#{index}")
    plan = plan_task(
        rng,
        params,
        cfg.time_scale,
        cfg.failure_rate,
        cfg.failure_null_error_share,
        cfg.end_status_rate,
    )
    short = balance < price
    common: dict[str, Any] = {
        "id": task_id,
        "account": key.account,
        "index": index,
        "model": model,
        "body": body,
        "params": params,
        "idempotency_key": idem_key,
        "reserved_credits": 0 if short and cfg.insufficient_credits_mode == "generic" else price,
        "created_at": now,
    }
    if short:  # the "task" and "generic" readings: created unfunded, fails after its queue wait
        code, message = _short_failure(cfg.insufficient_credits_mode, cfg.seed, index)
        message = message or f"the wallet held {balance} credits; this task needed {price}"
        task = unfunded_task(common, now + plan.queue_s, code, message)
    else:
        cap = cfg.max_processing_per_account
        start = state.tasks.schedule(key.account, now + plan.queue_s, plan.run_s, cap)
        task = funded_task(common, plan, start, cfg.end_status_name)
    state.add_task(task)
    return task


def _short_failure(mode: str, seed: int, index: int) -> tuple[str | None, str]:
    """How a task created without enough credits fails: its error code and message.

    ``task``: ``insufficient_credits`` (the message, left empty here, names the amounts).
    ``generic``: nothing says it was credits; ``generation_failed`` and ``error: null``
    alternate from one task to the next, starting with the one the seed picks.
    """
    if mode == "task":
        return "insufficient_credits", ""
    if (seed + index) % 2 == 0:
        return "generation_failed", FAILURE_MESSAGE
    return None, FAILURE_MESSAGE


def find_task(state: EmulatorState, key: ApiKey, task_id: str) -> Task:
    """The account's task, or 404 ``not_found``."""
    task = state.tasks.tasks.get(task_id)
    if task is None or task.account != key.account:
        raise ApiError(404, "not_found", f"no task {task_id!r} in this account")
    return task


def show_task(state: EmulatorState, task: Task, origin: str) -> dict[str, Any]:
    """The task object now, settling a refund and issuing fresh result URLs as needed.

    Result URLs are on ``origin`` (the API's), or on the second origin when ``result_origin``
    is ``other`` and the server runs one.
    """
    now = state.clock.now()
    status = task.status(now)
    urls = None
    if status == "succeeded":
        if state.config.result_origin == "other" and state.result_origin is not None:
            origin = state.result_origin
        urls = [origin + _current_result_path(state, task, now)]
    else:
        state.tasks.refund_if_failed(task, now, state.wallet)
    return task_view(task, now, urls, state.config.interim_status_name)


def _current_result_path(state: EmulatorState, task: Task, now: float) -> str:
    issued = task.result_issued_at
    if issued is None or now - issued >= state.config.result_url_ttl_s:
        task.result_issued_at = issued = now
        task.result_path = result_path(state.config.seed, task.id, issued)
    assert task.result_path is not None
    return task.result_path


def result_answer(state: EmulatorState, task_id: str, token: str) -> str:
    """Whether a result URL serves its video: ``ok``, ``missing`` or ``expired``."""
    task = state.tasks.tasks.get(task_id)
    issued = issued_at(state.config.seed, task_id, token)
    now = state.clock.now()
    if task is None or issued is None or task.status(now) != "succeeded":
        return "missing"
    if now - issued >= state.config.result_url_ttl_s:
        return "expired"
    return "ok"


def create_status(mode: str, task_id: str) -> int:
    """The HTTP status for a new task under the ``create_status`` switch."""
    if mode == "mixed":
        return (200, 201, 202)[hashlib.sha256(task_id.encode()).digest()[0] % 3]
    return int(mode)
