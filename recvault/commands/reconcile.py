"""`recvault reconcile`: find recordings Twilio has that the archive lacks, and queue them."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from recvault.settings import Settings

HELP = "compare Twilio's recording list with the archive; --enqueue archives what is missing"


# How long a recording queued by reconcile is not queued again by the next run.
RECONCILE_DEDUP_SECONDS = 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", required=True, help="DateCreated on or after (YYYY-MM-DD)")
    parser.add_argument("--until", help="DateCreated on or before (YYYY-MM-DD)")
    parser.add_argument("--account", help="AccountSid (default RECVAULT_TWILIO_ACCOUNT_SID)")
    parser.add_argument("--enqueue", action="store_true", help="queue the missing recordings for archiving")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.queue.app import create_celery
    from recvault.queue.writer import QueueWriter, build_message
    from recvault.storage.s3 import S3Store
    from recvault.workers.reconcile import callback_params, missing_recordings
    from recvault.workers.twilio_api import TwilioApi

    account = args.account or settings.twilio_account_sid
    if not account:
        print("recvault: reconcile needs --account or RECVAULT_TWILIO_ACCOUNT_SID", file=sys.stderr)
        return 2
    twilio = TwilioApi(base_url=str(settings.twilio_api_base_url), allowed_hosts=settings.allowed_media_hosts,
                       credentials=settings.download_credentials)
    store = S3Store.from_settings(settings)
    app = create_celery(settings) if args.enqueue else None
    # recvault's writer, as for callbacks: pending records, and one publication per recording
    # for an hour, so running reconcile twice in a row queues nothing twice.
    writer = QueueWriter.for_app(app, settings.queue, RECONCILE_DEDUP_SECONDS, timeout=settings.redis_socket_timeout,
                                 connect_timeout=settings.redis_connect_timeout) if app is not None else None
    count = 0
    for recording in missing_recordings(twilio, store, settings.s3_prefix, account, since=args.since, until=args.until):
        count += 1
        print(f"missing {recording['sid']} {recording.get('start_time')}")
        if app is not None and writer is not None:
            url = twilio.recording_url(account, recording["sid"])
            payload = {"params": callback_params(recording, url),
                       "received_at": datetime.now(UTC).isoformat(), "idempotency_token": None}
            writer.publish(build_message(app, settings.queue, f"reconcile:{recording['sid']}", payload))
    print(f"{count} recording(s) missing from the archive" + (", queued" if args.enqueue and count else ""),
          file=sys.stderr)
    return 0
