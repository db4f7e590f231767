"""The ``batchgen`` command: parse, call one library function, render, map errors to exit codes.

Exit codes: 0 every job succeeded; 1 run-wide error (bad key, unreadable state); 2 usage error or
invalid manifest; 3 finished with some jobs failed; 4 stopped early but resumable (out of
credits, stuck tasks, SIGTERM; or a decision or fix the summary asks for first); 130 interrupted
(Ctrl-C); 141 output pipe closed (SIGPIPE).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import signals
from batchgen._version import __version__
from batchgen.console import ConsoleHandler, IsoFormatter
from batchgen.errors import BatchgenError, UsageError
from batchgen.events import Event, RunStarted, Subscriber
from batchgen.outcome import (
    ExitCode,
    RunOutcome,
    describe_stops,
    error_exit_code,
    jobs_exit_code,
    needs_attention,
)
from batchgen.redact import redact

if TYPE_CHECKING:  # the commands are imported lazily, so `--help` stays fast
    from batchgen.commands import BatchStatus, RunResult
    from batchgen.jsonlog import JsonLog
    from batchgen.report import Report

log = logging.getLogger("batchgen")

SUMMARY_TABLE_LIMIT = 40


def main(argv: Sequence[str] | None = None, *, keep_signals: bool = False) -> int:
    """Run one command; returns its exit code. SIGINT and SIGTERM are taken over before
    anything else (see ``batchgen.signals``), so a signal at any moment ends the command with
    its documented code; ``keep_signals`` leaves them taken when it returns (the ``batchgen``
    program: a signal during interpreter shutdown still exits promptly)."""
    signals.install()
    verbose = 0
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            return int(exc.code or 0)
        verbose = args.verbose
        _setup_logging(verbose)
        return int(args.func(args))
    except BaseException as exc:
        return _report_error(exc, verbose)
    finally:
        if not keep_signals:
            signals.uninstall()


def entry() -> None:
    """The ``batchgen`` program and ``python -m batchgen``.

    Once the command has returned, its exit code is final and every file it wrote is closed
    and synced, so the process ends here with ``os._exit`` after flushing its output. Leaving
    it to interpreter shutdown would open two holes: a signal arriving after Python has reset
    its handlers kills the process with -2 instead of the documented code, and shutdown waits
    for idle worker threads (those that ran the downloads' fsyncs) before it exits."""
    code = main(keep_signals=True)
    with contextlib.suppress(Exception):
        logging.shutdown()
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def _report_error(exc: BaseException, verbose: int) -> int:
    exc = _unwrap(exc)
    if isinstance(exc, SystemExit):
        return int(exc.code or 0)
    if isinstance(exc, BrokenPipeError):  # `batchgen report | head`: the reader has enough
        _silence_stdout()
        return int(error_exit_code(exc))
    if verbose:
        traceback.print_exception(exc)
    if isinstance(exc, KeyboardInterrupt):
        print("Interrupted. Run the same command again to resume.", file=sys.stderr)
    elif isinstance(exc, BatchgenError):
        print(redact(f"Error: {exc}"), file=sys.stderr)
    else:
        print(redact(f"Error: unexpected {type(exc).__name__}: {exc}"), file=sys.stderr)
        print("  This is a bug in batchgen; run again with -v for the traceback.", file=sys.stderr)
    return int(error_exit_code(exc))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the final flush cannot fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        for leaf in exc.exceptions:
            if isinstance(leaf, BatchgenError):
                return leaf
    return exc


def _setup_logging(verbose: int) -> None:
    """Configure the ``batchgen`` logger only; the root logger belongs to the host program."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logger = logging.getLogger("batchgen")
    logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, ConsoleHandler)]
    handler = ConsoleHandler()
    handler.setFormatter(IsoFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


# -- commands --------------------------------------------------------------------------------


def cmd_retry(args: argparse.Namespace) -> int:
    """``retry``: ``run`` with failed jobs (unless only --blocked is asked) given a new attempt;
    blocked ones get theirs in every run."""
    args.retry_failed = args.retry_failed or args.failed or not args.blocked
    return cmd_run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from batchgen.commands import run_manifest
    from batchgen.config import EmulatorChoice, RunSettings

    settings = RunSettings(
        state_path=args.state,
        emulator=EmulatorChoice() if args.emulator else None,
        same_account=args.same_account,
        new_state=args.new_state,
        time_scale=args.time_scale,
        rate_per_s=args.rate,
        burst=args.burst,
        max_in_flight=args.max_in_flight,
        retry_failed=args.retry_failed,
        only=tuple(args.only),
        verify=args.verify,
        max_credits=args.max_credits,
        limit=args.limit,
        until=_submission_deadline(args.until, args.for_),
        max_result_bytes=int(args.max_video_mb * 1_000_000) if args.max_video_mb else None,
        download_deadline_s=args.download_deadline,
        key_lifetime_s=args.key_lifetime,
        resend_expired=args.resend_expired,
        require_funds=args.require_funds,
        preflight=not args.skip_preflight,
        handle_signals=True,
        progress_stream=None if args.quiet else sys.stderr,
        progress_interval_s=args.progress_interval,
    )
    with contextlib.ExitStack() as stack:
        watch = _RunWatch()
        subscribers: list[Subscriber] = [watch]
        if args.log is not None:
            subscribers.append(stack.enter_context(_open_json_log(args)))
        settings = dataclasses.replace(settings, subscribers=tuple(subscribers))
        try:
            result = run_manifest(args.manifest, settings)
        except Exception as exc:
            _after_error(args, watch, subscribers, exc)
            raise
    if not args.quiet:
        _print_run_summary(result)
    if args.on_finish:
        from batchgen.onfinish import run_on_finish, run_summary

        summary = run_summary(result.report, result.outcome, result.exit_code, result.state_path)
        run_on_finish(args.on_finish, summary)
    return result.exit_code


class _RunWatch:
    """Remembers whether the run started (and its batch), for ``--on-finish`` after an error."""

    def __init__(self) -> None:
        self.batch: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.batch = event.batch


def _open_json_log(args: argparse.Namespace) -> JsonLog:
    from batchgen.jsonlog import JsonLog

    try:
        return JsonLog(args.log, max_bytes=int(args.log_max_mb * 1_000_000))
    except OSError as exc:
        raise UsageError(
            f"--log {args.log}: cannot open it for appending: {exc.strerror or exc}"
        ) from exc


def _after_error(
    args: argparse.Namespace, watch: _RunWatch, subscribers: list[Subscriber], exc: Exception
) -> None:
    """A run-wide error after the run started: the JSON log and ``--on-finish`` hear of it."""
    if watch.batch is None:
        return
    from batchgen.jsonlog import JsonLog, iso_utc
    from batchgen.onfinish import error_summary, run_on_finish

    leaf = _unwrap(exc)
    code = int(error_exit_code(leaf))
    error = redact(f"{type(leaf).__name__}: {leaf}")
    record = {"at": iso_utc(time.time()), "event": "run_error", "exit_code": code, "error": error}
    for subscriber in subscribers:
        if isinstance(subscriber, JsonLog):
            subscriber.write(record)
    if args.on_finish:
        run_on_finish(args.on_finish, error_summary(watch.batch, code, error))


def _print_run_summary(result: RunResult) -> None:
    from batchgen.report import render_table

    outcome = result.outcome
    print(render_table(result.report, limit=SUMMARY_TABLE_LIMIT))
    print(
        f"this run: {outcome.submitted} submitted, {outcome.replayed} resumed by replay; "
        f"state in {result.state_path}"
    )
    print(_verdict(result.exit_code, result.report, outcome))


def _verdict(code: int, report: Report, outcome: RunOutcome) -> str:
    from batchgen.report import ReportStatus

    n = report.totals.jobs
    if code == ExitCode.OK:
        return f"All {n} jobs succeeded."
    if code == ExitCode.SOME_FAILED:
        failed = report.totals.count(ReportStatus.FAILED)
        return (
            f"Finished: {failed} of {n} jobs failed (see the errors above). Fix them and rerun "
            "with --retry-failed to give them a new attempt."
        )
    if code == ExitCode.INTERRUPTED:
        return "Interrupted. Run the same command again to resume; nothing will be paid twice."
    why = describe_stops(outcome) or "some jobs are not finished"
    if needs_attention(outcome):
        return f"Stopped early, and it needs you: {why}."
    return f"Stopped early: {why}. Run the same command again to resume."


def cmd_validate(args: argparse.Namespace) -> int:
    from batchgen.commands import validate_manifest

    manifest = validate_manifest(args.manifest)
    refs = {r.identity for j in manifest.jobs for r in j.references}
    print(
        f"{args.manifest}: OK: batch {manifest.batch!r}, {len(manifest.jobs)} jobs, "
        f"{len(refs)} distinct reference file(s); output to {manifest.output_dir}"
    )
    return 0


def _submission_deadline(until: str | None, for_: str | None) -> float | None:
    """``--until HH:MM`` or ``--for DURATION`` as seconds since the epoch (None: neither)."""
    from datetime import datetime

    from batchgen.gates import parse_duration, parse_until

    try:
        if until is not None:
            now = datetime.now().astimezone()
            when = parse_until(until, now)
            log.info("submitting until %s (%s)", when.isoformat(timespec="minutes"), when.tzname())
            return when.timestamp()
        if for_ is not None:
            return time.time() + parse_duration(for_)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return None


def cmd_report(args: argparse.Namespace) -> int:
    from batchgen.commands import report_batch

    report = report_batch(args.manifest, args.state, emulator=args.emulator, only=args.only)
    output: Path | None = args.output
    text = redact(_render_report(report, args.format, args.manifest, output))
    if output is None:
        # print, not one sys.stdout.write: a single large write into a pipe whose reader
        # left (`| head`) can end without the BrokenPipeError the exit code 141 depends on
        print(text.removesuffix("\n"))
    else:
        from batchgen.gallery import write_atomically

        write_atomically(output, text if text.endswith("\n") else text + "\n")
        print(f"report ({args.format}) written to {output}", file=sys.stderr)
    return 0 if args.exit_zero else int(jobs_exit_code(dict(report.totals.by_status)))


def _render_report(report: Report, fmt: str, manifest: Path | None, output: Path | None) -> str:
    """The report in ``fmt``; an HTML page's paths are relative to ``output``'s folder (or
    the current folder), its references' to the manifest's folder."""
    from batchgen.binding import describe_service
    from batchgen.report import render_csv, render_json, render_table

    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        from batchgen.gallery import render_html

        base = output.parent if output is not None else Path.cwd()
        refs = manifest.parent if manifest is not None else None
        return render_html(report, base_dir=base, references_dir=refs)
    return f"{render_table(report)}\n{describe_service(report.service)}"


def cmd_status(args: argparse.Namespace) -> int:
    from batchgen.commands import status_batch
    from batchgen.errors import Interrupted
    from batchgen.live import render_status, render_status_json, watch_status

    def read() -> BatchStatus:
        return status_batch(args.manifest, args.state, emulator=args.emulator, only=args.only)

    render = render_status_json if args.json else render_status
    interval_s = args.watch or (2.0 if args.until_done else None)  # --until-done watches
    if interval_s is None:
        print(render(read()))
        return 0
    try:
        last = watch_status(read, render, interval_s=interval_s, until_done=args.until_done)
    except Interrupted as exc:
        if exc.signum != signal.SIGINT:
            raise
        return 0  # Ctrl-C is how a watch ends
    return int(jobs_exit_code(dict(last.report.totals.by_status)))


def cmd_plan(args: argparse.Namespace) -> int:
    from batchgen.commands import plan_batch
    from batchgen.plan import plan_to_dict, render_plan

    plan = plan_batch(args.manifest, args.state, online=args.online, emulator=args.emulator)
    if args.json:
        print(json.dumps(plan_to_dict(plan), indent=2))
    else:
        sys.stdout.write(render_plan(plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batchgen.manifest.schema import manifest_json_schema

    print(json.dumps(manifest_json_schema(), indent=2))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from batchgen.emulator.cli import config_from_args, serve

    signals.uninstall()  # the server handles SIGINT/SIGTERM on its own event loop
    return int(serve(config_from_args(args), args.host, args.port))


# -- parser ----------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _add_only(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID|GLOB",
        help="only these jobs (a job id, or a pattern like 'hero*'; repeatable)",
    )


def _add_manifest(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    if not optional:
        p.add_argument("manifest", type=Path, metavar="MANIFEST", help="the batch's YAML manifest")
        return
    p.add_argument(
        "manifest",
        type=Path,
        metavar="MANIFEST",
        nargs="?",
        help="the batch's YAML manifest (optional with --state: the state alone is read; a "
        "manifest that no longer validates falls back to its state too)",
    )


def _add_state(p: argparse.ArgumentParser, *, reads: bool = True) -> None:
    p.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="state database (default: state/<batch>.db in the manifest's folder; "
        "state/<batch>.emulator.db with --emulator)",
    )
    if reads:  # `run` adds its own --emulator
        p.add_argument(
            "--emulator",
            action="store_true",
            help="read the rehearsal's state (the one `run --emulator` writes)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Run batches of Rivya kling-3-0 video generations from a YAML manifest.",
        epilog="Exit codes: 0 all succeeded, 1 run-wide error, 2 usage or invalid manifest, "
        "3 some jobs failed, 4 stopped early but resumable, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail: -v job events, -vv HTTP requests; tracebacks on errors",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(  # -v also works after the command; SUPPRESS keeps the global count
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more detail: -v job events, -vv HTTP requests; tracebacks on errors",
    )
    _add_run(sub, common)
    _add_simple(sub, common)
    _add_emulator(sub, common)
    return parser


def _add_run(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run or resume a batch",
        description="Validate the manifest, then run (or resume) its batch: upload references, "
        "submit each job once, poll, download the videos. Rerun the same command to resume.",
    )
    _run_arguments(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "retry",
        parents=[common],
        help="give failed (or blocked) jobs a new attempt, and run them",
        description="Give the chosen jobs a new attempt (a new idempotency key; the earlier "
        "attempts' tasks stay in the record and the sums), then run the batch like `run` "
        "(with --only, only them). Without --failed or --blocked: failed jobs.",
    )
    _run_arguments(p)
    p.add_argument("--failed", action="store_true", help="failed jobs get a new attempt")
    p.add_argument(
        "--blocked",
        action="store_true",
        help="blocked jobs (out of credits) get a new attempt (every run does this anyway)",
    )
    p.set_defaults(func=cmd_retry)


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``run`` (and ``retry``)."""
    _add_manifest(p)
    _add_state(p, reads=False)
    _add_only(p)
    p.add_argument(
        "--emulator",
        action="store_true",
        help="run against the embedded emulator in this process (no account needed); it "
        "keeps its own state and writes to <output folder>.emulator",
    )
    p.add_argument(
        "--same-account",
        action="store_true",
        help="the API key changed but the account is the same: record the new key's "
        "fingerprint instead of refusing the state",
    )
    p.add_argument(
        "--new-state",
        action="store_true",
        help="start a new state although the output folder holds this batch's videos "
        "(their jobs are submitted again)",
    )
    p.add_argument(
        "--time-scale",
        type=_positive_float,
        metavar="X",
        help="scale poll timing by X (with --emulator also its time model; default "
        "0.02 there, 1 against the real service)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="requests per second (overrides limits.requests_per_second)",
    )
    p.add_argument(
        "--burst",
        type=_positive_int,
        metavar="N",
        help="requests allowed at once after a quiet spell (overrides limits.burst)",
    )
    p.add_argument(
        "--max-in-flight",
        type=_positive_int,
        metavar="N",
        help="tasks submitted and not finished at once (overrides limits.max_in_flight)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="give failed jobs a new attempt (a new idempotency key)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check every recorded video's sha256, not only its size (reads every file); "
        "a damaged one is downloaded again",
    )
    p.add_argument(
        "--max-credits",
        type=_positive_int,
        metavar="N",
        help="the batch's budget: submit nothing that would take its credits (charged, or held "
        "by tasks in flight; every version and attempt, refunds counted) past N; overrides "
        "limits.max_credits",
    )
    p.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="submit at most N new jobs in this run (a pilot: try a few before the batch)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--until",
        metavar="HH:MM",
        help="submit nothing new from this time of day on (the machine's time zone; the next "
        "such time); tasks in flight are still followed and downloaded",
    )
    when.add_argument(
        "--for",
        dest="for_",
        metavar="DURATION",
        help="submit nothing new after this long (2h, 90m, 1h30m, 45s); tasks in flight are "
        "still followed and downloaded",
    )
    p.add_argument(
        "--max-video-mb",
        type=_positive_float,
        metavar="MB",
        help="refuse a result file larger than this (default 500; a hostile or broken server "
        "cannot fill the disk)",
    )
    p.add_argument(
        "--download-deadline",
        type=_positive_float,
        metavar="S",
        help="seconds one download of one video may take, however slowly it trickles "
        "(default 600); a slower one is retried, then left for a rerun",
    )
    p.add_argument(
        "--key-lifetime",
        type=_positive_float,
        metavar="SECONDS",
        help="how long the service remembers an idempotency key (default 86400, the "
        "contract's 24 h); a job left mid-submit for longer is not resent without "
        "--resend-expired",
    )
    p.add_argument(
        "--resend-expired",
        action="store_true",
        help="resend jobs left mid-submit for longer than the key lifetime, with their stored "
        "key and body. Risk: if the first request reached the service, it may have forgotten "
        "the key and charge a second task; check the account's task list first",
    )
    p.add_argument(
        "--require-funds",
        action="store_true",
        help="stop before submitting anything (exit 4) when the wallet holds less than the "
        "run may reserve; default: warn and go on until the credits run out",
    )
    p.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not check the address, key and wallet before the run (a few quick requests "
        "that fail a dead RIVYA_BASE_URL in seconds)",
    )
    p.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds between progress lines (default 5)",
    )
    p.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="also write every event of the run to FILE as one JSON object per line "
        "(appended; rotated by size to FILE.1 .. FILE.3); the API key is never written",
    )
    p.add_argument(
        "--log-max-mb",
        type=_positive_float,
        default=50.0,
        metavar="MB",
        help="rotate the --log file when it would pass this size (default 50)",
    )
    p.add_argument(
        "--on-finish",
        metavar="CMD",
        help="when the run ends (whatever its exit code), run CMD through the shell with the "
        "run's summary as JSON on its stdin; RIVYA_API_KEY is removed from its environment, "
        "and its exit status does not change batchgen's (it is stopped after 60 s)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")


