"""The SeaweedFS capacity probe writes what an archive writes: create-only, locked objects."""

from __future__ import annotations

import pytest

from bench import s3_capacity
from recvault.errors import AlreadyExists


def test_the_probe_writes_locked_create_only_objects_and_reports_a_rate(s3_store) -> None:
    rate = s3_capacity.measure(s3_store, "probe", 300, 4, 8, 0)
    keys = sorted(s3_store.list_keys("capacity/probe/0/"))
    assert rate > 0 and len(keys) == 8
    assert s3_store.head(keys[0]).retention.mode == "GOVERNANCE"
    with pytest.raises(AlreadyExists):  # a second run under the same number would not overwrite
        s3_capacity.measure(s3_store, "probe", 300, 4, 8, 0)
