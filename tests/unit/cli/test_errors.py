"""Every error of the command is one line naming its cause, with no traceback.

The API server's answers are faked at the HTTP boundary (tests/unit/cli/fake_api.py) with the
bodies a real one sends; the official client, the kubeconfig loader and argparse are real.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from kubesft.commands import main
from tests.unit.cli.conftest import SPEC_FLAGS, Cli, Outcome
from tests.unit.cli.fake_api import SFTJOBS, Answer, FakeApi, sftjob, status_body, watch_body

JOBS = SFTJOBS.format(ns="team")


def error_line(result: Outcome, code: int = 1) -> str:
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.err
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result.err
    return result.err.removesuffix("\n")


def last_line(result: Outcome) -> str:
    """The error after the progress ``wait`` drew before it: still one line."""
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    return result.err.splitlines()[-1]


# --- the connection ------------------------------------------------------------------------------


def test_no_kubeconfig_at_the_default_path(cli: Cli, isolated: Path) -> None:
    assert error_line(cli("list")) == (
        f"kubesft: error: no kubeconfig: {isolated}/.kube/config does not exist (pass --kubeconfig or set KUBECONFIG)"
    )


def test_kubeconfig_variable_naming_a_missing_file(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nowhere/config")
    assert (
        error_line(cli("list"))
        == "kubesft: error: no kubeconfig: KUBECONFIG names /nowhere/config, which does not exist"
    )


def test_kubeconfig_flag_naming_a_missing_file(cli: Cli) -> None:
    assert error_line(cli("--kubeconfig", "/nowhere/config", "list")) == (
        "kubesft: error: no kubeconfig: --kubeconfig /nowhere/config does not exist"
    )


def test_in_a_pod_without_a_service_account(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    assert error_line(cli("list")) == (
        "kubesft: error: no kubeconfig and no in-cluster credentials: Service host/port is not set."
    )


def test_a_context_that_is_not_in_the_kubeconfig(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    assert error_line(cli("--context", "prod", "list")) == (
        f"kubesft: error: context prod is not in kubeconfig {tmp_path}/kubeconfig (it has: fake)"
    )


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (
            {"apiVersion": "v1", "kind": "Config", "contexts": []},
            "Invalid kube-config file. Expected key current-context",
        ),
        (": : :\n  - [", "while parsing a block mapping expected <block end>, but found ':'"),
    ],
)
def test_a_kubeconfig_that_cannot_be_used(cli: Cli, tmp_path: Path, content: object, cause: str) -> None:
    path = tmp_path / "config"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    line = error_line(cli("--kubeconfig", str(path), "list"))
    assert line.startswith(f"kubesft: error: kubeconfig {path} cannot be used: {cause}"), line


def test_a_context_whose_cluster_is_missing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "config"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    line = error_line(cli("--kubeconfig", str(path), "list"))
    assert line == (
        f"kubesft: error: kubeconfig {path} cannot be used: Invalid kube-config file. "
        f"Expected object with name gone in {path}/clusters list"
    )


def test_an_api_server_that_does_not_answer(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KUBECONFIG", str(FakeApi().kubeconfig(tmp_path, server=f"http://127.0.0.1:{port}")))
    line = error_line(cli("status", "smol"))
    assert line.startswith(f"kubesft: error: cannot reach the API server at http://127.0.0.1:{port}: "), line
    assert "Connection refused" in line


# --- the API server's refusals -------------------------------------------------------------------


def test_crd_not_installed_page_not_found(cli: Cli, api: FakeApi) -> None:
    # The fake answers unknown paths as the API server does for a group it does not serve.
    expected = (
        "kubesft: error: the SFTJob resource (sftjobs.kubesft.io/v1alpha1) is not installed in this cluster: "
        "install the kubesft chart (or kubectl apply -f crds/)"
    )
    assert error_line(cli("list")) == expected
    assert error_line(cli("status", "smol")) == expected


def test_crd_not_installed_status_without_a_name(cli: Cli, api: FakeApi) -> None:
    api.on(
        "GET",
        f"{JOBS}/smol",
        Answer(404, status_body(404, "NotFound", "the server could not find the requested resource")),
    )
    assert "is not installed in this cluster" in error_line(cli("status", "smol"))


def test_not_found(cli: Cli, api: FakeApi) -> None:
    body = status_body(
        404,
        "NotFound",
        'sftjobs.kubesft.io "smol" not found',
        name="smol",
        group="kubesft.io",
        kind="sftjobs",
    )
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", "")):
        api.on(method, f"{JOBS}/smol{suffix}", Answer(404, body))
    for command in ("status", "suspend", "resume", "delete", "wait", "logs", "download"):
        args = (command, "smol", "/tmp/x") if command == "download" else (command, "smol")
        assert error_line(cli(*args)) == "kubesft: error: SFTJob smol not found in namespace team", command


def test_forbidden_names_the_verb_and_resource(cli: Cli, api: FakeApi) -> None:
    list_message = 'sftjobs.kubesft.io is forbidden: User "bob" cannot list resource "sftjobs" in API group "kubesft.io" in the namespace "team"'
    api.on(
        "GET",
        JOBS,
        Answer(403, status_body(403, "Forbidden", list_message, group="kubesft.io", kind="sftjobs")),
    )
    assert (
        error_line(cli("list"))
        == f"kubesft: error: forbidden: you may not list sftjobs.kubesft.io in namespace team ({list_message})"
    )
    api.on("GET", "/apis/kubesft.io/v1alpha1/sftjobs", Answer(403, status_body(403, "Forbidden", "no")))
    assert (
        error_line(cli("list", "-A"))
        == "kubesft: error: forbidden: you may not list sftjobs.kubesft.io in any namespace (no)"
    )
    api.on("PATCH", f"{JOBS}/smol", Answer(403, status_body(403, "Forbidden", "no patch")))
    assert error_line(cli("suspend", "smol")) == (
        "kubesft: error: forbidden: you may not patch sftjobs.kubesft.io smol in namespace team (no patch)"
    )
    api.on("POST", JOBS, Answer(403, status_body(403, "Forbidden", "no create")))
    assert error_line(cli("run", "--name", "smol", *SPEC_FLAGS)) == (
        "kubesft: error: forbidden: you may not create sftjobs.kubesft.io smol in namespace team (no create)"
    )


def test_forbidden_to_read_pods_or_events(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob()))
    api.on("GET", "/api/v1/namespaces/team/pods", Answer(403, status_body(403, "Forbidden", "no pods")))
    api.on("GET", "/api/v1/namespaces/team/events", Answer(403, status_body(403, "Forbidden", "no events")))
    assert (
        error_line(cli("logs", "smol"))
        == "kubesft: error: forbidden: you may not list pods in namespace team (no pods)"
    )
    assert error_line(cli("status", "smol")) == (
        "kubesft: error: forbidden: you may not list events in namespace team (no events)"
    )


def test_unauthorized(cli: Cli, api: FakeApi) -> None:
    api.on("GET", JOBS, Answer(401, status_body(401, "Unauthorized", "Unauthorized")))
    assert error_line(cli("list")) == (
        "kubesft: error: unauthorized: the API server did not accept your credentials for list "
        "sftjobs.kubesft.io (Unauthorized); log in again or check the kubeconfig's user"
    )


def test_already_exists(cli: Cli, api: FakeApi) -> None:
    api.on(
        "POST",
        JOBS,
        Answer(409, status_body(409, "AlreadyExists", 'sftjobs.kubesft.io "smol" already exists')),
    )
    assert error_line(cli("run", "--name", "smol", *SPEC_FLAGS)) == (
        "kubesft: error: SFTJob smol already exists in namespace team; pick another --name"
    )


def test_refused_by_admission_or_schema(cli: Cli, api: FakeApi) -> None:
    message = (
        'admission webhook "validate.sftjobs.kubesft.io" denied the request: metadata.name: '
        "'Smol' must be a DNS label"
    )
    api.on("POST", JOBS, Answer(422, status_body(422, "Invalid", message)))
    assert (
        error_line(cli("run", "--name", "Smol", *SPEC_FLAGS))
        == f"kubesft: error: the API server refused SFTJob Smol: {message}"
    )


def test_any_other_answer_names_the_status(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(500, status_body(500, "InternalError", "etcd is\nunhappy")))
    assert error_line(cli("status", "smol")) == (
        "kubesft: error: get sftjobs.kubesft.io smol failed with HTTP 500: etcd is unhappy"
    )


# --- flags and specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--max-steps", "ten"], "argument --max_steps/--max-steps: expected an integer, got 'ten'"),
        (
            ["run", "--learning_rate", "fast"],
            "argument --learning_rate/--learning-rate: expected a number, got 'fast'",
        ),
        (["run", "--packing", "maybe"], "argument --packing: expected true or false, got 'maybe'"),
        (["run", "--env", "NOVALUE"], "argument --env: expected KEY=VALUE, got 'NOVALUE'"),
        (
            ["run", "--chat_template_path", "/nowhere.jinja"],
            "argument --chat_template_path: cannot read /nowhere.jinja: No such file or directory",
        ),
        (["run", "--weight_decai", "0.1"], "unknown flag --weight_decai (did you mean --weight_decay?)"),
        (
            ["run", "--warmup_steps", "10"],
            "--warmup_steps: set by kubesft; use spec.training.warmupRatio",
        ),
        (
            ["run", "--save_only_model"],
            "--save_only_model: refused: checkpoints without the optimizer, scheduler and RNG states "
            "cannot resume exactly",
        ),
        (["run", "stray"], "unexpected argument 'stray'"),
        (["logs", "smol", "--rank", "first"], "argument --rank: expected an integer, got 'first'"),
        (["wait", "smol", "--timeout", "soon"], "argument --timeout: expected a number, got 'soon'"),
        (["status"], "the following arguments are required: name"),
        (["list", "--colour"], "unrecognized arguments: --colour"),
        ([], "the following arguments are required: COMMAND"),
        (
            ["train"],
            "argument COMMAND: invalid choice: 'train' (choose from 'run', 'list', 'status', 'logs', 'wait', 'suspend', 'resume', 'delete', 'validate', 'download')",
        ),
    ],
)
def test_a_bad_flag_names_the_flag(cli: Cli, args: list[str], message: str) -> None:
    assert error_line(cli(*args), code=2) == f"kubesft: error: {message}"


def test_an_invalid_spec_names_the_flags_and_fields(cli: Cli) -> None:
    result = cli(
        "run", "--model", "HuggingFaceTB/SmolLM2-135M", "--dataset", "d", "--learning-rate", "5", "--dry-run"
    )
    assert error_line(result) == (
        "kubesft: error: invalid SFTJob spec: --learning-rate: must be ≤ 1, got 5 (spec.training.learningRate); "
        "spec.output.uri: required: where the trained model is written (set it with --output)"
    )
    result = cli("run", *SPEC_FLAGS, "--set", "training.maxLength=4", "--dtype", "float8", "--dry-run")
    assert error_line(result) == (
        "kubesft: error: invalid SFTJob spec: --dtype: must be one of 'auto', 'bfloat16', 'float16' or 'float32', "
        "got 'float8' (spec.model.dtype); --set: must be ≥ 8, got 4 (spec.training.maxLength)"
    )


def test_run_file_problems(cli: Cli, tmp_path: Path) -> None:
    two = tmp_path / "two.yaml"
    two.write_text("a: 1\n---\nb: 2\n")
    assert (
        error_line(cli("run", "-f", str(two)), code=2)
        == f"kubesft: error: -f {two}: expected one SFTJob, found 2 documents"
    )
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\n")
    assert error_line(cli("run", "-f", str(pod)), code=2) == (
        f"kubesft: error: -f {pod}: expected kind SFTJob of kubesft.io/v1alpha1, got 'Pod'"
    )
    assert error_line(cli("run", "-f", str(tmp_path / "none.yaml"))) == (
        f"kubesft: error: cannot read {tmp_path}/none.yaml: No such file or directory"
    )


# --- following a job -----------------------------------------------------------------------------


def running(step: int) -> dict[str, object]:
    return sftjob(phase="Running", progress={"step": step, "totalSteps": 10, "loss": 2.5})


def test_wait_on_a_failed_job_prints_its_reason(cli: Cli, api: FakeApi) -> None:
    failed = sftjob(
        phase="Failed",
        conditions=[
            {"type": "Failed", "status": "True", "reason": "InvalidData", "message": "row 7: role 'robot'"}
        ],
    )
    api.on("GET", f"{JOBS}/smol", Answer(200, running(1)))
    api.on("GET", JOBS, Answer(200, watch_body(("MODIFIED", running(2)), ("MODIFIED", failed))), watch=True)
    result = cli("wait", "smol")
    assert result.code == 1
    assert result.err.splitlines()[-1] == "SFTJob smol failed: InvalidData: row 7: role 'robot'"
    assert "Traceback" not in result.err


def test_wait_gives_up_at_its_timeout(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, running(3)))
    api.on("GET", JOBS, Answer(200, b"", delay=0.05), watch=True)
    assert last_line(cli("wait", "smol", "--timeout", "0.3")) == (
        "kubesft: error: SFTJob smol did not finish within 0.3s (phase Running)"
    )


def test_wait_on_a_job_deleted_meanwhile(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, running(3)))
    api.on("GET", JOBS, Answer(200, watch_body(("DELETED", running(3)))), watch=True)
    assert last_line(cli("wait", "smol")) == ("kubesft: error: SFTJob smol was deleted while waiting for it")


def test_a_watch_the_api_server_ends_with_an_error(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, running(3)))
    error = status_body(500, "InternalError", "etcd lost")
    api.on("GET", JOBS, Answer(200, watch_body(("ERROR", error))), watch=True)
    assert last_line(cli("wait", "smol")) == (
        "kubesft: error: watch sftjobs.kubesft.io smol failed with HTTP 500: InternalError: etcd lost"
    )


def test_a_watch_whose_connection_drops(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, running(3)))
    api.on("GET", JOBS, Answer(200, watch_body(("MODIFIED", running(4)))[:20], cut=True), watch=True)
    line = last_line(cli("wait", "smol"))
    assert line.startswith(f"kubesft: error: lost the watch on {api.url}: "), line


def test_a_status_from_a_newer_operator(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Queued")))
    assert error_line(cli("status", "smol")) == (
        "kubesft: error: status of SFTJob smol is not one this client reads (status.phase: must be one of 'Pending', "
        "'Validating', 'Running', 'Suspended', 'Succeeded' or 'Failed', got 'Queued'): upgrade kubesft"
    )


def test_an_unexpected_failure_is_one_line_too(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk\nfull")

    monkeypatch.setattr("kubesft.commands.handlers.job_table", broken)
    api.on("GET", JOBS, Answer(200, {"items": [sftjob()], "metadata": {"resourceVersion": "1"}}))
    assert main(["list"]) == 1
    assert capsys.readouterr().err == (
        "kubesft: error: unexpected RuntimeError: disk full (KUBESFT_DEBUG=1 shows where)\n"
    )
