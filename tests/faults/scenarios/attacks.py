"""Scenario 7: attacks — forged and altered signatures, foreign media hosts, crafted Sids, leaks."""

from __future__ import annotations

import base64
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from celery import Celery

from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import SimRecording, new_sid
from tests.faults.fuzz import Pairs, Target, encode
from tests.faults.harness import Stack, StackOptions
from tests.faults.rawhttp import RawRequest, send
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Event
from tests.faults.verdict import judge, letters_by_event, settle

NAME = "7 attacks"
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Size:
    rounds: int  # each round repeats every attack on fresh recordings


QUICK = Size(rounds=1)
FULL = Size(rounds=5)


@dataclass(frozen=True)
class Attack:
    """One request and the only answers that are right for it."""

    name: str
    request: RawRequest
    expect: frozenset[int]
    event: Event | None = None


def run(workdir: Path, size: Size, seed: int = 7) -> ScenarioResult:
    result = ScenarioResult(NAME, "")
    with Stack(workdir, StackOptions(max_retries=3)) as stack:
        accepted: set[Event] = set()
        queued: set[Event] = set()
        doomed: set[Event] = set()
        planted_sids: list[str] = []
        outcomes: Counter = Counter()
        for _ in range(size.rounds):
            attacks, planted, dead = _round(stack)
            doomed |= dead
            for attack in attacks:
                status = send(stack.ingest_port, attack.request)
                outcomes["answered as expected" if status in attack.expect else "wrong answer"] += 1
                if status is None or status >= 500 or status not in attack.expect:
                    result.problems.append(f"{attack.name}: answered {status}, expected {sorted(attack.expect)}")
                    result.server_errors += status is not None and status >= 500
                if status == 204 and attack.event:
                    accepted.add(attack.event)
                    queued.add(attack.event)
            planted_sids += _plant(stack, planted)
        queued |= {(sid, "completed") for sid in planted_sids}
        settle(stack, accepted | {(sid, "completed") for sid in planted_sids}, timeout=120)
        judge(stack, result, accepted, signed=queued, expect_dead=doomed)
        result.problems += _planted_outcomes(stack, planted_sids)
        result.injected = f"{sum(outcomes.values())} attack requests, {len(planted_sids)} planted messages"
        result.notes.append(f"{outcomes['answered as expected']} answered as expected; the foreign host "
                            f"received {len(stack.foreign.requests)} requests; logs checked for "
                            f"{len(stack.secrets())} secrets")
    return result


def _round(stack: Stack) -> tuple[list[Attack], list[Pairs], set[Event]]:
    """This round's attack requests, messages to plant behind ingest, and events bound to fail."""
    target = Target(stack.ingest_port, stack.token, stack.sim.base_url, (), 65536)
    state = stack.sim.state
    rec = state.create_recording(duration=2)
    honest = list(callback_params(rec, "completed", api_base=stack.sim.base_url).items())
    attacks = [Attack("honest baseline", encode(target, honest, "POST"), frozenset({204}), (rec.sid, "completed"))]
    attacks += _forged(target, honest)
    attacks += _altered_replays(target, honest, state.create_recording(duration=2), stack)
    foreign, planted = _foreign_hosts(target, stack, state.create_recording(duration=2))
    attacks += foreign
    attacks += _crafted_sids(target, state.create_recording(duration=2), stack)
    # A recording of an account recvault's key may not read: Twilio refuses, and says nothing secret.
    other_account, _ = state.add_account()
    stranger = state.create_recording(account_sid=other_account, duration=2)
    pairs = list(callback_params(stranger, "completed", api_base=stack.sim.base_url).items())
    attacks.append(Attack("another account's recording", encode(target, pairs, "POST"), frozenset({204}),
                          (stranger.sid, "completed")))
    upper = state.create_recording(duration=2, sid="RE" + secrets.token_hex(16).upper())
    pairs = list(callback_params(upper, "completed", api_base=stack.sim.base_url).items())
    attacks.append(Attack("upper-case hex Sid", encode(target, pairs, "POST"), frozenset({204}),
                          (upper.sid, "completed")))
    return attacks, planted, {(stranger.sid, "completed")}


