"""S3 object tags: checked against S3's limits and encoded for the `Tagging` parameter."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from recvault.errors import ConfigurationError

# S3 allows at most 10 tags per object.
MAX_TAGS = 10
# S3 limits a tag key to 128 Unicode characters and a value to 256.
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
# Characters S3 accepts in tag keys and values: letters, digits, space and + - = . _ : /
ALLOWED = re.compile(r"[\w +\-=.:/]*")
# Keys beginning "aws:" are reserved for AWS and refused on write.
RESERVED_PREFIX = "aws:"


class InvalidTags(ConfigurationError):
    """Tags S3 would refuse; they come from the policy, so fixing them is configuration."""


def validate_tags(tags: dict[str, str]) -> dict[str, str]:
    """Return `tags` unchanged if S3 will accept them; raise InvalidTags naming the problem."""
    if len(tags) > MAX_TAGS:
        raise InvalidTags(f"{len(tags)} tags given; S3 allows at most {MAX_TAGS} per object")
    for key, value in tags.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise InvalidTags(f"tag key {key!r} must be 1-{MAX_KEY_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidTags(f"tag {key!r}: value longer than {MAX_VALUE_CHARS} characters")
        if key.lower().startswith(RESERVED_PREFIX):
            raise InvalidTags(f"tag key {key!r}: the 'aws:' prefix is reserved")
        for text in (key, value):
            if not ALLOWED.fullmatch(text):
                raise InvalidTags(
                    f"tag {key!r}: {text!r} has characters S3 refuses "
                    "(allowed: letters, digits, space and + - = . _ : /)"
                )
    return tags


def encode_tagging(tags: dict[str, str]) -> str:
    """The URL-encoded `Tagging` string for PutObject and CreateMultipartUpload."""
    # quote, not quote_plus: a space travels as %20 and "+" as %2B, so neither is misread.
    return urlencode(validate_tags(tags), quote_via=quote, safe="")


def tag_set(tags: dict[str, str]) -> list[dict[str, str]]:
    """The `TagSet` list for PutObjectTagging."""
    return [{"Key": key, "Value": value} for key, value in validate_tags(tags).items()]
