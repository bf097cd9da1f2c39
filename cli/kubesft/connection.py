"""The user's cluster connection: kubeconfig and context as kubectl reads them, or in-cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config import ConfigException

from kubesft.errors import ConfigurationError

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Connection:
    """An API client and the namespace commands use when none is given."""

    api: client.ApiClient
    namespace: str
    context: str | None
    """The kubeconfig context in use; None in a pod (in-cluster credentials)."""

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)


def _paths(kubeconfig: str | None) -> list[Path]:
    raw = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part]


def _in_cluster() -> Connection:
    try:
        config.load_incluster_config()
    except ConfigException as error:
        raise ConfigurationError(f"no kubeconfig and no in-cluster credentials: {error}") from None
    try:
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return Connection(client.ApiClient(), namespace, None)


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Connection:
    """Connect as kubectl would: ``kubeconfig`` or $KUBECONFIG or ~/.kube/config, its current
    context unless ``context`` is given; inside a pod without a kubeconfig, the pod's account.
    The namespace is ``namespace``, else the context's, else ``default``."""
    paths = _paths(kubeconfig)
    existing = [path for path in paths if path.is_file()]
    if not existing:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            found = _in_cluster()
            return Connection(found.api, namespace or found.namespace, None)
        where = ", ".join(str(path) for path in paths)
        if kubeconfig:
            raise ConfigurationError(f"no kubeconfig: --kubeconfig {where} does not exist")
        if os.environ.get("KUBECONFIG"):
            raise ConfigurationError(f"no kubeconfig: KUBECONFIG names {where}, which does not exist")
        raise ConfigurationError(
            f"no kubeconfig: {where} does not exist (pass --kubeconfig or set KUBECONFIG)"
        )
    joined = os.pathsep.join(str(path) for path in existing)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=joined)
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as error:
        raise ConfigurationError(f"kubeconfig {joined} cannot be used: {_one_line(error)}") from None
    chosen = _context(contexts or [], current, context, joined)
    try:
        api = config.new_client_from_config(config_file=joined, context=chosen["name"], persist_config=False)
    except (ConfigException, OSError, ValueError) as error:
        raise ConfigurationError(
            f"context {chosen['name']} of kubeconfig {joined} cannot be used: {_one_line(error)}"
        ) from None
    default = (chosen.get("context") or {}).get("namespace") or "default"
    return Connection(api, namespace or str(default), str(chosen["name"]))


def _context(
    contexts: list[dict[str, Any]], current: dict[str, Any], wanted: str | None, path: str
) -> dict[str, Any]:
    # The loader refuses a kubeconfig without a current-context, so ``current`` is always one.
    if wanted is None:
        return current
    for item in contexts:
        if item.get("name") == wanted:
            return item
    names = ", ".join(str(item.get("name")) for item in contexts) or "none"
    raise ConfigurationError(f"context {wanted} is not in kubeconfig {path} (it has: {names})")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
