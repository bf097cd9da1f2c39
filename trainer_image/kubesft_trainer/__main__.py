"""``python -m kubesft_trainer``: train (or, with --validate, check) from a trainer config.

Exit codes follow ``kubesft_api.exit_codes``; a failure's one-line reason is the last
stderr line (``kubesft: error: …``) and, inside a pod, the container's termination message.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from kubesft_api import exit_codes, pod_contract
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.errors import ConfigError, TrainerError
from kubesft_trainer.launcher import launch, write_outcome
from kubesft_trainer.reporting.failure_report import report_failure

log = logging.getLogger("kubesft_trainer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kubesft_trainer",
        description="Supervised fine-tuning with TRL from a kubesft trainer config (an SFTJob spec's sections).",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help=f"trainer config YAML (default: ${pod_contract.ENV_CONFIG}, which the operator sets)",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="check the config, model (tokenizer and config, no weights), data, loss tokens and storage "
        "without training; print the statistics and the first example as the model sees it, with the "
        "tokens that carry loss marked",
    )
    return parser


def _configure_logging(env: RuntimeEnv) -> None:
    rank = f"[rank {env.rank}] " if env.world_size > 1 else ""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {rank}%(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    # Library progress bars and chatter make pod logs unreadable; keep their warnings.
    for name in ("transformers", "datasets", "huggingface_hub", "accelerate", "peft", "trl", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import datasets

            datasets.disable_progress_bars()
        except ImportError:
            pass


def _run(args: argparse.Namespace, argv: list[str], env: RuntimeEnv) -> tuple[int, str | None]:
    from kubesft_trainer.config.file import load_config

    path = args.config or env.config_path
    if path is None:
        raise ConfigError(f"no trainer config: pass --config FILE or set {pod_contract.ENV_CONFIG}")
    config = load_config(path)
    if args.validate:
        from kubesft_trainer.validation.report import report_validation
        from kubesft_trainer.validation.run import validate

        report_validation(validate(config, env))
        return exit_codes.SUCCESS, None
    if env.needs_launcher:
        return launch(env, argv)
    from kubesft_trainer.checkpoints.manager import CheckpointManager
    from kubesft_trainer.reporting.startup import process_started_at

    # Importing torch and transformers keeps one CPU busy for seconds and needs no checkpoint:
    # the one to resume from downloads meanwhile.
    manager = CheckpointManager.from_config(config, env)
    manager.start_resume()
    from kubesft_trainer.train import train

    return train(config, env, process_started_at(), manager)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    env: RuntimeEnv | None = None
    try:
        env = RuntimeEnv.from_environ()
        _configure_logging(env)
        code, reason = _run(args, argv, env)
    except TrainerError as error:
        code, reason = error.exit_code, str(error)
    except Exception as error:
        traceback.print_exc()
        code, reason = exit_codes.RUNTIME_FAILURE, f"unexpected {type(error).__name__}: {error}"
    if env is not None and env.launched_by_torchrun:
        write_outcome(env.rank, code, reason)
    if code == exit_codes.PREEMPTED:
        log.info("%s", reason)
    elif code != exit_codes.SUCCESS:
        report_failure(reason or f"failed with exit code {code}")
    return code


def exit_now(code: int) -> None:
    """Exit with ``code`` once the logs are flushed, without the interpreter's teardown.

    The launcher ran torch's elastic agent in this process, and its C++ threads can still be
    joinable when static destructors run: then the process aborts (SIGABRT, -6) and the pod's
    exit code, which the operator reads (75 for a preemption), is lost.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    try:
        launched = RuntimeEnv.from_environ().needs_launcher
    except TrainerError:
        launched = False
    if launched:
        exit_now(exit_code)
    sys.exit(exit_code)
