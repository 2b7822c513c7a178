"""Redirects from Twilio: the target is checked exactly as the HTTP client will read it.

urllib's urlsplit and urllib3 (under requests) read a backslash differently: in
`http://foreign\\@allowed/` urlsplit sees user "foreign\\" at the allowed host, while urllib3
connects to the foreign one. A check made with urlsplit would let credentials go there.
"""

from __future__ import annotations

import pytest

from recvault.errors import ForeignHost
from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.settings import Settings
from recvault.simulator.server import SimServer
from recvault.twilio.api import TwilioApi
from recvault.twilio.credential_targets import CredentialTargets
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.foreign_host import ForeignHost as ForeignServer
from tests.fixtures.worker import running_worker, wait_for

# {foreign} is the foreign host's host:port, {sim} the simulator's (the allowed API base).
LOCATIONS = [
    "http://{foreign}\\@{sim}{path}",  # urlsplit: the simulator; requests: the foreign host
    "http://{foreign}\\.{sim}{path}",
    "http://{sim}\\@{foreign}{path}",
    "http://{sim}/\\{foreign}{path}",
    "http://{foreign}%5C@{sim}{path}",  # userinfo, read alike by both: refused all the same
    "http://user:secret@{sim}{path}",
    "http://{foreign}{path}",
    "//{foreign}{path}",
    "http://127.0.0.1:99999{path}",  # a port no parser accepts
]


def _location(template: str, sim: SimServer, foreign: ForeignServer, path: str) -> str:
    return template.format(foreign=f"localhost:{foreign.port}", sim=f"127.0.0.1:{sim.port}", path=path)


@pytest.mark.parametrize("template", LOCATIONS)
def test_a_redirect_off_the_allowlist_sends_no_request(template, sim, sim_account, foreign_host) -> None:
    recording = sim.create_recording(duration=2)
    url = sim.recording_url(recording)
    recording.faults.redirect_to = _location(template, sim, foreign_host, f"/2010-04-01/{recording.sid}.wav")
    api = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({"127.0.0.1"}),
                    credentials=lambda account: (sim_account.sid, sim_account.token))
    try:
        with pytest.raises(ForeignHost, match="no request sent"):
            with api.open_media(url, recording.account_sid, fmt="wav", channels=1):
                pass
    finally:
        api.close()
    assert foreign_host.requests == []
    assert recording.media_requests == 1  # the first, redirected request only


def test_a_url_the_parsers_read_as_two_hosts_is_refused() -> None:
    # Whatever the trick, a URL urlsplit reads as one host and the client as another gets nothing.
    targets = CredentialTargets(frozenset({"api.twilio.com"}), ("https", "api.twilio.com", 443))
    targets.check("https://api.twilio.com/x", "https://api.twilio.com/x")
    with pytest.raises(ForeignHost, match="two different hosts"):
        targets.check("https://api.twilio.com/x", "https://evil.example/x")
    with pytest.raises(ForeignHost, match="two different hosts"):
        targets.check("https://api.twilio.com/x", "https://api.twilio.com:8443/x")


def test_a_redirect_on_the_allowlist_is_followed(sim, sim_account) -> None:
    recording, target = sim.create_recording(duration=2), sim.create_recording(duration=2)
    recording.faults.redirect_to = f"{sim.recording_url(target)}.wav"
    api = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({"127.0.0.1"}),
                    credentials=lambda account: (sim_account.sid, sim_account.token))
    try:
        with api.open_media(sim.recording_url(recording), recording.account_sid, fmt="wav", channels=1) as media:
            size = sum(len(chunk) for chunk in media.chunks)
    finally:
        api.close()
    assert size == sim.expected(target, "wav", 1)[0]


def test_a_backslash_redirect_ends_dead_lettered_as_foreign_host(redis_url, s3_store, tmp_path, sim, sim_account,
                                                                 foreign_host) -> None:
    recording = sim.create_recording(duration=2)
    recording.faults.redirect_to = _location(LOCATIONS[0], sim, foreign_host, f"/2010-04-01/{recording.sid}.wav")
    settings = Settings(broker_url=redis_url, twilio_auth_tokens=sim_account.token,
                        twilio_api_base_url=sim.base_url, s3_endpoint_url=s3_store.endpoint_url,
                        s3_bucket=s3_store.bucket, data_dir=tmp_path, queue="redirect-test")
    payload = {"params": {
        "AccountSid": recording.account_sid, "RecordingSid": recording.sid, "RecordingStatus": "completed",
        "RecordingUrl": sim.recording_url(recording), "RecordingDuration": "2", "RecordingChannels": "1",
    }, "received_at": "2026-11-24T00:00:00+00:00"}
    letters = DeadLetters.connect(redis_url)
    with running_worker(settings) as app:
        app.send_task(ARCHIVE_TASK, args=(payload,), queue="redirect-test")
        letter = wait_for(lambda: letters.get(f"{recording.sid}:completed"), what="dead letter")
    assert letter.error == "ForeignHost" and "no request sent" in letter.reason
    assert foreign_host.requests == []
    assert list(s3_store.list_keys("media/")) == []
