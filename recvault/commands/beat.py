"""`recvault beat`: the Celery beat process that schedules recvault's periodic tasks (run exactly one)."""

from __future__ import annotations

import argparse

from recvault.settings import Settings

HELP = ("schedule the daily reconcile of the previous day and the price sweep, the audit trail's seals "
        "and the accepted-callback ledger's flush (Celery beat; run one; workers run the jobs)")

# Beat's scheduler, by name: it publishes through recvault's queue writer.
SCHEDULER = "recvault.workers.beat_schedule:WriterScheduler"
# Longest beat sleeps between looking at its schedule, in seconds.
MAX_SLEEP_SECONDS = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedule-file", default=None,
                        help="where beat keeps when each job last ran (default RECVAULT_DATA_DIR/beat-schedule)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from celery.apps.beat import Beat

    from recvault.compliance.policy import Policy
    from recvault.logs import configure_logging
    from recvault.queue.celery_factory import create_celery
    from recvault.workers.beat_schedule import beat_schedule

    configure_logging(settings.log_level, settings.log_format)
    # Beat schedules jobs the workers run under the policy: a broken one stops it here too (exit 2).
    Policy.from_settings(settings)
    app = create_celery(settings)
    app.conf.beat_schedule = beat_schedule()
    schedule_file = args.schedule_file or str(settings.data_dir / "beat-schedule")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Beat keeps the schedule file, so a job due while it was stopped runs once when it starts
    # again; SIGTERM and SIGINT save it and stop beat (exit 0).
    Beat(app=app, scheduler=SCHEDULER, schedule=schedule_file, loglevel=settings.log_level,
         max_interval=MAX_SLEEP_SECONDS, redirect_stdouts=False, quiet=True).run()
    return 0
