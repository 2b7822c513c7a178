"""`recvault dlq list|show|replay|drop`: inspect and replay events that failed for good."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import cast

from recvault.settings import Settings

HELP = "list, show, replay or drop dead-lettered events"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="one line per failed event, oldest first")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = sub.add_parser("show", help="everything kept about one failed event")
    show.add_argument("id")
    replay = sub.add_parser("replay", help="hand failed events back to the workers")
    replay.add_argument("ids", nargs="*", help="ids to replay (see list)")
    replay.add_argument("--all", action="store_true", help="replay every dead-lettered event")
    drop = sub.add_parser("drop", help="forget failed events without replaying them")
    drop.add_argument("ids", nargs="+")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.queue.celery_factory import create_celery
    from recvault.queue.writer import QueueWriter, build_message
    from recvault.workers.context import dead_letter_store
    from recvault.workers.dead_letters import DeadLetter

    letters = dead_letter_store(settings)
    if args.dlq_command == "list":
        listed = letters.list()
        if letters.s3_error:
            print(f"recvault: dead letters in S3 not read ({letters.s3_error}); listing Redis only",
                  file=sys.stderr)
        for letter in listed:
            if args.json:
                print(json.dumps(letter.__dict__))
            else:
                print(f"{letter.failed_at}  {letter.id:<48} {letter.error:<20} {letter.reason}")
        if not listed and not args.json:
            print("no dead letters")
        return 0
    if args.dlq_command == "show":
        shown = letters.get(args.id)
        if shown is None:
            print(f"recvault: no dead letter {args.id!r}", file=sys.stderr)
            return 1
        print(json.dumps(shown.__dict__, indent=2))
        return 0
    if args.dlq_command == "drop":
        missing: list[str] = []
        for wanted in args.ids:
            dropped = letters.get(wanted)
            if dropped is None:
                missing.append(wanted)
                print(f"recvault: no dead letter {wanted!r}", file=sys.stderr)
            else:
                letters.resolve(dropped, "dropped")
        return 1 if missing else 0
    if not args.ids and not args.all:
        print("recvault: name ids to replay, or --all", file=sys.stderr)
        return 2
    app = create_celery(settings)
    # Through recvault's writer, like callbacks: recorded as pending when queued, so a worker
    # killed while taking a replayed event cannot lose it; published once per letter.
    writer = QueueWriter.for_app(app, settings.queue, settings.dedup_ttl_seconds,
                                 timeout=settings.redis_socket_timeout_seconds,
                                 connect_timeout=settings.redis_connect_timeout_seconds)

    def publish(letter: DeadLetter) -> Callable[[str, object], object]:
        def send(task: str, payload: object) -> bool:
            key = f"replay:{letter.id}:{letter.failed_at}"
            return writer.publish(build_message(app, settings.queue, key, cast(dict, payload), task=task))
        return send

    chosen = letters.list() if args.all else [letters.get(i) for i in args.ids]
    replayed = 0
    for wanted, found in zip(args.ids or [None] * len(chosen), chosen, strict=True):
        if found is None:
            print(f"recvault: no dead letter {wanted!r}", file=sys.stderr)
            continue
        tombstone = letters.replay(found, publish(found))
        if tombstone is not None:
            print(f"recvault: not replayed {found.id}: its recording was erased ({tombstone}); "
                  f"`recvault dlq drop {found.id}` forgets it", file=sys.stderr)
            continue
        replayed += 1
    print(f"replayed {replayed} event(s)")
    return 0 if replayed == len(chosen) else 1
