"""``cryptorun`` — the command line on top of the Dagster definitions.

    cryptorun [--config PATH] schedule list    [--json]
    cryptorun [--config PATH] schedule run JOB [--dry-run] [--partition KEY | --as-of TIME] [--top N] [--json]
    cryptorun [--config PATH] schedule start   [--host HOST] [--port PORT] [--read-only] [--profile NAME]
    cryptorun [--config PATH] schedule status  [--json]
    cryptorun [--config PATH] record   [--as-of TIME] [--json]
    cryptorun [--config PATH] evaluate --from TIME --to TIME [--step 4h] [--json]
    cryptorun [--config PATH] notify test      [--attempts N] [--json]

Exit codes: 0 success, 1 job failure, 2 usage or configuration error (one line on stderr).
There is no second scheduler here: ``run`` executes the Dagster job in-process against the
persistent instance, ``start`` runs a code server, ``dagster-daemon`` and ``dagster-webserver``.
Every command first makes ``$DAGSTER_HOME`` a ready instance (``instance.prepare_instance``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from cryptorun_pipelines.cli.errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, CliError

PROG = "cryptorun"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``cryptorun: error: …``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # accepted before or after the sub-command; SUPPRESS keeps a later default from erasing it
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="scheduler config (default: $CRYPTORUN_CONFIG or the packaged config/scheduler.yaml)")
    common.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                        help="never colour the output (also: NO_COLOR=1)")
    common.add_argument("--profile", metavar="NAME", default=argparse.SUPPRESS,
                        help="deployment profile (deploy/NAME/dagster.yaml) a fresh DAGSTER_HOME gets "
                        "(default: local; also $CRYPTORUN_PROFILE); refused if DAGSTER_HOME has another")

    parser = _Parser(prog=PROG, description="CryptoRun scanner: run and schedule the Dagster jobs.", parents=[common])
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sched = sub.add_parser("schedule", help="list, run, start and inspect the scheduled jobs", parents=[common])
    cmds = sched.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)

    p = cmds.add_parser("list", help="the jobs of config/scheduler.yaml and their schedules", parents=[common])
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = cmds.add_parser("run", help="execute one job through Dagster now", parents=[common])
    p.add_argument("job", metavar="JOB", help="job name (scan.hot, scan.warm, regime.refresh)")
    p.add_argument("--dry-run", action="store_true", help="compute everything, write no artifacts")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--partition", metavar="KEY", help="partition key (window start, e.g. 2026-11-20-11:45)")
    when.add_argument("--as-of", metavar="TIME", help="run the window closed at TIME (UTC, e.g. 2026-11-20T12:00Z)")
    p.add_argument("--top", metavar="N", type=_positive_int, default=10, help="rows of the scan summary (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout (progress goes to stderr)")

    p = cmds.add_parser("start", help="run the Dagster daemon and web UI and turn the schedules on", parents=[common])
    p.add_argument("--host", default="127.0.0.1", help="web UI address (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=_port, default=3000, help="web UI port (default 3000)")
    p.add_argument("--no-schedules", action="store_true", help="do not turn the enabled schedules on")
    p.add_argument("--read-only", action="store_true",
                   help="web UI for viewers: nothing can be launched or changed; no daemon, no schedule toggled")
    p.add_argument("--stop-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait after SIGTERM before SIGKILL (default 30)")

    p = cmds.add_parser("status", help="schedule state, last run and latest artifacts per job", parents=[common])
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("record", help="archive one cycle's bars and books into market.record.folder, without scanning",
                       parents=[common])
    p.add_argument("--as-of", metavar="TIME", help="cycle time (UTC; default now)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("evaluate", help="forward returns of past hot and warm cycles' entries vs rejects (uses data after T)",
                       parents=[common])
    p.add_argument("--from", dest="start", metavar="TIME", required=True, help="first cycle time (UTC)")
    p.add_argument("--to", dest="end", metavar="TIME", required=True, help="last cycle time (UTC)")
    p.add_argument("--step", metavar="DURATION", help="evaluate every DURATION (e.g. 4h) instead of every job tick")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    notify = sub.add_parser("notify", help="entry notifications (docs/notifications.md)", parents=[common])
    ncmds = notify.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    p = ncmds.add_parser("test", help="send a sample entry to every active target and report each", parents=[common])
    p.add_argument("--attempts", metavar="N", type=_positive_int, default=1,
                   help="tries per target, waiting as the sensor would between them (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cryptorun_pipelines.cli import gcpolicy
    from cryptorun_pipelines.cli.context import Context
    from cryptorun_pipelines.cli.instance import PROFILE_ENV, prepare_instance

    if args.group in ("record", "evaluate"):  # no Dagster instance needed
        ctx = Context.create(getattr(args, "config", None), json_output=bool(getattr(args, "json", False)),
                             no_color=bool(getattr(args, "no_color", False)))
        if args.group == "record":
            from cryptorun_pipelines.cli.commands.record import run_record

            return run_record(ctx, args.as_of)
        from cryptorun_pipelines.cli.commands.evaluate import run_evaluate

        return run_evaluate(ctx, args.start, args.end, args.step)
    if args.group not in ("schedule", "notify") or not getattr(args, "command", None):
        parser.error("missing command (try 'cryptorun schedule list')")
    ctx = Context.create(
        getattr(args, "config", None),
        json_output=bool(getattr(args, "json", False)),
        no_color=bool(getattr(args, "no_color", False)),
    )
    if args.group == "notify":  # needs no Dagster instance
        from cryptorun_pipelines.cli.commands.notify_test import run_notify_test

        return run_notify_test(ctx, attempts=max(1, args.attempts))
    if getattr(args, "profile", None):
        os.environ[PROFILE_ENV] = args.profile
    setup = prepare_instance()  # before anything touches the instance (exit 2 if DAGSTER_HOME is unusable)
    if args.command != "run":  # `run` resumes collection once its definitions and instance exist
        gcpolicy.loaded()
    if args.command == "list":
        from cryptorun_pipelines.cli.commands.schedule_list import run_list

        return run_list(ctx)
    if args.command == "status":
        from cryptorun_pipelines.cli.commands.schedule_status import run_status

        return run_status(ctx)
    if args.command == "run":
        from cryptorun_pipelines.cli.commands.schedule_run import run_job

        return run_job(ctx, args.job, dry_run=args.dry_run, partition=args.partition, as_of=args.as_of, top=args.top)
    if args.command == "start":
        from cryptorun_pipelines.cli.commands.schedule_start import run_start

        return run_start(ctx, host=args.host, port=args.port, schedules=not args.no_schedules,
                         stop_timeout=args.stop_timeout, read_only=args.read_only, setup=setup)
    parser.error(f"unknown command '{args.command}'")


def main(argv: Sequence[str] | None = None) -> int:
    from cryptorun_pipelines.cli import gcpolicy

    # no garbage collection while the command imports and builds what lives until it exits
    # (gcpolicy explains why); restored on the way out
    with gcpolicy.paused():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    from cryptorun_core.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = _dispatch(args, parser)
    except ConfigError as exc:  # one line even when a file name or a YAML excerpt holds a newline
        text = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        sys.stderr.write(f"{PROG}: config error: {text}\n")
        code = EXIT_USAGE
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {exc.message}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # `cryptorun schedule list | head -1`: the reader has all it wanted
        _silence_stdout()
        code = EXIT_OK
    except Exception as exc:  # unexpected: one line, the traceback only with CRYPTORUN_DEBUG=1
        if os.environ.get("CRYPTORUN_DEBUG"):
            import traceback

            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(f"{PROG}: error: {type(exc).__name__}: {first}\n")
        code = EXIT_JOB_FAILED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except ValueError:
        pass
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit does not hit the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
