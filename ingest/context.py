"""What the ingest handlers share: settings, Celery app, hand-off and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from celery import Celery

from recvault.ingest.handoff import Handoff
from recvault.ingest.metrics import IngestMetrics
from recvault.settings import Settings


@dataclass
class IngestContext:
    """Resources built once per app in its cleanup context."""

    settings: Settings
    celery: Celery
    metrics: IngestMetrics
    handoff: Handoff


INGEST = web.AppKey("ingest", IngestContext)
