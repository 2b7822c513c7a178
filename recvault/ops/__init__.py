"""The operations read model: what the archive holds and how the pipeline is doing, read back bounded.

Ingest's operations routes (`/status`, `/api/recordings…`) present it; it reads the bucket
through the `ObjectStore` interface and the broker through `recvault.queue`, never the
other way round, and caps what one request may cost.
"""
