"""The OpenAPI 3 description of the operations routes, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from recvault import __version__
from recvault.ops.query import DEFAULT_LIMIT, MAX_LIMIT
from recvault.ops.recordings import MEDIA_URL_SECONDS


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_DATE = {"type": "string", "format": "date"}
_SID = {"type": "string", "pattern": "^RE[0-9a-fA-F]{32}$"}
_ERROR = {"description": "Refused, with the reason", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_SID_PARAMETER = {"name": "RecordingSid", "in": "path", "required": True, "schema": _SID}
_DAY_PARAMETER = _query("date", "The recording's partition day; without it the last 400 days are searched.", _DATE)
_THROTTLED = {"description": "Too many failed sign-ins from this address: try again after Retry-After seconds",
              "headers": {"Retry-After": {"schema": {"type": "integer"}}},
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_REFUSALS = {"400": _ERROR, "401": _ERROR, "404": _ERROR, "429": _THROTTLED, "503": _ERROR}

RECORDING_PARAMETERS = [
    _query("from", "First day (YYYY-MM-DD, the recording's start date in UTC).", _DATE),
    _query("to", "Last day (YYYY-MM-DD).", _DATE),
    _query("account", "AccountSid (AC…).", {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"}),
    _query("call", "CallSid (CA…).", {"type": "string", "pattern": "^CA[0-9a-fA-F]{32}$"}),
    _query("source", "Twilio's RecordingSource, e.g. DialVerb, Conference."),
    _query("status", "Comma-separated Twilio statuses; default completed,absent,failed."),
    _query("tag", "An S3 tag the retention policy set: name, or name=value."),
    _query("label", "A label the callback URL carried: name, or name=value."),
    _query("rule", "The retention policy rule that applied."),
    _query("limit", f"Items per page, 1-{MAX_LIMIT}.",
           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    _query("cursor", "next_cursor of the previous page (with the same filters)."),
]


def openapi_document() -> dict[str, Any]:
    """The whole document; its paths are exactly the operations routes."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "recvault operations API", "version": __version__,
                 "description": "Read the archive of Twilio call recordings. Media access is recorded "
                                "in the recording's audit trail, under the person the sign-in proxy names "
                                "(RECVAULT_IDENTITY_HEADER) or else the X-Recvault-User name when given. "
                                "Wrong tokens make their address back off (429 with Retry-After)."},
        "security": [{"bearer": []}],
        "paths": {
            "/api/recordings": {"get": {
                "summary": "Archived recordings, newest day first, filtered, one page at a time",
                "parameters": RECORDING_PARAMETERS,
                "responses": {"200": {"description": "A page; follow next_cursor until it is null",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Page"}}}}, **_REFUSALS},
            }},
            "/api/recordings/{RecordingSid}": {"get": {
                "summary": "A recording's metadata document, event documents, audit history and dead letters",
                "parameters": [_SID_PARAMETER, _DAY_PARAMETER],
                "responses": {"200": {"description": "What the archive holds for the recording",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Recording"}}}}, **_REFUSALS},
            }},
            "/api/recordings/{RecordingSid}/media": {"get": {
                "summary": f"Redirect to a presigned URL of the archived media, valid {MEDIA_URL_SECONDS} s",
                "parameters": [_SID_PARAMETER, _DAY_PARAMETER, {
                    "name": "X-Recvault-User", "in": "header", "required": False,
                    "description": "Who is listening, as recorded in the audit trail (as the caller's own "
                                   "word; a name from the sign-in proxy wins).",
                    "schema": {"type": "string", "maxLength": 128}}],
                "responses": {"302": {"description": "Location: the presigned URL (audit record written first)",
                                      "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}},
                              "403": _ERROR, **_REFUSALS},
            }},
            "/api/openapi.json": {"get": {"summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI 3 document"},
                                                        "401": _ERROR, "404": _ERROR, "429": _THROTTLED}}},
            "/status": {"get": {"summary": "The status page (HTML)",
                                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}},
                                              "303": {"description": "A browser (Accept: text/html) without a "
                                                                     "sign-in: to the sign-in form, /status/login"},
                                              "401": _ERROR, "404": _ERROR, "429": _THROTTLED}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "RECVAULT_API_TOKEN"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Entry": {"type": "object", "properties": {
                    name: {"type": kind, "nullable": True} for name, kind in ENTRY_FIELDS.items()}},
                "Page": {"type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
                    "next_cursor": {"type": "string", "nullable": True},
                    "scanned": {"type": "integer"}}},
                "Recording": {"type": "object", "required": ["sid", "recording", "events", "audit"], "properties": {
                    "sid": _SID, "date": {**_DATE, "nullable": True},
                    "recording": {"type": "object", "nullable": True,
                                  "description": "The metadata document, as archived"},
                    "events": {"type": "array", "items": {"type": "object"}},
                    "audit": {"type": "array", "items": {"type": "object"}},
                    "audit_days_skipped": {"type": "integer"},
                    "dead_letters": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }


# The fields of a listing item (recvault.ops.entries.Entry.to_json) and their JSON types.
ENTRY_FIELDS = {
    "sid": "string", "date": "string", "status": "string", "account_sid": "string", "call_sid": "string",
    "conference_sid": "string", "source": "string", "channels": "integer", "duration": "integer",
    "price": "string", "price_unit": "string", "error_code": "integer", "received_at": "string",
    "done_at": "string", "latency_seconds": "number", "rule": "string", "tags": "object", "labels": "object",
    "media_size": "integer", "links": "object",
}
