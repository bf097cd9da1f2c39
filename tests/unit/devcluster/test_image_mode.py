"""How the process node turns an image's config and a pod's securityContext into a container's
command line and user, as a container runtime does."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.devcluster.image_mode import container_user, image_argv, image_env
from testing.devcluster.image_store import LocalImage
from testing.devcluster.pod_env import ContainerConfigError


def _image(rootfs: Path, user: str = "") -> LocalImage:
    (rootfs / "etc").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nkubesft:x:1000:1001::/home:/bin/sh\n")
    return LocalImage(
        name="localhost/example:1",
        image_id="0" * 64,
        rootfs=rootfs,
        entrypoint=("python", "-m", "app"),
        cmd=("--serve",),
        env={"PATH": "/opt/bin:/usr/bin", "APP": "1"},
        working_dir="/work",
        user=user,
    )


def test_command_replaces_entrypoint_and_cmd_args_replace_only_cmd(tmp_path: Path) -> None:
    image = _image(tmp_path)
    env = {"WHO": "world"}
    assert image_argv({}, env, image) == ["python", "-m", "app", "--serve"]
    assert image_argv({"args": ["--once", "$(WHO)"]}, env, image) == [
        "python",
        "-m",
        "app",
        "--once",
        "world",
    ]
    assert image_argv({"command": ["sh"]}, env, image) == ["sh"]
    assert image_argv({"command": ["sh"], "args": ["-c", "true"]}, env, image) == ["sh", "-c", "true"]


def test_image_without_entrypoint_or_cmd_needs_a_command(tmp_path: Path) -> None:
    image = LocalImage("bare:1", "1" * 64, tmp_path, (), (), {}, "/", "")
    with pytest.raises(ContainerConfigError, match="no ENTRYPOINT or CMD"):
        image_argv({}, {}, image)


def test_image_env_comes_first_and_the_node_adds_its_own(tmp_path: Path) -> None:
    env = image_env(_image(tmp_path), {"APP": "2", "EXTRA": "x"})
    assert env["PATH"] == "/opt/bin:/usr/bin"
    assert (env["APP"], env["EXTRA"]) == ("2", "x")


def test_security_context_user_wins_over_the_image_user(tmp_path: Path) -> None:
    image = _image(tmp_path, user="kubesft")
    pod = {
        "spec": {
            "securityContext": {"runAsUser": 7, "runAsGroup": 8, "fsGroup": 9, "supplementalGroups": [10]}
        }
    }
    container = {"securityContext": {"runAsUser": 11}}
    assert container_user(pod, container, image) == {
        "uid": 11,
        "gid": 8,
        "groups": [8, 9, 10],
        "noNewPrivs": False,
    }


def test_image_user_name_resolves_in_the_images_passwd(tmp_path: Path) -> None:
    named = container_user({}, {}, _image(tmp_path, user="kubesft"))
    assert (named["uid"], named["gid"], named["groups"]) == (1000, 1001, [1001])
    no_escalation = {"securityContext": {"allowPrivilegeEscalation": False}}
    numbered = container_user({}, no_escalation, _image(tmp_path, user="1000:5"))
    assert (numbered["uid"], numbered["gid"], numbered["noNewPrivs"]) == (1000, 5, True)
    assert container_user({}, {}, _image(tmp_path))["uid"] == 0


def test_run_as_non_root_refuses_an_image_that_runs_as_root(tmp_path: Path) -> None:
    with pytest.raises(ContainerConfigError, match="runAsNonRoot"):
        container_user({}, {"securityContext": {"runAsNonRoot": True}}, _image(tmp_path))
