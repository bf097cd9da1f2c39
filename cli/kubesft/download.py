"""Copies a finished SFTJob's output from object storage to a local folder.

It uses the job's S3 endpoint and region (``spec.checkpoints``) and a credential of the person
running it (AWS variables, profile or SSO), never the Secret the pods use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubesft.errors import DownloadError
from kubesft.job import SFTJob
from kubesft_api.uris import parse_uri


def output_location(job: SFTJob) -> tuple[str, str, str]:
    """(URI, bucket, prefix) of the job's output, or why it cannot be downloaded from here."""
    uri = (job.status.output_uri if job.status else None) or job.spec.output.uri or ""
    if job.phase != "Succeeded":
        raise DownloadError(
            f"SFTJob {job.name} has not succeeded (phase {job.phase or 'unknown'}); "
            f"its model is written to {uri} when training finishes"
        )
    try:
        parsed = parse_uri(uri)
    except ValueError as error:
        raise DownloadError(f"the output of SFTJob {job.name} cannot be downloaded: {error}") from None
    if parsed.scheme == "s3":
        return uri, parsed.bucket_or_claim, parsed.path.strip("/")
    if parsed.scheme == "pvc":
        raise DownloadError(
            f"the output of SFTJob {job.name} ({uri}) is on PersistentVolumeClaim {parsed.bucket_or_claim}: "
            "it cannot be downloaded from here; copy it from a pod that mounts the claim"
        )
    raise DownloadError(
        f"the output of SFTJob {job.name} ({uri}) is a path on the trainer's node: it cannot be downloaded "
        "from here"
    )


def _s3_client(job: SFTJob) -> Any:
    try:
        import boto3
    except ImportError:
        raise DownloadError("download needs boto3: pip install 'kubesft[cli]'") from None
    settings = job.spec.checkpoints
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region
    )


def _storage_error(error: Exception, uri: str, endpoint: str | None) -> DownloadError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return DownloadError(
            f"no AWS credentials to read {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    if isinstance(error, EndpointConnectionError):
        return DownloadError(f"cannot reach object storage at {endpoint or 'AWS S3'} to read {uri}: {error}")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, message = details.get("Code", "error"), details.get("Message", "")
        return DownloadError(
            f"object storage refused to read {uri}: {code}{': ' + message if message else ''}"
        )
    return DownloadError(f"reading {uri} failed: {type(error).__name__}: {error}")


def download_output(
    job: SFTJob,
    directory: Path,
    *,
    on_file: Callable[[str, int], None] | None = None,
    s3_client: Any = None,
) -> list[Path]:
    """Download every object under the job's output URI into ``directory``; the paths written."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri, bucket, prefix = output_location(job)
    s3 = s3_client if s3_client is not None else _s3_client(job)
    folder = f"{prefix}/" if prefix else ""
    root = directory.resolve()
    written: list[Path] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            for item in page.get("Contents", []):
                relative = str(item["Key"])[len(folder) :]
                if not relative or relative.endswith("/"):
                    continue
                target = (root / relative).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(f"object {item['Key']} of {uri} would be written outside {directory}")
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
                written.append(target)
                if on_file is not None:
                    on_file(relative, int(item.get("Size", 0)))
    except (BotoCoreError, ClientError) as error:
        raise _storage_error(error, uri, job.spec.checkpoints.endpoint_url) from None
    if not written:
        raise DownloadError(f"nothing to download: there are no objects under {uri}")
    return written
