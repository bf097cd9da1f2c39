"""``kubesft validate FILE|-``: the admission checks without a cluster; with ``--data`` the
trainer's own ``--validate`` on this machine's CPU (model, data, chat template, first example).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kubesft.errors import InvalidError, KubesftError
from kubesft.job import API_VERSION
from kubesft_api.sftjob import KIND, InvalidSpecError, SFTJobSpec, parse_spec

TRAINER_MODULES = ("kubesft_trainer", "torch", "transformers", "trl")


def read_documents(source: str) -> list[Any]:
    """The YAML documents of ``source`` (``-`` is stdin), empty ones left out."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as error:
        raise KubesftError(f"cannot read {source}: {error.strerror or error}") from None
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise InvalidError(f"{source} is not valid YAML{where}: {problem}") from None


def document_problems(doc: Any) -> list[str]:
    """Why the API server or the admission webhook would refuse this SFTJob."""
    if not isinstance(doc, dict):
        return [f"not a mapping but {type(doc).__name__}"]
    problems = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        problems.append(f"kind: must be {KIND}, got {doc.get('kind')!r}")
    metadata = doc.get("metadata") or {}
    if not metadata.get("name") and not metadata.get("generateName"):
        problems.append("metadata.name: required")
    try:
        parse_spec(doc.get("spec"))
    except InvalidSpecError as error:
        problems += error.problems
    return problems


def describe(doc: Any, number: int) -> str:
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None
    return f"SFTJob {name}" if name else f"document {number}"


def trainer_config(spec: SFTJobSpec) -> str:
    """The trainer config the operator mounts in the pod: the trainer's sections, camelCase."""
    data = spec.trainer_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=True)


def run_trainer_validation(spec: SFTJobSpec) -> int:
    """``python -m kubesft_trainer --validate`` on this machine; its exit code."""
    missing = [name for name in TRAINER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise KubesftError(
            f"--data needs the trainer extra ({', '.join(missing)} not installed): pip install 'kubesft[trainer]'"
        )
    with tempfile.TemporaryDirectory(prefix="kubesft-validate-") as work:
        config = Path(work) / "config.yaml"
        config.write_text(trainer_config(spec))
        env = {**os.environ, "KUBESFT_WORK_DIR": str(Path(work) / "work")}
        command = [sys.executable, "-m", "kubesft_trainer", "--validate", "--config", str(config)]
        return subprocess.run(command, env=env, check=False).returncode


def validate(source: str, data: bool) -> int:
    """Print a line per SFTJob; 0 when every one passes, 1 otherwise."""
    documents = read_documents(source)
    if not documents:
        raise InvalidError(f"{source} holds no SFTJob")
    failed = False
    for number, doc in enumerate(documents, start=1):
        problems = document_problems(doc)
        if problems:
            print(f"{describe(doc, number)} is invalid: {'; '.join(problems)}", file=sys.stderr)
            failed = True
            continue
        print(f"{describe(doc, number)}: passes the admission checks")
        if data:
            code = run_trainer_validation(parse_spec(doc.get("spec")))
            if code != 0:
                print(
                    f"{describe(doc, number)}: the trainer's validation failed (exit {code})", file=sys.stderr
                )
                failed = True
            else:
                print(f"{describe(doc, number)}: passes the trainer's validation on this machine")
    return 1 if failed else 0
