"""The operations routes of the ingest service: status page, API, sign-in, OpenAPI document, charts."""
