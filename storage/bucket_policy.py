"""The bucket policy the archive asks for: create-only folders stay create-only, the workers never delete there.

S3 Object Lock protects versions, not keys. Anyone allowed s3:PutObject can stack a new current
version over a create-only key, and anyone allowed s3:DeleteObject can hide it under a delete
marker; the locked original stays underneath, but readers of the current version see the
stand-in. recvault writes those folders only with `If-None-Match: *`, so a bucket policy can
refuse every other write there: the `s3:if-none-match` condition key is absent (`Null`) exactly
when the header is. Only PutObject and CompleteMultipartUpload take the header; the rest of a
multipart upload (CreateMultipartUpload, UploadPart) is exempted through `s3:ObjectCreationOperation`,
which is false for those (AWS's documented pattern for enforcing conditional writes). A second
statement refuses the workers' role any delete in those folders, whatever its IAM policy grants
later. Explicit denies win over any allow, the bucket owner's included.

Pure: the document, its merge into a bucket's existing policy, and their comparison; the
bucket-setup step in storage.s3_setup reads and writes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

VERSION = "2012-10-17"
# Statements recvault writes carry these ids; a statement of another id is the operator's and is kept.
CREATE_ONLY_SID = "recvault-create-only-folders"
NO_DELETE_SID = "recvault-workers-never-delete"
CREATE_ONLY_CONDITION = {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}
DELETES = ["s3:DeleteObject", "s3:DeleteObjectVersion"]


def arn_partition(region: str) -> str:
    """The ARN partition of a region: China and GovCloud have their own."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def statements(bucket: str, region: str, folders: Sequence[str], workers: Sequence[str]) -> list[dict[str, Any]]:
    """recvault's statements for `folders` (keys with the deployment's prefix, e.g. `media/`), none without folders.

    `workers`: principal ARNs (the workers' IAM role) denied every delete in those folders.
    """
    if not folders:
        return []
    resources = [f"arn:{arn_partition(region)}:s3:::{bucket}/{folder}*" for folder in folders]
    wanted: list[dict[str, Any]] = [{
        "Sid": CREATE_ONLY_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": resources, "Condition": CREATE_ONLY_CONDITION}]
    if workers:
        wanted.append({"Sid": NO_DELETE_SID, "Effect": "Deny", "Principal": {"AWS": list(workers)},
                       "Action": DELETES, "Resource": resources})
    return wanted


def merged(existing: dict[str, Any] | None, ours: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`existing` with each of `ours` in place of the statement of its Sid; every other statement kept.

    A statement recvault does not write this time (no worker role given) is kept as it is: running
    init-bucket without the option never lifts a deny an earlier run set.
    """
    replaced = {statement["Sid"] for statement in ours}
    kept = [s for s in _as_list((existing or {}).get("Statement")) if s.get("Sid") not in replaced]
    return {**(existing or {}), "Version": VERSION, "Statement": [*kept, *ours]}


def same(left: dict[str, Any] | None, right: dict[str, Any] | None) -> bool:
    """Whether two policies say the same thing, as stores give them back (a one-item list as a plain string,
    keys and list items in another order)."""
    return _canonical(left or {}) == _canonical(right or {})


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _canonical(value: object) -> str:
    """One text per meaning: keys sorted, lists sorted, a single value the same as a one-item list."""
    if isinstance(value, dict):
        return json.dumps({key: _canonical(item) for key, item in value.items()}, sort_keys=True)
    if isinstance(value, list | str):
        return json.dumps(sorted(item if isinstance(item, str) else _canonical(item) for item in _as_list(value)))
    return json.dumps(value)
