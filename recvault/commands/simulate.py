"""`recvault simulate serve|send`: run the simulated Twilio API, or play Twilio's callbacks."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys

from recvault.events import KNOWN_SOURCES
from recvault.settings import Settings
from recvault.simulator.recordings import NO_PUBLIC_KEY, OUTCOMES, SILENT, SimRecording, new_sid

# aiohttp and the callback sender are imported where they are used: every `recvault` command
# (a worker process too) builds this module's parser.

HELP = "the Twilio simulator: serve its API and media, or send signed recording callbacks"
CONFERENCE_SOURCES = {"Conference", "StartConferenceRecordingAPI"}
CONTROL_BATCH = 1000
# (source, channels, duration): the three recordings `send --demo` archives.
DEMO = (("DialVerb", 1, 20), ("StartCallRecordingAPI", 2, 45), ("Conference", 1, 30))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="sim_action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the Twilio Recording API and media")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8180, help="port to listen on (default 8180)")
    serve.add_argument("--public-url", default="", help="base URL used in media_url (default: as requested)")
    serve.add_argument("--api-key-sid", help="an API key SID (SK…) accepted for the account")
    serve.add_argument("--api-key-secret", help="that API key's secret")
    send = actions.add_parser("send", help="create recordings in a running simulator, send their callbacks")
    send.add_argument("--to", required=True, help="the Recording Status Callback URL")
    send.add_argument("--count", type=int, default=1, help="recordings to create (default 1)")
    send.add_argument("--rate", type=float, default=0, help="callbacks started per second (default: no limit)")
    send.add_argument("--method", choices=("POST", "GET"), default="POST")
    send.add_argument("--channels", type=int, choices=(1, 2), default=2)
    send.add_argument("--source", default="StartCallRecordingAPI",
                      help="RecordingSource, or 'mixed' to cycle through every known source")
    send.add_argument("--duration", type=int, default=30, help="seconds of audio per recording (default 30)")
    send.add_argument("--outcome", choices=OUTCOMES, default="completed")
    send.add_argument("--encrypted", action="store_true", help="recordings use Voice Recording Encryption")
    send.add_argument("--no-in-progress", action="store_true", help="send only the final callback")
    send.add_argument("--concurrency", type=int, default=64, help="callbacks in flight (default 64)")
    send.add_argument("--api-base", help="the simulator's base URL (default RECVAULT_TWILIO_API_BASE_URL)")
    send.add_argument("--demo", action="store_true", help="three varied recordings, listed one per line")
    send.add_argument("--json", action="store_true", help="print the summary as JSON")
    for sub in (serve, send):
        sub.add_argument("--account-sid", help="AccountSid (default RECVAULT_TWILIO_ACCOUNT_SID)")
        sub.add_argument("--auth-token", help="its Auth Token (default: first of RECVAULT_TWILIO_AUTH_TOKENS)")


def _account(args: argparse.Namespace, settings: Settings | None) -> tuple[str, str]:
    sid = args.account_sid or (settings.twilio_account_sid if settings else None)
    token = args.auth_token or (next(iter(settings.tokens_for(sid)), None) if settings and sid else None)
    if not sid or not token:
        raise SystemExit("recvault simulate: needs --account-sid and --auth-token "
                         "(or RECVAULT_TWILIO_ACCOUNT_SID and RECVAULT_TWILIO_AUTH_TOKENS)")
    return sid, token


def serve(args: argparse.Namespace, settings: Settings | None) -> int:
    from aiohttp import web

    from recvault.simulator.api import create_sim_app
    from recvault.simulator.recordings import SimState

    state = SimState()
    account, token = _account(args, settings)
    state.add_account(account, token)
    for sub, tokens in (settings.twilio_subaccount_tokens.items() if settings else ()):
        if sub != account:
            state.add_account(sub, tokens[0].get_secret_value())
    key_sid = args.api_key_sid or (settings.twilio_api_key_sid if settings else None)
    key_secret = args.api_key_secret or (
        settings.twilio_api_key_secret.get_secret_value()
        if settings and settings.twilio_api_key_secret else None)
    keys = [state.add_api_key(account, key_sid, key_secret)[0]] if key_sid and key_secret else []
    print(f"Twilio simulator on http://{args.host}:{args.port} for {', '.join(state.accounts)}"
          + (f" (API key {', '.join(keys)})" if keys else ""), file=sys.stderr, flush=True)
    web.run_app(create_sim_app(state, public_base_url=args.public_url), host=args.host,
                port=args.port, print=None, access_log=None)
    return 0


def plan_recordings(args: argparse.Namespace, account: str) -> list[SimRecording]:
    """The recordings `send` creates, from its flags (or the demo set)."""
    if args.demo:
        specs = [(source, channels, duration) for source, channels, duration in DEMO]
    else:
        sources = itertools.cycle(sorted(KNOWN_SOURCES)) if args.source == "mixed" else itertools.repeat(args.source)
        specs = [(next(sources), args.channels, args.duration) for _ in range(args.count)]
    error_code = {"completed": None, "absent": int(SILENT), "failed": int(NO_PUBLIC_KEY)}[args.outcome]
    plan = []
    for source, channels, duration in specs:
        conference = source in CONFERENCE_SOURCES
        plan.append(SimRecording(
            account_sid=account, channels=channels, duration=duration, source=source, status=args.outcome,
            call_sid=None if conference else new_sid("CA"),
            conference_sid=new_sid("CF") if conference else None,
            track="both", encrypted=args.encrypted, error_code=error_code,
        ))
    return plan


async def _create(api_base: str, plan: list[SimRecording]) -> None:
    import aiohttp

    from recvault.simulator.control import recording_to_json

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for start in range(0, len(plan), CONTROL_BATCH):
            batch = [recording_to_json(r) for r in plan[start:start + CONTROL_BATCH]]
            async with session.post(f"{api_base}/_sim/recordings", json=batch) as response:
                if response.status != 201:
                    raise SystemExit(f"recvault simulate: the simulator at {api_base} refused the "
                                     f"recordings ({response.status}): {await response.text()}")


async def _send(args: argparse.Namespace, account: str, token: str, api_base: str) -> dict:
    import aiohttp

    from recvault.simulator.callbacks import CallbackSender, callback_sequence, summarize

    plan = plan_recordings(args, account)
    try:
        await _create(api_base, plan)
    except aiohttp.ClientError as error:
        raise SystemExit(f"recvault simulate: no simulator at {api_base}: {type(error).__name__}") from None
    sequences = [callback_sequence(r, args.outcome, api_base=api_base, in_progress=not args.no_in_progress)
                 for r in plan]
    results = []
    async with CallbackSender(args.to, auth_token=token, method=args.method,
                              concurrency=args.concurrency) as sender:
        for step in range(max(len(s) for s in sequences)):  # every in-progress, then every final
            wave = [sender.prepare(s[step]) for s in sequences if step < len(s)]
            results += await sender.send_many(wave, rate=args.rate or None)
    summary = summarize(results)
    summary["recordings"] = [{"sid": r.sid, "source": r.source, "channels": r.channels,
                              "duration": r.duration} for r in plan]
    return summary


def send(args: argparse.Namespace, settings: Settings | None) -> int:
    account, token = _account(args, settings)
    api_base = (args.api_base or (str(settings.twilio_api_base_url) if settings else "")).rstrip("/")
    if not api_base:
        raise SystemExit("recvault simulate: needs --api-base (the simulator's URL)")
    summary = asyncio.run(_send(args, account, token, api_base))
    if args.json:
        print(json.dumps(summary))
    else:
        if args.demo:
            for rec in summary["recordings"]:
                print(f"  {rec['sid']}  {rec['source']:<22} {rec['channels']} ch  {rec['duration']} s")
        statuses = ", ".join(f"{code}×{n}" for code, n in sorted(summary["statuses"].items()))
        print(f"sent {summary['sent']} callbacks for {len(summary['recordings'])} recordings to "
              f"{args.to} ({args.method}): {statuses}; retried {summary['retried']}, "
              f"errors {summary['errors']}; latency p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms")
    return 0 if summary["ok"] == summary["sent"] else 1


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    """Entry point for `recvault simulate` (settings may be None: then flags are required)."""
    return serve(args, settings) if args.sim_action == "serve" else send(args, settings)


def run_simulate(argv: list[str]) -> int:
    """`recvault simulate` on its own, configured by flags only."""
    parser = argparse.ArgumentParser(prog="recvault simulate", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv), None)


if __name__ == "__main__":
    sys.exit(run_simulate(sys.argv[1:]))
