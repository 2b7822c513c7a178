"""Scenario 8: hostile requests — slow clients, oversized headers and 0xff bytes among real callbacks."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from recvault.ingest.limits import (
    BODY_READ_SECONDS,
    LINGER_SECONDS,
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADERS,
    MAX_PARAMETERS,
    MAX_REQUEST_LINE_BYTES,
)
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_params
from tests.faults.fuzz import FORM, PATH
from tests.faults.harness import Stack
from tests.faults.rawhttp import RawRequest, exchange
from tests.faults.result import ScenarioResult
from tests.faults.slowloris import Trickled, trickle
from tests.faults.traffic import Event, Traffic, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "9 hostile requests"
IDLE_SECONDS = Settings.model_fields["idle_timeout_seconds"].default
MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default
# Allowance for scheduling on a busy machine when timing a cut-off.
SLACK = 3.0
# Shaped like a Twilio signature (28 base64 characters) but made by nobody.
FAKE_SIGNATURE = "c2lnbmF0dXJlIHRoYXQgZmFpbHM="
SURROGATE_FF = "\udcff"  # the byte 0xff on the wire (RawRequest encodes with surrogateescape)


@dataclass(frozen=True)
class Size:
    recordings: int
    seconds: float  # how long real callbacks stream in while the attacks run
    slow_clients: int  # slow connections held open at any moment, half slow headers, half slow bodies


QUICK = Size(recordings=30, seconds=20, slow_clients=40)
FULL = Size(recordings=150, seconds=40, slow_clients=200)


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the only answers that are right for it."""

    name: str
    request: RawRequest
    expect: frozenset[int]
    event: Event | None = None  # what it names, when it is signed and must be accepted


@dataclass
class Storm:
    """What the hostile clients got back."""

    requests: Counter = field(default_factory=Counter)
    slow: list[tuple[str, Trickled]] = field(default_factory=list)
    accepted: set[Event] = field(default_factory=set)
    failures: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def fail(self, kind: str, example: str) -> None:
        self.failures[kind] += 1
        self.examples.setdefault(kind, example)

    def problems(self) -> list[str]:
        return [f"{kind} ×{n}, e.g. {self.examples[kind]}" for kind, n in sorted(self.failures.items())]


def run(workdir: Path, size: Size, seed: int = 8) -> ScenarioResult:
    rng = random.Random(seed)
    result = ScenarioResult(NAME, "")
    with Stack(workdir) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = lifecycle(signer, recs, stack.sim.base_url)
        storm = Storm()
        results = stream_during(stack.callback_url, stack.token, prepared, size.seconds,
                                lambda: asyncio.run(_storm(stack, size, storm)))
        traffic = Traffic()
        traffic.record(results)
        if set(traffic.statuses) != {"204"}:
            result.problems.append(f"real callbacks answered {traffic.summary()}, expected only 204")
        accepted = traffic.accepted | storm.accepted
        settle(stack, accepted, timeout=180)
        judge(stack, result, accepted, signed={(p.recording_sid, p.status) for p in prepared} | storm.accepted)
        result.problems += storm.problems() + _log_problems(stack)
        result.server_errors = traffic.server_errors + sum(
            n for status, n in storm.requests.items() if status.isdigit() and int(status) >= 500)
        headers_cut = sum(1 for kind, _ in storm.slow if kind == "headers")
        result.injected = (f"{len(storm.slow)} slow clients ({headers_cut} slow headers), "
                           f"{sum(storm.requests.values())} hostile requests")
        slowest = max(r.elapsed for r in results)
        result.notes.append(f"real callbacks {traffic.summary()}, slowest answer {slowest:.2f} s; hostile "
                            "answers " + ", ".join(f"{k}×{n}" for k, n in sorted(storm.requests.items())))
    return result


async def _storm(stack: Stack, size: Size, storm: Storm) -> None:
    """Slow clients, kept at `size.slow_clients`, and rounds of one-shot hostile requests, for `size.seconds`."""
    deadline = time.monotonic() + size.seconds

    async def keep_slow(kind: str) -> None:
        while time.monotonic() < deadline:
            head, limit = _slow_head(stack, kind)
            cut = await trickle(stack.ingest_port, head, give_up=limit + SLACK)
            storm.slow.append((kind, cut))
            problem = _slow_problem(kind, cut)
            if problem:
                storm.fail(f"slow {kind} client {problem}", repr(cut))

    async def one(hostile: Hostile) -> None:
        answer = await asyncio.to_thread(exchange, stack.ingest_port, hostile.request)
        storm.requests[str(answer.status)] += 1
        if answer.status == 204 and hostile.event:
            storm.accepted.add(hostile.event)
        unexplained = answer.status != 204 and not answer.reason() and hostile.name not in PARSER_REFUSALS
        if answer.status not in hostile.expect or unexplained:
            storm.fail(f"{hostile.name}: expected {sorted(hostile.expect)} with a reason",
                       f"{answer.status} {answer.body[:120]!r}")

    async def hostile_rounds() -> None:
        while time.monotonic() < deadline:
            await asyncio.gather(*(one(hostile) for hostile in _hostile_requests(stack)))

    kinds = ["headers", "body"] * (size.slow_clients // 2)
    await asyncio.gather(hostile_rounds(), *(keep_slow(kind) for kind in kinds))


def _slow_head(stack: Stack, kind: str) -> tuple[bytes, float]:
    """The start of a slow request, and how long the server may take to cut it off."""
    if kind == "headers":  # headers that never end
        return f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{stack.ingest_port}\r\nX-Slow: ".encode(), IDLE_SECONDS
    head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{stack.ingest_port}\r\nContent-Type: {FORM}\r\n"
            f"X-Twilio-Signature: {FAKE_SIGNATURE}\r\nContent-Length: 2000\r\n\r\n")
    return head.encode(), BODY_READ_SECONDS + LINGER_SECONDS


