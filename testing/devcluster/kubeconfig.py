"""Kubeconfig files for the local cluster."""

from __future__ import annotations

from pathlib import Path

import yaml

from testing.devcluster.pki import CertificatePair

CONTEXT = "kubesft-dev"


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    user: str,
    client: CertificatePair | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> Path:
    """A one-context kubeconfig that authenticates with a client certificate or a bearer token."""
    if (client is None) == (token is None):
        raise ValueError("a kubeconfig needs exactly one of a client certificate or a token")
    credentials: dict[str, str] = (
        {"token": token}
        if token is not None
        else {"client-certificate": str(client.cert), "client-key": str(client.key)}  # type: ignore[union-attr]
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
