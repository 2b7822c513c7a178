"""What a worker process needs, built once per process from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from recvault.settings import Settings
from recvault.storage.base import ObjectStore
from recvault.storage.s3 import S3Store
from recvault.workers.archive import ArchiveOptions
from recvault.workers.dlq import DeadLetters
from recvault.workers.policy import Policy
from recvault.workers.twilio_api import TwilioApi


@dataclass
class WorkerContext:
    """Clients and choices shared by every task a worker process runs."""

    settings: Settings
    twilio: TwilioApi
    store: ObjectStore
    policy: Policy
    dead_letters: DeadLetters
    options: ArchiveOptions

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        return cls(
            settings=settings,
            twilio=TwilioApi(
                base_url=str(settings.twilio_api_base_url),
                allowed_hosts=settings.allowed_media_hosts,
                credentials=settings.download_credentials,
            ),
            store=S3Store.from_settings(settings),
            policy=Policy.load(settings.policy_file),
            dead_letters=DeadLetters.connect(settings.broker_url, timeout=settings.redis_socket_timeout),
            options=ArchiveOptions(
                prefix=settings.s3_prefix,
                media_format=settings.media_format,
                delete_after_archive=settings.delete_after_archive,
                not_found_grace=timedelta(seconds=settings.not_found_grace_seconds),
            ),
        )