def _slow_problem(kind: str, cut: Trickled) -> str | None:
    """What is wrong with how the server treated a slow client, or None."""
    if cut.closed_after is None:
        return "not cut off"
    if kind == "headers" and cut.closed_after > IDLE_SECONDS + SLACK:
        return f"held longer than the {IDLE_SECONDS:g} s idle timeout"
    if kind == "body" and (cut.status != 408 or (cut.answered_after or 0) > BODY_READ_SECONDS + SLACK):
        return f"not answered 408 within {BODY_READ_SECONDS:g} s"
    return None


# Requests aiohttp's own parser refuses: its answer is plain text, not recvault's JSON.
PARSER_REFUSALS = {"too many headers", "huge header", "huge request line"}


def _hostile_requests(stack: Stack) -> list[Hostile]:
    """One round of one-shot hostile requests, each with the answers that are right for it."""
    host = f"127.0.0.1:{stack.ingest_port}"
    rec = stack.sim.state.create_recording(duration=2)
    params = callback_params(rec, "completed", api_base=stack.sim.base_url)
    body = urlencode(params).encode()
    fake = (("Content-Type", FORM), ("X-Twilio-Signature", FAKE_SIGNATURE))

    def post(*headers: tuple[str, str], payload: bytes = body, host_value: str = host) -> RawRequest:
        return RawRequest("POST", PATH, (("Host", host_value), *headers), payload)

    def signed(pairs: list[tuple[str, str]]) -> tuple[str, str]:
        signature = RequestValidator(stack.token).compute_signature(f"http://{host}{PATH}", MultiDict(pairs))
        return "X-Twilio-Signature", signature

    many = [*params.items(), *((f"P{n}", "x") for n in range(MAX_PARAMETERS))]
    odd_host = host + SURROGATE_FF
    return [
        Hostile("0xff in Host", post(*fake, host_value=odd_host), frozenset({400})),
        Hostile("0xff in Host, GET", RawRequest("GET", f"{PATH}?{urlencode(params)}", (("Host", odd_host), fake[1])),
                frozenset({400})),
        Hostile("0xff in the signature", post(fake[0], ("X-Twilio-Signature", SURROGATE_FF * 28)), frozenset({403})),
        Hostile("0xff in X-Forwarded-Host (untrusted)", post(*fake, ("X-Forwarded-Host", SURROGATE_FF)),
                frozenset({403})),
        Hostile("0xff in Content-Type", post(("Content-Type", FORM + SURROGATE_FF), fake[1]), frozenset({415})),
        Hostile("too many headers", post(*fake, *((f"X-Pad-{n}", "p") for n in range(MAX_HEADERS))),
                frozenset({400, 431})),
        Hostile("huge header", post(*fake, ("X-Pad", "p" * (MAX_HEADER_FIELD_BYTES + 1))), frozenset({400, 431})),
        Hostile("huge request line", RawRequest("GET", f"{PATH}?p={'x' * MAX_REQUEST_LINE_BYTES}", (("Host", host),)),
                frozenset({400, 414, 431})),
        Hostile("too many parameters, signed", post(fake[0], signed(many), payload=urlencode(many).encode()),
                frozenset({413})),
        Hostile("body announced too large", post(*fake, ("Content-Length", str(MAX_BODY_BYTES + 1))),
                frozenset({413})),
        Hostile("no signature, body never sent", post(fake[0], ("Content-Length", "1000"), payload=b""),
                frozenset({403})),
        Hostile("signed, 0xff in the idempotency token",
                post(fake[0], signed(list(params.items())), ("I-Twilio-Idempotency-Token", f"tok{SURROGATE_FF}")),
                frozenset({204}), (rec.sid, "completed")),
    ]


def _log_problems(stack: Stack) -> list[str]:
    """Refusals are a client's doing: ingest logs no traceback and no error for them."""
    log = (stack.dir / "logs" / "ingest.log").read_text(errors="replace")
    errors = [line[:200] for line in log.splitlines() if "Traceback" in line or '"level": "error"' in line]
    return [f"ingest logged {len(errors)} errors, e.g. {errors[0]}"] if errors else []
