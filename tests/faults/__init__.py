"""The fault-injection suite: real processes, real faults, counted outcomes.

    harness       Stack: private redis-server and SeaweedFS, the Twilio simulator, ingest and workers
    peers         the witnessed simulator (checks S3 at every Twilio DELETE) and a foreign host
    traffic       signed callbacks sent through the simulator's CallbackSender, answers tallied
    ledger        what ingest pushed on the queue, read back from Redis's append-only file
    archive_view  what the bucket holds: every version, document, audit record and upload
    verdict       accepted, archived, dead-lettered, lost, duplicated, plus the common checks
    result        one row per scenario and the Markdown table
    scenarios     the eight scenarios, each with a quick and a full size

`python -m tests.faults` runs the full suite and prints the table; `--quick` runs small sizes.
"""
