"""The ``kubesft`` command, also installed as the kubectl plugin ``kubectl sft``.

Every failure ends in one line, ``kubesft: error: <cause>``, and a non-zero exit: 2 for a bad
flag, 1 for anything else (and for ``wait`` on a Failed job). No traceback, unless
KUBESFT_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kubesft.commands import handlers
from kubesft.commands.handlers import UsageError
from kubesft.commands.run_flags import add_run_flags, integer, key_value, number
from kubesft.errors import KubesftError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing its usage, so an error stays one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given before or after the subcommand, the flag is kept (not reset by a default).
    parser.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument(
        "--context", default=argparse.SUPPRESS, help="kubeconfig context (default: the current one)"
    )
    parser.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)"
    )


def _named(sub: Any, command: str, help: str, handler: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(command, help=help, description=help, allow_abbrev=False)
    _connection_flags(parser)
    parser.set_defaults(handler=handler)
    return parser


def build_parser(prog: str = "kubesft") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description="Supervised fine-tuning jobs (SFTJobs) on Kubernetes.", allow_abbrev=False
    )
    _connection_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _named(sub, "run", "create an SFTJob from flags (named like trl sft's) or -f FILE", handlers.run)
    run.add_argument(
        "-f", "--filename", dest="file", help="an SFTJob YAML file (- for stdin); flags override it"
    )
    run.add_argument("--name", help="SFTJob name (default: generated from the model)")
    run.add_argument(
        "--label", action="append", type=key_value, metavar="KEY=VALUE", help="label (repeatable)"
    )
    run.add_argument("--dry-run", action="store_true", help="print the SFTJob YAML instead of creating it")
    run.add_argument("--wait", action="store_true", help="follow the job to the end, like kubesft wait")
    run.add_argument("--timeout", type=number, help="with --wait: give up after this many seconds")
    add_run_flags(run)

    listing = _named(sub, "list", "list SFTJobs", handlers.list_jobs)
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")

    status = _named(
        sub, "status", "phase, progress, loss, ETA, restarts, storage and events", handlers.status
    )
    status.add_argument("name")

    logs = _named(sub, "logs", "a trainer pod's log", handlers.logs)
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until the trainer exits")
    logs.add_argument("--rank", type=integer, default=0, help="node rank of a multi-node job (default 0)")
    logs.add_argument("--attempt", type=integer, help="attempt (default: the current status.attempt)")

    wait = _named(sub, "wait", "a progress bar until Succeeded (exit 0) or Failed (exit 1)", handlers.wait)
    wait.add_argument("name")
    wait.add_argument("--timeout", type=number, help="give up after this many seconds")

    for command, help, handler in (
        ("suspend", "checkpoint and stop the pods (spec.runPolicy.suspend: true)", handlers.suspend),
        ("resume", "continue from the newest checkpoint (spec.runPolicy.suspend: false)", handlers.resume),
        ("delete", "delete the SFTJob (object storage is kept)", handlers.delete),
    ):
        _named(sub, command, help, handler).add_argument("name")

    validate = _named(sub, "validate", "the admission checks, offline", handlers.validate_file)
    validate.add_argument("file", metavar="FILE|-")
    validate.add_argument(
        "--data", action="store_true", help="also run the trainer's validation here (trainer extra)"
    )

    download = _named(sub, "download", "copy a Succeeded job's model from object storage", handlers.download)
    download.add_argument("name")
    download.add_argument("directory", metavar="DIR")
    return parser


def _prog(argv0: str) -> str:
    return "kubectl sft" if Path(argv0).name.startswith("kubectl-sft") else "kubesft"


def main(argv: Sequence[str] | None = None) -> int:
    prog = _prog(sys.argv[0])
    try:
        args, extras = build_parser(prog).parse_known_args(argv)
        if extras and args.command != "run":
            raise UsageError(f"unrecognized arguments: {' '.join(extras)}")
        code: int = args.handler(args, extras)
        return code
    except UsageError as error:
        _error(prog, str(error))
        return 2
    except KubesftError as error:
        _error(prog, str(error))
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:
        if os.environ.get("KUBESFT_DEBUG"):
            traceback.print_exc()
        _error(prog, f"unexpected {type(error).__name__}: {error} (KUBESFT_DEBUG=1 shows where)")
        return 1


def _error(prog: str, message: str) -> None:
    """One line, whatever the message holds (a server's message may span several)."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
