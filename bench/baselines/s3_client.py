"""A plain boto3 S3 client, as a user's script would make it."""

from __future__ import annotations

import boto3
from botocore.config import Config


def s3_client(endpoint: str, credentials: dict[str, str]):
    """Path-style addressing for a local endpoint; boto3's defaults otherwise."""
    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config, **credentials)