def _add_simple(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "validate",
        parents=[common],
        help="check a manifest; sends nothing",
        description="Validate the manifest and every file it names; list every "
        "problem with file:line:column. Sends nothing.",
    )
    _add_manifest(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "plan",
        parents=[common],
        help="what a run would do and cost; sends nothing",
        description="Jobs, credits they would reserve, reference files, and with "
        "a state file what a run would do now (new, in flight, done, changed).",
    )
    _add_manifest(p)
    _add_state(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--online",
        action="store_true",
        help="ask the models endpoint for the price (default: the contract's 90, "
        "labelled as an estimate) and, when RIVYA_API_KEY is set, the wallet",
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "report",
        parents=[common],
        help="what happened to every job of a batch",
        description="Report every job of the batch from its state database.",
    )
    _add_manifest(p, optional=True)
    _add_state(p)
    _add_only(p)
    p.add_argument(
        "--format",
        choices=("json", "table", "csv", "html"),
        default="table",
        help="table (default), json (for tools), csv (one row per job, for spreadsheets) or "
        "html (one self-contained page: totals and a gallery of the videos)",
    )
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the report to FILE (atomically) instead of standard output; an HTML "
        "report's links are relative to FILE's folder",
    )
    p.add_argument(
        "--exit-zero", action="store_true", help="exit 0 even when jobs failed or are unfinished"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "status",
        parents=[common],
        help="one-paragraph summary of a batch's state",
        description="Counts per status, credits, and jobs the manifest no longer names.",
    )
    _add_manifest(p, optional=True)
    _add_state(p)
    _add_only(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: totals, failures by error code, the oldest task in "
        "flight, the latest events, and whether a run holds the state now",
    )
    p.add_argument(
        "--watch",
        type=_positive_float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C; read only, so it works from "
        "another shell while a run holds the state",
    )
    p.add_argument(
        "--until-done",
        action="store_true",
        help="with --watch: stop when no run holds the state and nothing is in flight, "
        "exiting as `report` does",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "schema",
        parents=[common],
        help="print the manifest's JSON Schema",
        description="Print the JSON Schema of the manifest (for editors).",
    )
    p.set_defaults(func=cmd_schema)


def _add_emulator(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "emulator",
        parents=[common],
        help="serve the embedded Rivya emulator",
        description="Serve the embedded Rivya API emulator on loopback.",
    )
    try:
        from batchgen.emulator.cli import add_arguments
    except ImportError as exc:  # pragma: no cover - the emulator ships with batchgen
        raise UsageError(f"the emulator is not available: {exc}") from exc
    add_arguments(p)
    p.set_defaults(func=cmd_emulator)
