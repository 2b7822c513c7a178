"""The callback endpoint on a real socket, queueing into the real Redis."""

from __future__ import annotations

import hashlib
import json
import logging
from urllib.parse import urlencode

import pytest
from multidict import MultiDict
from yarl import URL

from recvault.settings import Settings
from tests.ingest.conftest import (
    FAKE_SIGNATURE,
    TOKEN,
    callback_params,
    callback_url,
    post_callback,
    queued_payloads,
    sign,
)


async def test_signed_post_is_queued_once_with_every_parameter(client, queue) -> None:
    params = callback_params(SomeFutureTwilioParam="kept")
    response = await post_callback(client, params, headers={"I-Twilio-Idempotency-Token": "tok-1"})
    assert response.status == 204
    payloads = queued_payloads(queue)
    assert len(payloads) == 1
    assert payloads[0]["params"] == params
    assert payloads[0]["idempotency_token"] == "tok-1"


async def test_retries_of_the_same_status_enqueue_once(client, queue) -> None:
    params = callback_params()
    for _ in range(3):
        assert (await post_callback(client, params)).status == 204
    progress = callback_params("in-progress", RecordingSid=params["RecordingSid"])
    progress.pop("RecordingDuration", None)
    assert (await post_callback(client, progress)).status == 204
    statuses = sorted(p["params"]["RecordingStatus"] for p in queued_payloads(queue))
    assert statuses == ["completed", "in-progress"]


async def test_each_accepted_callback_has_one_row_in_the_ledger_and_a_retry_none(client, queue) -> None:
    params = callback_params()
    for _ in range(2):
        assert (await post_callback(client, params)).status == 204
    [(_, fields)] = queue.xrange("recvault:accepted")
    sid, status, account, received_at = fields[b"r"].decode().split("|")
    assert (sid, status, account) == (params["RecordingSid"], "completed", params["AccountSid"])
    assert received_at == queued_payloads(queue)[0]["received_at"]


async def test_signed_get_is_queued(client, queue) -> None:
    params = callback_params()
    query = urlencode(params)
    url = callback_url(client, query)
    # encoded=True: send the query byte for byte as signed, like Twilio does.
    response = await client.session.get(URL(url, encoded=True),
                                        headers={"X-Twilio-Signature": sign(url, {})})
    assert response.status == 204
    assert [p["params"]["RecordingSid"] for p in queued_payloads(queue)] == [params["RecordingSid"]]


