"""Re-launches the trainer under torch.distributed.run when a pod trains with several processes.

torchrun reports any failed worker as exit code 1, which would hide the exit-code contract
(invalid config, invalid data, preempted). Each worker therefore records its own exit code and
reason in a directory the launcher gives it, and the launcher exits with the one that matters.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubesft_api import exit_codes
from kubesft_trainer.config.runtime_env import RuntimeEnv

log = logging.getLogger(__name__)

OUTCOME_DIR_ENV = "KUBESFT_OUTCOME_DIR"


@dataclass(frozen=True)
class Outcome:
    rank: int
    exit_code: int
    reason: str | None


def write_outcome(rank: int, exit_code: int, reason: str | None) -> None:
    """Called by each worker as it exits (a no-op outside the launcher)."""
    directory = os.environ.get(OUTCOME_DIR_ENV)
    if not directory:
        return
    path = Path(directory) / f"rank-{rank}.json"
    path.write_text(json.dumps({"rank": rank, "exitCode": exit_code, "reason": reason}))


def read_outcomes(directory: Path) -> list[Outcome]:
    outcomes = []
    for path in sorted(directory.glob("rank-*.json")):
        data = json.loads(path.read_text())
        outcomes.append(Outcome(rank=data["rank"], exit_code=data["exitCode"], reason=data.get("reason")))
    return sorted(outcomes, key=lambda o: o.rank)


def decide(outcomes: list[Outcome], ranks: range, launcher_error: str | None) -> tuple[int, str | None]:
    """The pod's exit code and reason from its workers' outcomes.

    A permanent failure wins (retrying cannot fix it), then a runtime failure, then preemption.
    Workers that left no outcome died without reporting (killed, out of memory).
    """
    for permanent in (True, False):
        for outcome in outcomes:
            failed = outcome.exit_code not in (exit_codes.SUCCESS, exit_codes.PREEMPTED)
            if failed and exit_codes.is_permanent(outcome.exit_code) == permanent:
                return outcome.exit_code, outcome.reason
    missing = sorted(set(ranks) - {o.rank for o in outcomes})
    if missing:
        detail = f": {launcher_error}" if launcher_error else ""
        listed = ", ".join(str(rank) for rank in missing)
        return (
            exit_codes.RUNTIME_FAILURE,
            f"training process(es) of rank {listed} exited without a result{detail}",
        )
    preempted = [o for o in outcomes if o.exit_code == exit_codes.PREEMPTED]
    if preempted:
        return exit_codes.PREEMPTED, preempted[0].reason
    if launcher_error:
        return exit_codes.RUNTIME_FAILURE, launcher_error
    return exit_codes.SUCCESS, None


def torchrun_args(env: RuntimeEnv, trainer_args: list[str]) -> list[str]:
    args = ["--nproc-per-node", str(env.nproc_per_node), "--max-restarts", "0"]
    # The pod's grace period is the workers' time to save after SIGTERM, before torchrun kills them.
    args += ["--shutdown-timeout", str(max(1, int(env.grace_seconds)))]
    if env.nnodes == 1:
        args.append("--standalone")
    else:
        args += [
            "--nnodes",
            str(env.nnodes),
            "--node-rank",
            str(env.node_rank),
            "--master-addr",
            env.master_addr,
            "--master-port",
            str(env.master_port),
        ]
    return [*args, "-m", "kubesft_trainer", *trainer_args]


def launch(env: RuntimeEnv, trainer_args: list[str]) -> tuple[int, str | None]:
    """Run ``nproc_per_node`` workers on this node under torchrun; the pod's exit code and reason."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun_args(env, trainer_args)
    log.info(
        "launching %d training process(es) on node %d: torchrun %s", env.nproc_per_node, env.node_rank, args
    )
    launcher_error: str | None = None
    with tempfile.TemporaryDirectory(prefix="kubesft-outcomes-") as directory:
        os.environ[OUTCOME_DIR_ENV] = directory
        try:
            torchrun.main(args)
        except ChildFailedError as error:
            launcher_error = f"torchrun: {error.get_first_failure()[1].message or 'a worker failed'}"
        except SignalException as error:
            launcher_error = f"stopped by {error.sigval.name}"
        except SystemExit as error:
            if error.code not in (0, None):
                launcher_error = f"torchrun exited with {error.code}"
        finally:
            os.environ.pop(OUTCOME_DIR_ENV, None)
        first_rank = env.node_rank * env.nproc_per_node
        ranks = range(first_rank, first_rank + env.nproc_per_node)
        return decide(read_outcomes(Path(directory)), ranks, launcher_error)