def _forged(target: Target, pairs: Pairs) -> list[Attack]:
    random_signature = base64.b64encode(secrets.token_bytes(20)).decode()
    forbidden = frozenset({403})
    return [
        Attack("no signature", encode(target, pairs, "POST", token=""), forbidden),
        Attack("random signature", encode(target, pairs, "POST", token="",
                                          headers=(("X-Twilio-Signature", random_signature),)), forbidden),
        Attack("another token's signature", encode(target, pairs, "POST", token=secrets.token_hex(16)), forbidden),
        Attack("signature for another URL", encode(
            target, pairs, "POST", sign_url=f"https://{target.host}/twilio/recording-status"), forbidden),
        Attack("signature for a GET, sent as POST", encode(
            target, pairs, "POST", sign_pairs=[]), forbidden),
        Attack("signature for a trusted-proxy URL (not trusted)", encode(
            target, pairs, "POST", sign_url="https://cb.example.com/twilio/recording-status",
            headers=(("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "cb.example.com"))), forbidden),
    ]


def _altered_replays(target: Target, original: Pairs, other: SimRecording, stack: Stack) -> list[Attack]:
    """The honest callback's signature, replayed on changed content."""
    forbidden = frozenset({403})
    params = dict(original)
    changes = {
        "RecordingUrl at a foreign host": {"RecordingUrl": params["RecordingUrl"].replace(
            stack.sim.base_url, f"http://localhost:{stack.foreign.port}")},
        "another RecordingSid": {"RecordingSid": other.sid, "RecordingUrl": stack.sim.recording_url(other)},
        "another status": {"RecordingStatus": "absent"},
        "an added parameter": {"Injected": "1"},
    }
    attacks = [Attack(f"replay with {name}", encode(target, list({**params, **change}.items()), "POST",
                                                    sign_pairs=original), forbidden)
               for name, change in changes.items()]
    attacks.append(Attack("replay with a parameter removed", encode(
        target, [p for p in original if p[0] != "CallSid"], "POST", sign_pairs=original), forbidden))
    return attacks


def _foreign_hosts(target: Target, stack: Stack, rec: SimRecording) -> tuple[list[Attack], list[Pairs]]:
    """Validly signed callbacks whose RecordingUrl leads to the foreign host, one name per trick."""
    port, path = stack.foreign.port, f"/2010-04-01/Accounts/{rec.account_sid}/Recordings/{rec.sid}"
    urls = [
        f"http://localhost:{port}{path}", f"http://LOCALHOST:{port}{path}", f"http://2130706433:{port}{path}",
        f"http://0x7f000001:{port}{path}", f"http://127.1:{port}{path}", f"http://127.0.0.1.:{port}{path}",
        f"http://[::ffff:127.0.0.1]:{port}{path}", f"http://api.twilio.com@localhost:{port}{path}",
        f"http://localhost:{port}#@127.0.0.1{path}", f"https://api.twilio.com.localhost:{port}{path}",
    ]
    attacks, planted = [], []
    for url in urls:
        pairs = list({**callback_params(rec, "completed", api_base=stack.sim.base_url), "RecordingUrl": url}.items())
        attacks.append(Attack(f"signed, RecordingUrl {url}", encode(target, pairs, "POST"), frozenset({400})))
        planted.append(pairs)
    return attacks, planted


def _crafted_sids(target: Target, rec: SimRecording, stack: Stack) -> list[Attack]:
    """Honestly signed callbacks whose Sids and names try to reach outside their S3 keys."""
    hex32 = "".join(secrets.choice(HEX) for _ in range(32))
    crafted = {
        "RecordingSid": ["RE" + hex32 + "\n", "RE../../../../metadata/x", "RE" + hex32[:16] + "/" + hex32[17:],
                         "RE" + "０" * 32, "RE%2e%2e%2f" + hex32[:23], "RE" + hex32 + "\x00", "RE" + hex32 + " "],
        "AccountSid": ["AC" + hex32 + "\n", "AC../" + hex32[:29]],
        "CallSid": ["CA" + hex32 + "\r\n"],
        "RecordingStatus": ["in-progress/../../x", "in-progress\n"],
        "RecordingSource": ["../../etc", "DialVerb\n", "Dial Verb"],
        "RecordingStartTime": ["Wed, 20 Apr 99999999999 23:45:25 +0000"],
        "EncryptionDetails": ["[" * 5_000 + "]" * 5_000],  # deeper than Python's stack, under the size limit
    }
    attacks = []
    for field, values in crafted.items():
        for value in values:
            base = callback_params(rec, "in-progress", api_base=stack.sim.base_url)
            del base["RecordingUrl"]  # nothing else to catch a bad Sid before `completed`
            pairs = list({**base, field: value}.items())
            attacks.append(Attack(f"{field}={value[:40]!r}", encode(target, pairs, "POST"), frozenset({400})))
    return attacks


def _plant(stack: Stack, planted: list[Pairs]) -> list[str]:
    """Queue callbacks with foreign RecordingUrls straight to the workers, past ingest's checks."""
    app = Celery("recvault-attack", broker=stack.broker_url, set_as_current=False)
    sids = []
    with app.connection_for_write() as connection:
        for pairs in planted:
            sid = new_sid("RE")
            params = dict(pairs)
            params.update(RecordingSid=sid, RecordingUrl=params["RecordingUrl"].replace(params["RecordingSid"], sid))
            payload = {"params": params, "received_at": datetime.now(UTC).isoformat(),
                       "idempotency_token": None}
            app.send_task(ARCHIVE_TASK, args=(payload,), queue=stack.queue, connection=connection)
            sids.append(sid)
    return sids


def _planted_outcomes(stack: Stack, sids: list[str]) -> list[str]:
    """Each planted message must be dead-lettered (foreign host, or a URL that does not parse)."""
    letters = letters_by_event(stack)
    problems = []
    for sid in sids:
        letter = letters.get((sid, "completed"))
        if letter is None:
            problems.append(f"planted {sid} with a foreign RecordingUrl was not dead-lettered")
        elif letter["error"] not in ("ForeignHost", "InvalidCallback"):
            problems.append(f"planted {sid} dead-lettered as {letter['error']}: {letter['reason']}")
    return problems