async def test_signed_json_body_is_queued(client, queue) -> None:
    import hashlib

    params = callback_params()
    body = json.dumps(params)
    query = "bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    url = callback_url(client, query)
    response = await client.post(f"/twilio/recording-status?{query}", data=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Twilio-Signature": sign(url, {})})
    assert response.status == 204
    assert queued_payloads(queue)[0]["params"]["RecordingSid"] == params["RecordingSid"]


async def test_json_body_altered_after_signing_is_refused(client, queue) -> None:
    import hashlib

    body = json.dumps(callback_params())
    query = "bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    url = callback_url(client, query)
    response = await client.post(f"/twilio/recording-status?{query}", data=body.replace("42", "43"),
                                 headers={"Content-Type": "application/json",
                                          "X-Twilio-Signature": sign(url, {})})
    assert response.status == 403
    assert queue.llen("recvault") == 0


async def test_repeated_keys_are_kept_as_lists(client, queue) -> None:
    form = MultiDict(callback_params())
    form.add("Tag", "b")
    form.add("Tag", "a")
    assert (await post_callback(client, form)).status == 204
    assert queued_payloads(queue)[0]["params"]["Tag"] == ["b", "a"]


async def test_secondary_token_is_accepted(client, queue) -> None:
    response = await post_callback(client, callback_params(), token="secondary-token-0123456789")
    assert response.status == 204
    assert queue.llen("recvault") == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, {"X-Twilio-Signature": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_bad_signature_is_403_and_nothing_is_queued(client, queue, headers) -> None:
    response = await client.post(
        "/twilio/recording-status", data=urlencode(callback_params()),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    assert response.status == 403
    assert "Signature" in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_signature_from_another_token_is_403(client, queue) -> None:
    response = await post_callback(client, callback_params(), token="someone-elses-token-0000")
    assert response.status == 403
    assert queue.llen("recvault") == 0


async def test_parameter_changed_after_signing_is_403(client, queue) -> None:
    params = callback_params()
    url = callback_url(client)
    signature = sign(url, params)
    params["RecordingDuration"] = "9999"
    response = await client.post("/twilio/recording-status", data=urlencode(params),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": signature})
    assert response.status == 403
    assert queue.llen("recvault") == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"RecordingSid": "RE123"}, "RecordingSid"),
        ({"AccountSid": "AC../../etc"}, "AccountSid"),
        ({"RecordingStatus": "exploded"}, "RecordingStatus"),
        ({"RecordingChannels": "3"}, "RecordingChannels"),
        ({"RecordingDuration": "-5"}, "RecordingDuration"),
        ({"RecordingStartTime": "yesterday"}, "RFC 2822"),
        ({"RecordingStartTime": "Wed, 20 Apr 99999999999 23:45:25 +0000"}, "RFC 2822"),
        ({"EncryptionDetails": "{not json"}, "JSON"),
        ({"EncryptionDetails": "[" * 5000 + "]" * 5000}, "JSON"),
        ({"RecordingSource": "DialVerb\n"}, "RecordingSource"),
        ({"RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC" + "b" * 32
                          + "/Recordings/RE" + "c" * 32}, "does not name"),
        ({"RecordingUrl": "https://api.twilio.com/../../secret"}, "RecordingUrl"),
    ],
)
async def test_malformed_parameters_after_a_valid_signature_are_400(client, queue, change, reason) -> None:
    params = callback_params()
    params.update(change)
    response = await post_callback(client, params)
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_missing_required_parameters_are_400(client, queue) -> None:
    params = callback_params()
    del params["RecordingUrl"]
    response = await post_callback(client, params)
    assert response.status == 400
    assert "RecordingUrl is required" in (await response.json())["error"]
    del params["RecordingSid"]
    response = await post_callback(client, params)
    assert response.status == 400


