"""Labels from the signed callback URL's query string: carried on the queue message, or refused with a reason."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest
from multidict import MultiDict
from yarl import URL

from recvault import labels as label_rules
from tests.ingest.conftest import callback_params, callback_url, queued_payloads, sign


async def _post(client, params, query: str):
    """A form POST to the callback URL with `query`, signed over that whole URL as Twilio signs it."""
    url = callback_url(client, query)
    form = MultiDict(params)
    return await client.post(URL(f"/twilio/recording-status?{query}", encoded=True),
                             data=urlencode(list(form.items())),
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      "X-Twilio-Signature": sign(url, form)})


async def test_post_query_parameters_become_labels_on_the_queued_message(client, queue) -> None:
    params = callback_params()
    response = await _post(client, params, "tenant=acme-securities&consent=explicit&desk=fx%3Aspot")
    assert response.status == 204
    [payload] = queued_payloads(queue)
    assert payload["labels"] == {"tenant": "acme-securities", "consent": "explicit", "desk": "fx:spot"}
    assert payload["params"] == params  # labels are not callback parameters


async def test_get_labels_are_the_query_parameters_that_are_not_twilios(client, queue) -> None:
    params = callback_params(SomeFutureTwilioParam="kept")
    query = "tenant=acme&" + urlencode(params)
    url = callback_url(client, query)
    response = await client.session.get(URL(url, encoded=True), headers={"X-Twilio-Signature": sign(url, {})})
    assert response.status == 204
    [payload] = queued_payloads(queue)
    assert payload["labels"] == {"tenant": "acme"}
    assert payload["params"]["SomeFutureTwilioParam"] == "kept"


async def test_a_json_callback_keeps_its_labels_but_not_its_body_hash(client, queue) -> None:
    body = json.dumps(callback_params())
    query = "tenant=acme&bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    url = callback_url(client, query)
    response = await client.post(f"/twilio/recording-status?{query}", data=body,
                                 headers={"Content-Type": "application/json", "X-Twilio-Signature": sign(url, {})})
    assert response.status == 204
    assert queued_payloads(queue)[0]["labels"] == {"tenant": "acme"}


async def test_labels_are_not_part_of_the_dedup_key(client, queue) -> None:
    params = callback_params()
    assert (await _post(client, params, "tenant=acme")).status == 204
    assert (await _post(client, params, "tenant=globex")).status == 204
    assert [p["labels"] for p in queued_payloads(queue)] == [{"tenant": "acme"}]


async def test_labels_are_signed_with_the_url(client, queue) -> None:
    params = callback_params()
    url = callback_url(client, "tenant=acme")
    form = MultiDict(params)
    response = await client.post("/twilio/recording-status?tenant=acme-securities", data=urlencode(params),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": sign(url, form)})
    assert response.status == 403
    assert queued_payloads(queue) == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("Tenant=acme", "label name 'Tenant' must be"),
        ("tenant=acme%21", "label 'tenant': value must be"),
        ("tenant=" + "x" * (label_rules.MAX_VALUE_CHARS + 1), "label 'tenant': value must be at most 128"),
        ("n" * (label_rules.MAX_NAME_CHARS + 1) + "=1", "must be 1-64 characters"),
        ("tenant=a&tenant=b", "label 'tenant' given more than once"),
        ("&".join(f"l{i}=v" for i in range(label_rules.MAX_LABELS + 1)), "11 labels given; at most 10"),
    ],
    ids=["capital-name", "bad-value", "long-value", "long-name", "repeated", "too-many"],
)
async def test_bad_labels_get_a_400_with_the_reason(client, queue, query, reason) -> None:
    response = await _post(client, callback_params(), query)
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert queued_payloads(queue) == []


async def test_a_get_callback_is_never_refused_for_a_parameter_that_is_not_a_clean_label(client, queue) -> None:
    # On GET, Twilio's parameters share the query: what is not a well-formed label stays a parameter.
    params = callback_params()
    query = urlencode(params) + "&tenant=acme&note=hello%21&x%C3%A9=1&dup=a&dup=b"
    url = callback_url(client, query)
    response = await client.session.get(URL(url, encoded=True), headers={"X-Twilio-Signature": sign(url, {})})
    assert response.status == 204
    [payload] = queued_payloads(queue)
    assert payload["labels"] == {"tenant": "acme"}
    assert payload["params"]["note"] == "hello!" and payload["params"]["dup"] == ["a", "b"]
