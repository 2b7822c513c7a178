"""The queue between ingest and workers: the Celery app, task names and the message writer."""