@pytest.mark.parametrize("field", ["RecordingSid", "AccountSid", "CallSid"])
async def test_a_sid_with_a_trailing_newline_is_400(client, queue, field) -> None:
    # Without RecordingUrl (allowed before `completed`) nothing else would catch it, and the
    # newline would end up in the dedup key and in the S3 key of the event document.
    params = callback_params("in-progress")
    del params["RecordingUrl"]
    params[field] += "\n"
    response = await post_callback(client, params)
    assert response.status == 400
    assert field in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_deeply_nested_json_body_is_400_when_signed_and_403_unparsed_when_not(client, queue) -> None:
    body = "[" * 50_000
    query = f"bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    for signature, status, words in ((sign(callback_url(client, query), {}), 400, "not valid JSON"),
                                     (FAKE_SIGNATURE, 403, "X-Twilio-Signature")):
        response = await client.post(f"/twilio/recording-status?{query}", data=body,
                                     headers={"Content-Type": "application/json", "X-Twilio-Signature": signature})
        assert response.status == status
        assert words in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_a_host_header_with_an_impossible_port_is_403(client, queue) -> None:
    params = callback_params()
    response = await client.post("/twilio/recording-status", data=urlencode(params),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Host": "127.0.0.1:abc", "X-Twilio-Signature": "c2lnbmF0dXJl"})
    assert response.status == 403
    assert queue.llen("recvault") == 0


async def test_foreign_media_host_is_refused_even_when_signed(client, queue) -> None:
    params = callback_params()
    params["RecordingUrl"] = params["RecordingUrl"].replace("api.twilio.com", "attacker.example")
    response = await post_callback(client, params)
    assert response.status == 400
    assert "not an allowed Twilio host" in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_oversized_body_is_413(client, queue, ingest_settings: Settings) -> None:
    params = callback_params(Padding="x" * (ingest_settings.max_body_bytes + 10))
    response = await post_callback(client, params)
    assert response.status == 413
    assert "larger than" in (await response.json())["error"]
    assert queue.llen("recvault") == 0


async def test_wrong_method_is_405(client) -> None:
    response = await client.put("/twilio/recording-status", data="x")
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["error"]


async def test_wrong_content_type_is_415(client, queue) -> None:
    response = await client.post("/twilio/recording-status", data=b"<xml/>",
                                 headers={"Content-Type": "text/xml"})
    assert response.status == 415
    assert queue.llen("recvault") == 0


async def test_invalid_utf8_is_400(client, queue) -> None:
    response = await client.post("/twilio/recording-status", data=b"AccountSid=%ff%fe",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": FAKE_SIGNATURE})
    assert response.status == 400
    assert queue.llen("recvault") == 0


async def test_subaccount_tokens_are_used_for_their_account(redis_url, tmp_path, queue) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from recvault.ingest.app import create_app

    sub = "AC" + "d" * 32
    settings = Settings(twilio_auth_tokens=TOKEN, broker_url=redis_url, data_dir=tmp_path,
                        twilio_subaccount_tokens={sub: ["subaccount-token-abcdef01"]})
    async with TestClient(TestServer(create_app(settings))) as client:
        recording = "RE" + "e" * 32
        params = callback_params(
            AccountSid=sub, RecordingSid=recording,
            RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/{sub}/Recordings/{recording}",
        )
        assert (await post_callback(client, params, token="subaccount-token-abcdef01")).status == 204
        assert (await post_callback(client, params, token=TOKEN)).status == 403
        assert (await post_callback(client, callback_params(), token=TOKEN)).status == 204
    assert queue.llen("recvault") == 2


async def test_public_url_behind_a_proxy(redis_url, tmp_path, queue) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from recvault.ingest.app import create_app

    settings = Settings(twilio_auth_tokens=TOKEN, broker_url=redis_url, data_dir=tmp_path,
                        public_url="https://callbacks.example.com")
    async with TestClient(TestServer(create_app(settings))) as client:
        params = callback_params()
        public = "https://callbacks.example.com/twilio/recording-status?x=it's+%2B1"
        response = await client.post(
            "/twilio/recording-status?x=it's+%2B1", data=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": sign(public, params)})
        # Signed as received ("'" and "+" not re-encoded): refused for the label's "'", not as forged.
        assert response.status == 400 and "label 'x'" in (await response.json())["error"]
        public = "https://callbacks.example.com/twilio/recording-status?x=it+%2B1"
        response = await client.post(
            "/twilio/recording-status?x=it+%2B1", data=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": sign(public, params)})
        assert response.status == 204
        local = callback_url(client, "x=it's+%2B1")
        response = await client.post(
            "/twilio/recording-status?x=it's+%2B1", data=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": sign(local, params)})
        assert response.status == 403
    assert queue.llen("recvault") == 1


async def test_forwarded_headers_are_used_only_when_trusted(redis_url, tmp_path, queue) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from recvault.ingest.app import create_app

    params = callback_params()
    signature = sign("https://edge.example.com/twilio/recording-status", params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
               "X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example.com"}
    for trusted, expected in ((False, 403), (True, 204)):
        settings = Settings(twilio_auth_tokens=TOKEN, broker_url=redis_url, data_dir=tmp_path,
                            trust_forwarded_headers=trusted)
        async with TestClient(TestServer(create_app(settings))) as client:
            response = await client.post("/twilio/recording-status", data=urlencode(params), headers=headers)
            assert response.status == expected


async def test_tokens_never_reach_the_logs(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await post_callback(client, callback_params())
    await post_callback(client, callback_params(), token="wrong-token-value-1234")
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "callback accepted" in text and "callback rejected" in text  # DEBUG and INFO
    assert TOKEN not in text and "secondary-token-0123456789" not in text


async def test_health_readiness_and_metrics(client) -> None:
    await post_callback(client, callback_params())
    await post_callback(client, callback_params(), token="wrong-token-value-1234")
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ok"
    text = await (await client.get("/metrics")).text()
    assert 'recvault_callbacks_accepted_total{outcome="queued"} 1.0' in text
    assert 'recvault_callbacks_rejected_total{reason="signature"} 1.0' in text
    assert "recvault_enqueue_seconds_bucket" in text
