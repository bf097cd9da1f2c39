"""One reading of storage URIs: what the spec accepts is what the operator mounts and the trainer opens."""

from __future__ import annotations

import pytest

from kubesft_api.pod_contract import PVC_ROOT
from kubesft_api.uris import ParsedUri, Scheme, parse_uri


@pytest.mark.parametrize(
    ("text", "parsed", "local"),
    [
        ("s3://bucket/some/prefix", ParsedUri("s3", "bucket", "some/prefix"), None),
        ("S3://bucket", ParsedUri("s3", "bucket", ""), None),
        ("pvc://models/tiny", ParsedUri("pvc", "models", "tiny"), f"{PVC_ROOT}/models/tiny"),
        ("pvc://models", ParsedUri("pvc", "models", ""), f"{PVC_ROOT}/models"),
        ("file:///data/train.jsonl", ParsedUri("file", "", "/data/train.jsonl"), "/data/train.jsonl"),
        ("/data/train.jsonl", ParsedUri("file", "", "/data/train.jsonl"), "/data/train.jsonl"),
    ],
)
def test_parse_uri(text: str, parsed: ParsedUri, local: str | None) -> None:
    assert parse_uri(text) == parsed
    assert parsed.local_path == local
    assert parse_uri(str(parsed)) == parsed, "the text form reads back the same"


def test_parent_and_name_split_off_the_last_segment() -> None:
    uri = parse_uri("s3://bucket/data/chat/train.jsonl")
    assert (str(uri.parent), uri.name) == ("s3://bucket/data/chat", "train.jsonl")
    top = parse_uri("s3://bucket/train.jsonl")
    assert (str(top.parent), top.name) == ("s3://bucket", "train.jsonl")


@pytest.mark.parametrize(
    ("text", "schemes", "message"),
    [
        ("gs://bucket/x", ("s3", "pvc"), "scheme 'gs://' is not supported; use s3://, pvc:// or an absolute"),
        ("pvc://claim/x", ("s3",), "scheme 'pvc://' is not supported; use s3:// or an absolute"),
        ("relative/path", ("s3", "pvc"), "neither an absolute path nor a URI; use s3://… or pvc://…"),
        ("file://relative", ("s3",), "a file:// URI needs an absolute path"),
        ("s3:///key", ("s3",), "an s3:// URI needs a bucket"),
        ("s3://Bucket_1/key", ("s3",), "is not a valid s3://bucket/prefix URI"),
        ("pvc:///path", ("pvc",), "a pvc:// URI needs a claim name"),
        ("pvc://Claim/path", ("pvc",), "is not a valid pvc://claim/path URI"),
    ],
)
def test_parse_uri_says_what_is_wrong(text: str, schemes: tuple[Scheme, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_uri(text, schemes)
