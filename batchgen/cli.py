"""The ``batchgen`` command: parse, call one library function, render, map errors to exit codes.

Exit codes: 0 every job succeeded; 1 run-wide error (bad key, unreadable state); 2 usage error or
invalid manifest; 3 finished with some jobs failed; 4 stopped early but resumable (out of
credits, stuck tasks, SIGTERM; or a decision or fix the summary asks for first); 130 interrupted
(Ctrl-C); 141 output pipe closed (SIGPIPE).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import signals
from batchgen._version import __version__
from batchgen.console import ConsoleHandler, IsoFormatter
from batchgen.errors import BatchgenError, UsageError
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
    from batchgen.commands import RunResult
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
        verify=args.verify,
        max_result_bytes=int(args.max_video_mb * 1_000_000) if args.max_video_mb else None,
        download_deadline_s=args.download_deadline,
        key_lifetime_s=args.key_lifetime,
        resend_expired=args.resend_expired,
        handle_signals=True,
        progress_stream=None if args.quiet else sys.stderr,
        progress_interval_s=args.progress_interval,
    )
    result = run_manifest(args.manifest, settings)
    if not args.quiet:
        _print_run_summary(result)
    return result.exit_code


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


def cmd_report(args: argparse.Namespace) -> int:
    from batchgen.commands import report_batch

    report = report_batch(args.manifest, args.state, emulator=args.emulator)
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
    from batchgen.binding import describe_service
    from batchgen.commands import status_batch
    from batchgen.report import render_totals

    status = status_batch(args.manifest, args.state, emulator=args.emulator)
    lines = [render_totals(status.report), describe_service(status.report.service)]
    if status.events:
        lines.append("latest events:")
        lines += [f"  {e.at}  {e.kind}: {e.detail}" for e in status.events]
    print(redact("\n".join(lines)))
    return 0


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
    _add_manifest(p)
    _add_state(p, reads=False)
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
        "--progress-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds between progress lines (default 5)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    p.set_defaults(func=cmd_run)


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
        "labelled as an estimate)",
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
