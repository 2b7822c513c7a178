"""A labelled callback, end to end: simulator → ingest → Redis → Celery worker → SeaweedFS, under its rule."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestServer

from recvault.compliance.policy import Policy
from recvault.ingest.app import create_app
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_params
from tests.fixtures.worker import running_worker, wait_for

POLICY = """
[default]
mode = "GOVERNANCE"
retention_days = 1

[[rule]]
name = "finance-7y"
labels = { tenant = "acme-securities" }
mode = "COMPLIANCE"
retention_days = 2
storage_class = "STANDARD_IA"
"""


@pytest.mark.system  # a worker and a whole pipeline: a few seconds
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_labelled_callback_ends_in_a_document_under_its_rule(
        method, redis_url, tmp_path, sim, sim_account, s3_store) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY)
    settings = Settings(
        twilio_auth_tokens=sim_account.token, twilio_account_sid=sim_account.sid, twilio_api_base_url=sim.base_url,
        broker_url=redis_url, data_dir=tmp_path, s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url,
        s3_part_size_mib=5, policy_file=policy_file, queue="policy-e2e",
    )
    labelled, plain = sim.create_recording(duration=3), sim.create_recording(duration=2)
    with running_worker(settings):
        async with TestServer(create_app(settings)) as server:
            base = str(server.make_url("/twilio/recording-status"))
            async with CallbackSender(base, auth_token=sim_account.token, method=method) as sender:
                sent = [await sender.send_prepared(sender.prepare(
                    callback_params(rec, "completed", api_base=sim.base_url), url=url))
                    for rec, url in ((labelled, f"{base}?tenant=acme-securities&consent=explicit"), (plain, base))]
        assert [result.http_status for result in sent] == [204, 204]
        await asyncio.to_thread(wait_for, lambda: len(list(s3_store.list_keys("metadata/"))) == 2, timeout=60,
                                what="both documents")
    documents = {doc["sid"]: doc for doc in (json.loads(s3_store.get_bytes(key))
                                             for key in s3_store.list_keys("metadata/"))}
    version = Policy.load(policy_file).version
    ruled, default = documents[labelled.sid], documents[plain.sid]
    assert ruled["labels"] == {"tenant": "acme-securities", "consent": "explicit"}
    assert (ruled["policy"], ruled["policy_version"], ruled["retention_mode"]) == ("finance-7y", version, "COMPLIANCE")
    assert (default["labels"], default["policy"], default["retention_mode"]) == ({}, "default", "GOVERNANCE")
    head = s3_store._client.head_object(Bucket=s3_store.bucket, Key=ruled["media_key"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["StorageClass"] == "STANDARD_IA"
