"""The operator's configuration, read from ``KUBESFT_*`` environment variables.

The Helm chart maps its values onto these variables; every one has a default that works for a
single replica watching the whole cluster.

| Variable | Default | Meaning |
|---|---|---|
| ``KUBESFT_TRAINER_IMAGE`` | ``ghcr.io/kubesft/kubesft-trainer:0.1.0`` | Trainer image when ``spec.resources.image`` is unset |
| ``KUBESFT_TRAINER_IMAGE_PULL_SECRETS`` | (none) | Comma-separated pull Secrets given to trainer pods |
| ``KUBESFT_PROGRESS_INTERVAL_SECONDS`` | ``15`` | How often rank 0's ``/progress`` is read, and the resync period |
| ``KUBESFT_PROGRESS_TIMEOUT_SECONDS`` | ``2`` | Timeout of one ``/progress`` read |
| ``KUBESFT_WATCH_NAMESPACES`` | (all) | Comma-separated namespaces to watch; empty watches the whole cluster |
| ``KUBESFT_METRICS_PORT`` | ``8080`` | Port of the operator's ``/metrics`` |
| ``KUBESFT_HEALTH_PORT`` | ``8081`` | Port of ``/healthz`` (liveness and readiness) |
| ``KUBESFT_LISTEN_ADDRESS`` | ``0.0.0.0`` | Address the metrics and health servers bind to |
| ``KUBESFT_WEBHOOK_ENABLED`` | ``true`` | Serve the validating admission webhook |
| ``KUBESFT_WEBHOOK_LISTEN_ADDRESS`` | ``0.0.0.0`` | Address the webhook server binds to |
| ``KUBESFT_WEBHOOK_PORT`` | ``9443`` | Port the webhook server listens on (HTTPS) |
| ``KUBESFT_WEBHOOK_SERVICE_NAME`` | (none) | In a cluster: the Service in front of the webhook port |
| ``KUBESFT_WEBHOOK_SERVICE_NAMESPACE`` | ``KUBESFT_POD_NAMESPACE`` | Namespace of that Service |
| ``KUBESFT_WEBHOOK_SERVICE_PORT`` | ``443`` | Port of that Service |
| ``KUBESFT_WEBHOOK_HOST`` | (none) | Without a Service: host name or IP the API server calls directly |
| ``KUBESFT_WEBHOOK_CERT_FILE`` | (none) | PEM server certificate (e.g. a mounted ``tls.crt``) |
| ``KUBESFT_WEBHOOK_KEY_FILE`` | (none) | PEM private key of that certificate |
| ``KUBESFT_WEBHOOK_CA_FILE`` | (none) | PEM CA bundle the API server trusts; defaults to the certificate |
| ``KUBESFT_WEBHOOK_CONFIGURATION`` | ``kubesft.io`` | Name of the installed Validating- and MutatingWebhookConfiguration the operator points at itself; empty leaves them to the installer |
| ``KUBESFT_WEBHOOK_FAILURE_POLICY`` | ``Fail`` | ``Fail`` or ``Ignore``: what the API server does when it cannot reach the webhook |
| ``KUBESFT_PEERING_NAME`` | ``kubesft`` | Kopf peering object replicas use to elect the active one |
| ``KUBESFT_PEERING_PRIORITY`` | (random) | This replica's peering priority; the highest is active |
| ``KUBESFT_STANDALONE`` | ``false`` | Run without peering (a single replica) |
| ``KUBESFT_POD_NAMESPACE`` | ``default`` | The operator's own namespace (from the downward API) |
| ``KUBESFT_LOG_LEVEL`` | ``INFO`` | Log level |
| ``KUBESFT_SIGNING_KEY`` | (none) | Key that signs the admission and applied-spec records; without one they are neither written nor checked |
| ``KUBESFT_POLICY_ALLOWED_IMAGES`` | the trainer image's repository | JSON list of fnmatch patterns ``spec.resources.image`` must match |
| ``KUBESFT_POLICY_ALLOWED_PRIORITY_CLASSES`` | ``[]`` (none) | JSON list of patterns ``spec.resources.priorityClassName`` must match |
| ``KUBESFT_POLICY_STORAGE_PREFIXES`` | ``[]`` (any) | JSON list of templates (``s3://models/{namespace}/``) checkpoints and output must fall under |
| ``KUBESFT_POLICY_ALLOW_AMBIENT_CREDENTIALS`` | ``false`` | Let jobs use S3 without ``checkpoints.credentialsSecret`` |
| ``KUBESFT_NETWORK_POLICY_ENABLED`` | ``true`` | Create a NetworkPolicy for each SFTJob's trainer pods |
| ``KUBESFT_NETWORK_POLICY_OPERATOR_LABELS`` | ``{}`` | JSON labels of the operator's pods, which may read ``/progress`` |
| ``KUBESFT_NETWORK_POLICY_PROMETHEUS`` | ``[]`` | JSON list of NetworkPolicy peers that may scrape trainer metrics |
| ``KUBESFT_NETWORK_POLICY_RESTRICT_EGRESS`` | ``false`` | Allow trainer pods only the egress below (and their own job's pods) |
| ``KUBESFT_NETWORK_POLICY_EGRESS`` | ``[]`` | JSON list of NetworkPolicy egress rules for trainer pods |

Without certificate files the operator makes a self-signed certificate at start-up, which
suits one replica. Replicas behind one Service need one shared certificate (cert-manager or a
Secret), or each would publish its own CA bundle.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kubesft_operator.policy import NAMESPACE_PLACEHOLDER, Policy, repository_patterns
from kubesft_operator.records import Signer

DEFAULT_TRAINER_IMAGE = "ghcr.io/kubesft/kubesft-trainer:0.1.0"


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class OperatorSettings(BaseSettings):
    """Everything the operator can be told from outside, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="KUBESFT_", extra="ignore", frozen=True)

    trainer_image: str = Field(default=DEFAULT_TRAINER_IMAGE, min_length=1)
    trainer_image_pull_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    progress_interval_seconds: float = Field(default=15.0, ge=1.0, le=3600.0)
    progress_timeout_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    watch_namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_port: int = Field(default=8080, ge=1, le=65535)
    health_port: int = Field(default=8081, ge=1, le=65535)
    listen_address: str = "0.0.0.0"
    webhook_enabled: bool = True
    webhook_listen_address: str = "0.0.0.0"
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    webhook_service_name: str | None = None
    webhook_service_namespace: str | None = None
    webhook_service_port: int = Field(default=443, ge=1, le=65535)
    webhook_host: str | None = None
    webhook_cert_file: str | None = None
    webhook_key_file: str | None = None
    webhook_ca_file: str | None = None
    webhook_configuration: str = "kubesft.io"
    webhook_failure_policy: Literal["Fail", "Ignore"] = "Fail"
    peering_name: str = Field(default="kubesft", min_length=1)
    peering_priority: int = Field(default_factory=lambda: random.randint(1, 1_000_000))
    standalone: bool = False
    pod_namespace: str = "default"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    signing_key: SecretStr | None = None
    policy_allowed_images: list[str] = Field(default_factory=list)
    policy_allowed_priority_classes: list[str] = Field(default_factory=list)
    policy_storage_prefixes: list[str] = Field(default_factory=list)
    policy_allow_ambient_credentials: bool = False
    network_policy_enabled: bool = True
    network_policy_operator_labels: dict[str, str] = Field(default_factory=dict)
    network_policy_prometheus: list[dict[str, Any]] = Field(default_factory=list)
    network_policy_restrict_egress: bool = False
    network_policy_egress: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("trainer_image_pull_secrets", "watch_namespaces", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_list(value)

    @field_validator(
        "webhook_service_name",
        "webhook_service_namespace",
        "webhook_host",
        "webhook_cert_file",
        "webhook_key_file",
        "webhook_ca_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("signing_key", mode="before")
    @classmethod
    def _no_key(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("signing_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("KUBESFT_SIGNING_KEY needs at least 16 bytes")
        return value

    @field_validator("policy_storage_prefixes")
    @classmethod
    def _prefix_templates(cls, value: list[str]) -> list[str]:
        for template in value:
            if not re.match(r"^(s3://[a-z0-9{]|pvc://|/)", template):
                raise ValueError(f"'{template}' is not an s3://, pvc:// or absolute path prefix")
            if re.sub(re.escape(NAMESPACE_PLACEHOLDER), "", template).count("{"):
                raise ValueError(f"'{template}': {NAMESPACE_PLACEHOLDER} is the only placeholder")
        return value

    @model_validator(mode="after")
    def _cert_pair(self) -> OperatorSettings:
        if (self.webhook_cert_file is None) != (self.webhook_key_file is None):
            raise ValueError("KUBESFT_WEBHOOK_CERT_FILE and KUBESFT_WEBHOOK_KEY_FILE go together")
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces

    @property
    def policy(self) -> Policy:
        return Policy(
            allowed_images=tuple(self.policy_allowed_images or repository_patterns(self.trainer_image)),
            allowed_priority_classes=tuple(self.policy_allowed_priority_classes),
            storage_prefixes=tuple(self.policy_storage_prefixes),
            allow_ambient_credentials=self.policy_allow_ambient_credentials,
        )

    @property
    def signer(self) -> Signer | None:
        """Signs the operator's records; None without a key, when records are not used."""
        if self.signing_key is None:
            return None
        return Signer(self.signing_key.get_secret_value().encode())

    @property
    def admission_records_required(self) -> bool:
        """Whether a job may start only with a good admission record: the webhook writes them,
        so only while it runs, and they are signed, so only with a key."""
        return self.webhook_enabled and self.signing_key is not None


@lru_cache(maxsize=1)
def get_settings() -> OperatorSettings:
    """The settings of this process, read once from the environment."""
    return OperatorSettings()
