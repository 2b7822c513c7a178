"""`recvault hold set|release|list`: legal holds on recordings, kept in a registry in the bucket."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from recvault.commands.options import actor_of, add_actor, day, reason, store_for
from recvault.settings import Settings

HELP = "set, release or list legal holds (S3 Object Lock legal hold on every object of a recording)"


def _hold_id(value: str) -> str:
    from recvault.compliance.holds import HoldError, check_hold_id

    try:
        return check_hold_id(value)
    except HoldError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    setting = sub.add_parser("set", help="hold every object of the selected recordings")
    setting.add_argument("recordings", nargs="*", metavar="RE…", help="RecordingSid(s)")
    setting.add_argument("--call", metavar="CA…", help="recordings of this CallSid")
    setting.add_argument("--account", metavar="AC…", help="recordings of this AccountSid")
    setting.add_argument("--label", action="append", default=[], metavar="K=V",
                         help="recordings carrying this label (repeatable: all must match)")
    setting.add_argument("--from", dest="date_from", type=day, metavar="D", help="recordings of this day or later")
    setting.add_argument("--to", dest="date_to", type=day, metavar="D", help="recordings of this day or earlier")
    setting.add_argument("--reason", required=True, type=reason, help="why (matter, case or request number)")
    setting.add_argument("--id", dest="hold_id", type=_hold_id,
                         help="a name for the hold (default: made from the time)")
    add_actor(setting)
    release = sub.add_parser("release", help="release one hold; recordings another hold covers stay held")
    release.add_argument("hold_id", metavar="HOLD")
    release.add_argument("--reason", required=True, type=reason, help="why the hold ends")
    add_actor(release)
    listing = sub.add_parser("list", help="active holds: who set them, when and why")
    listing.add_argument("--all", action="store_true", help="released holds too")
    listing.add_argument("--json", action="store_true", help="one JSON line per hold")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.audit.seal import seal_retention
    from recvault.compliance.hold_selector import BadSelector, Selector, parse_label
    from recvault.compliance.holds import HoldError, list_holds, release_hold, set_hold
    from recvault.compliance.policy import Policy

    now = datetime.now(UTC)
    # The registry's records are kept like the seals: COMPLIANCE, as long as any recording may be.
    locked = seal_retention(Policy.from_settings(settings).longest_retention_days(), now) if (
        args.hold_command in ("set", "release")) else None
    try:
        if args.hold_command == "set":
            selector = Selector(tuple(args.recordings), args.call, args.account,
                                dict(parse_label(text) for text in args.label), args.date_from, args.date_to)
            hold, chosen = set_hold(store_for(settings), settings.s3_prefix, selector, reason=args.reason,
                                    actor=actor_of(args), now=now, hold_id=args.hold_id, record_retention=locked)
            for located in chosen:
                print(f"held {located.sid} {located.date}")
            print(f"hold {hold.hold_id} set on {len(chosen)} recording(s): {selector.describe()}", file=sys.stderr)
            return 0
        if args.hold_command == "release":
            hold, released, kept = release_hold(store_for(settings), settings.s3_prefix, args.hold_id,
                                                reason=args.reason, actor=actor_of(args), now=now,
                                                record_retention=locked)
            for sid in released:
                print(f"released {sid}")
            for sid, keepers in kept.items():
                print(f"still held {sid} by {', '.join(keepers)}")
            print(f"hold {hold.hold_id} released: {len(released)} recording(s) released, "
                  f"{len(kept)} still held", file=sys.stderr)
            return 0
    except (BadSelector, HoldError) as error:
        print(f"recvault: hold {args.hold_command}: {error}", file=sys.stderr)
        return 2
    holds = [h for h in list_holds(store_for(settings), settings.s3_prefix) if args.all or h.active]
    for hold in holds:
        if args.json:
            print(json.dumps({**hold.record(), "released": hold.released}))
        else:
            state = "active" if hold.active else f"released {hold.released and hold.released.get('at')}"
            print(f"{hold.hold_id}  {hold.at}  {hold.actor}  {len(hold.recordings)} recording(s)  {state}  "
                  f"{json.dumps(hold.selector)}  {hold.reason}")
    if not holds and not args.json:
        print("no holds" if args.all else "no active holds")
    return 0
