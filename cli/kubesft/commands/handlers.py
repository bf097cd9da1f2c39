"""What each ``kubesft`` subcommand does, on top of ``kubesft.Client``."""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from kubesft.client import Client
from kubesft.commands.follow import follow
from kubesft.commands.run_flags import GIVEN, Given, name_flags, sft_config_extras, spec_from_flags
from kubesft.commands.show import job_table, status_text
from kubesft.commands.validate import read_documents, validate
from kubesft.errors import InvalidError, KubesftError
from kubesft.job import API_VERSION, SFTJob


class UsageError(KubesftError):
    """A bad flag or flag value; exits 2 like argparse does."""


def client(args: argparse.Namespace) -> Client:
    return Client(
        getattr(args, "kubeconfig", None), getattr(args, "context", None), getattr(args, "namespace", None)
    )


def generated_name(spec: dict[str, Any]) -> str:
    """``<model>-<6 hex>``: a DNS label, short enough for the Job and pod names made from it."""
    model = spec.get("model") or {}
    source = str(model.get("name") or model.get("uri") or "sft")
    base = re.sub(r"[^a-z0-9]+", "-", source.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")
    base = base[:40].rstrip("-") or "sft"
    if not base[0].isalpha():
        base = f"sft-{base}"
    return f"{base}-{secrets.token_hex(3)}"


def _file_job(path: str) -> dict[str, Any]:
    documents = read_documents(path)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise UsageError(f"-f {path}: expected one SFTJob, found {len(documents)} documents")
    doc: dict[str, Any] = documents[0]
    if doc.get("kind") != "SFTJob" or doc.get("apiVersion") != API_VERSION:
        raise UsageError(f"-f {path}: expected kind SFTJob of {API_VERSION}, got {doc.get('kind')!r}")
    return doc


def build_job(args: argparse.Namespace, extras: list[str]) -> SFTJob:
    """The SFTJob that ``run`` creates: -f FILE (if any) overlaid with the flags."""
    given: Given = dict(getattr(args, GIVEN, None) or {})
    from_extras, problems = sft_config_extras(extras)
    if problems:
        raise UsageError("; ".join(problems))
    given.update(from_extras)
    doc = _file_job(args.file) if args.file else {}
    metadata = doc.get("metadata") or {}
    spec = spec_from_flags(given, doc.get("spec") or {})
    labels = dict(metadata.get("labels") or {})
    for key, value in args.label or []:
        labels[key] = value
    name = args.name or metadata.get("name") or generated_name(spec)
    try:
        job = SFTJob.from_spec(
            name, spec, namespace=getattr(args, "namespace", None) or metadata.get("namespace"), labels=labels
        )
    except InvalidError as error:
        problems = name_flags(error.problems, given)
        raise InvalidError("invalid SFTJob spec: " + "; ".join(problems), problems) from None
    job.annotations = dict(metadata.get("annotations") or {})
    return job


def run(args: argparse.Namespace, extras: list[str]) -> int:
    job = build_job(args, extras)
    if args.dry_run:
        sys.stdout.write(job.to_yaml())
        return 0
    kube = client(args)
    created = kube.create(job)
    print(f"sftjob {created.name} created in namespace {created.namespace}")
    if args.wait:
        return follow(kube, created.name, created.namespace, args.timeout)
    return 0


def list_jobs(args: argparse.Namespace, extras: list[str]) -> int:
    jobs = client(args).list(all_namespaces=args.all_namespaces)
    if not jobs:
        where = "any namespace" if args.all_namespaces else "this namespace"
        print(f"No SFTJobs in {where}.", file=sys.stderr)
        return 0
    print(job_table(jobs, namespaces=args.all_namespaces))
    return 0


def status(args: argparse.Namespace, extras: list[str]) -> int:
    kube = client(args)
    job = kube.get(args.name)
    print(status_text(job, kube.events(args.name)))
    return 0


def logs(args: argparse.Namespace, extras: list[str]) -> int:
    for line in client(args).logs(args.name, follow=args.follow, rank=args.rank, attempt=args.attempt):
        print(line, flush=args.follow)
    return 0


def wait(args: argparse.Namespace, extras: list[str]) -> int:
    kube = client(args)
    return follow(kube, args.name, None, args.timeout)


def suspend(args: argparse.Namespace, extras: list[str]) -> int:
    job = client(args).suspend(args.name)
    print(f"sftjob {job.name} suspending: the trainer saves a checkpoint, then its pods stop")
    return 0


def resume(args: argparse.Namespace, extras: list[str]) -> int:
    job = client(args).resume(args.name)
    print(f"sftjob {job.name} resumed: training continues from the newest checkpoint")
    return 0


def delete(args: argparse.Namespace, extras: list[str]) -> int:
    client(args).delete(args.name)
    print(f"sftjob {args.name} deleted (checkpoints and output in object storage are kept)")
    return 0


def download(args: argparse.Namespace, extras: list[str]) -> int:
    directory = Path(args.directory)

    def report(relative: str, size: int) -> None:
        print(f"{size:>12,}  {relative}")

    written = client(args).download(args.name, directory, on_file=report)
    print(f"downloaded {len(written)} files to {directory}")
    return 0


def validate_file(args: argparse.Namespace, extras: list[str]) -> int:
    return validate(args.file, args.data)
