"""The operator started from its real image, as the chart's Deployment runs it, beside the cluster.

Pods get no ServiceAccount token here, so the operator does not run as a pod: the sandbox starts
it in the image's root filesystem, as the Deployment's user, under its securityContext, with its
emptyDir volumes and a kubeconfig for the chart's ServiceAccount where a pod would have its
token. It shares the host's network, so the API server and the tests reach it on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from testing.devcluster.image_mode import container_user, image_argv, image_env, rootfs_plan
from testing.devcluster.image_store import find_image
from testing.devcluster.pod_env import ContainerConfigError
from testing.devcluster.pod_runtime import SANDBOX

CREDENTIALS = "/var/run/secrets/kubesft.io/serviceaccount"


def _credentials(kubeconfig: Path, directory: Path, uid: int, gid: int) -> str:
    """The kubeconfig and its files, readable by the operator's user as a projected token is."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["certificate-authority"] = _copy(
            cluster["cluster"]["certificate-authority"], directory
        )
    for user in config["users"]:
        for key in ("client-certificate", "client-key"):
            if key in user["user"]:
                user["user"][key] = _copy(user["user"][key], directory)
    (directory / "kubeconfig").write_text(yaml.safe_dump(config, sort_keys=False))
    for path in [directory, *directory.iterdir()]:
        os.chown(path, uid, gid)
    return f"{CREDENTIALS}/kubeconfig"


def _copy(source: str, directory: Path) -> str:
    shutil.copyfile(source, directory / Path(source).name)
    return f"{CREDENTIALS}/{Path(source).name}"


def _volumes(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any], directory: Path
) -> list[dict[str, Any]]:
    """The Deployment's emptyDir mounts as host directories."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            raise ContainerConfigError(
                f"volume {mount['name']}: only emptyDir volumes are given to the operator"
            )
        source = directory / "volumes" / mount["name"]
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        source.chmod(0o777)
        mounts.append({"source": str(source), "target": mount["mountPath"], "readOnly": False})
    return mounts


def operator_in_image(
    image_name: str,
    pod_spec: Mapping[str, Any],
    env: Mapping[str, str],
    kubeconfig: Path,
    directory: Path,
) -> list[str]:
    """The command line that starts the Deployment's operator container inside ``image_name``."""
    image = find_image(image_name)
    if image is None:
        raise LookupError(f"image {image_name} is not in the local image store; run `make images`")
    (container,) = pod_spec["containers"]
    pod = {"spec": pod_spec}
    user = container_user(pod, container, image)
    directory.mkdir(parents=True, exist_ok=True)
    credentials = directory / "credentials"
    container_env = {
        **image_env(image, {}),
        **env,
        "KUBECONFIG": _credentials(kubeconfig, credentials, user["uid"], user["gid"]),
    }
    mounts = [
        {"source": str(credentials), "target": CREDENTIALS, "readOnly": True},
        *_volumes(pod_spec, container, directory),
    ]
    start_error = directory / "start-error"
    plan = {
        "podDir": str(directory),
        "parentPid": os.getpid(),
        "cgroupProcs": None,
        "netns": None,
        "hostname": socket.gethostname(),
        "mounts": mounts,
        "argv": image_argv(container, container_env, image),
        "env": container_env,
        "createdPathsFile": str(directory / "created-paths"),
        "startErrorFile": str(start_error),
        "image": rootfs_plan(directory, container, image),
        "user": user,
    }
    plan_file = directory / "plan.json"
    plan_file.write_text(json.dumps(plan))
    return [sys.executable, "-I", "-S", str(SANDBOX), str(plan_file)]
