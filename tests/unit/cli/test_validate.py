"""``kubesft validate``: the admission checks offline, and with --data the trainer's own checks."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesft.commands import main
from kubesft.commands import validate as validate_module
from kubesft_api.sftjob import InvalidSpecError, parse_spec
from kubesft_operator.render import trainer_config_yaml
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl
from tests.support.specs import VALID
from tests.unit.cli.conftest import Cli


def job(name: str = "smol", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": name},
        "spec": {**VALID, **spec},
    }


def write(path: Path, *documents: Any) -> str:
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def test_a_valid_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("validate", write(tmp_path / "job.yaml", job()))
    assert (result.code, result.out, result.err) == (0, "SFTJob smol: passes the admission checks\n", "")


def test_every_problem_of_every_document_with_its_field(cli: Cli, tmp_path: Path) -> None:
    bad = job("bad", training={"maxSteps": 0, "paddingFree": True}, output={"uri": "gs://bucket/out"})
    other = {"apiVersion": "v1", "kind": "Pod", "metadata": {}}
    result = cli("validate", write(tmp_path / "jobs.yaml", job(), bad, other))
    assert result.code == 1
    assert result.out == "SFTJob smol: passes the admission checks\n"
    assert result.err.splitlines() == [
        "SFTJob bad is invalid: " + "; ".join(spec_problems(bad["spec"])),
        "document 3 is invalid: apiVersion: must be kubesft.io/v1alpha1, got 'v1'; kind: must be SFTJob, got "
        "'Pod'; metadata.name: required; " + "; ".join(spec_problems(None)),
    ]
    assert spec_problems(bad["spec"])[0] == "spec.training.maxSteps: must be ≥ 1, got 0"
    assert [p.split(":")[0] for p in spec_problems(bad["spec"])] == [
        "spec.training.maxSteps",
        "spec.output.uri",
    ]


def spec_problems(spec: dict[str, Any] | None) -> list[str]:
    """What admission says about ``spec`` (kubesft_api's own wording)."""
    with pytest.raises(InvalidSpecError) as refused:
        parse_spec(spec)
    return refused.value.problems


def test_from_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(job("piped"))))
    assert cli("validate", "-").out == "SFTJob piped: passes the admission checks\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "spec:\n  model: [\n",
            "is not valid YAML at line 3: expected the node content, but found '<stream end>'",
        ),
        ("", "holds no SFTJob"),
        ("- 1\n", None),
    ],
)
def test_files_that_are_no_sftjob(cli: Cli, tmp_path: Path, content: str, message: str | None) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(content)
    result = cli("validate", str(path))
    assert result.code == 1
    expected = (
        f"kubesft: error: {path} {message}\n"
        if message
        else "document 1 is invalid: not a mapping but list\n"
    )
    assert result.err == expected


def test_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    assert cli("validate", str(tmp_path / "none.yaml")).err == (
        f"kubesft: error: cannot read {tmp_path}/none.yaml: No such file or directory\n"
    )


def test_data_needs_the_trainer_extra(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name in ("torch", "trl") else real(name),
    )
    result = cli("validate", "--data", write(tmp_path / "job.yaml", job()))
    assert result.code == 1
    assert result.err == (
        "kubesft: error: --data needs the trainer extra (torch, trl not installed): pip install 'kubesft[trainer]'\n"
    )


def test_the_config_the_trainer_gets_is_the_one_the_operator_renders() -> None:
    spec = parse_spec(VALID)
    assert validate_module.trainer_config(spec) == trainer_config_yaml(spec)


def test_data_runs_the_trainers_validation_here(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = build_tiny_model(tmp_path / "model")
    rows = chat_rows(16)
    good = write_jsonl(tmp_path / "chat.jsonl", rows)
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [*rows[:3], {"messages": [{"role": "robot", "content": "beep"}]}]
    )

    def local(data: Path) -> dict[str, Any]:
        return job(
            model={"uri": str(model), "chatTemplate": "chatml"},
            dataset={"uri": str(data)},
            checkpoints={},
            output={"uri": str(tmp_path / "out")},
        )

    assert main(["validate", "--data", write(tmp_path / "good.yaml", local(good))]) == 0
    printed = capfd.readouterr()
    assert "SFTJob smol: passes the trainer's validation on this machine" in printed.out
    assert "data: 16 training rows" in printed.out, printed

    assert main(["validate", "--data", write(tmp_path / "bad.yaml", local(bad))]) == 1
    printed = capfd.readouterr()
    assert "SFTJob smol: the trainer's validation failed (exit 65)" in printed.err
    assert "row 3" in printed.err and "robot" in printed.err, printed.err
