"""What the ingest handlers share: settings, Celery app, hand-off, metrics and the operations read models."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from celery import Celery

from recvault.ingest.handoff import Handoff
from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.ops.context import Operations
from recvault.settings import Settings


@dataclass
class IngestContext:
    """Resources built once per app in its cleanup context."""

    settings: Settings
    celery: Celery
    metrics: IngestMetrics
    handoff: Handoff
    # The operations routes' read models; None while RECVAULT_API_TOKEN is empty (they answer 404).
    ops: Operations | None = None


INGEST = web.AppKey("ingest", IngestContext)
