"""Celery protocol-2 task messages in kombu's Redis envelope, rendered from a template.

Celery's own builder (`app.amqp.as_task_v2`) plus two JSON encodings cost about 28 µs per
message, the largest single item on ingest's hot path. Every message of one task on one
queue differs only in four places: the task id, the argsrepr, the body and the delivery tag.
So the builder runs once per (app, queue, task) on a placeholder message, and its JSON text
becomes a template with those four holes; a message is then one JSON encoding of the
payload, one base64 and one string format (about 8 µs). Messages that carry an ETA or a
retry count (the dead-letter replay, beat) take Celery's builder as before.

`tests/queue/test_task_message.py` checks, for the installed Celery, that a rendered
message is identical to the one the builder would have produced.
"""

from __future__ import annotations

import base64
import json
import weakref
from typing import Any

from celery import Celery

from recvault.queue import kombu_redis

# Placeholders: strings no header, queue or task name of recvault's ever holds.
_ID = "@@recvault-task-id@@"
_ARGSREPR = "@@recvault-argsrepr@@"
_BODY = "@@recvault-body@@"
_TAG = "@@recvault-delivery-tag@@"
_PAYLOAD = "@@recvault-payload@@"
_COMPACT = (",", ":")
# json.dumps builds a new encoder per call when given separators; this one is built once.
_ENCODE = json.JSONEncoder(separators=_COMPACT).encode


class MessageTemplate:
    """The JSON text of one task's messages on one queue, with its per-message parts open."""

    def __init__(self, app: Celery, queue: str, task: str, *, origin: str) -> None:
        headers, properties, body, _ = app.amqp.as_task_v2(
            _ID, task, args=(_PAYLOAD,), kwargs={}, ignore_result=True,
            argsrepr=_ARGSREPR, kwargsrepr="{}", origin=origin,
        )
        # The envelope base64-encodes the body, so the body gets a template of its own.
        body_text = json.dumps(body, separators=_COMPACT)
        self._body_head, self._body_tail = _split(body_text, json.dumps(_PAYLOAD))
        text = kombu_redis.envelope_text(_BODY, headers, properties, routing_key=queue, delivery_tag=_TAG)
        # str.format: literal braces doubled, then each quoted placeholder becomes a field.
        text = text.replace("{", "{{").replace("}", "}}")
        for placeholder, field in ((_ID, "{i}"), (_ARGSREPR, "{a}"), (_BODY, "{b}"), (_TAG, "{t}")):
            quoted = json.dumps(placeholder)
            if quoted not in text:  # Celery changed where it puts these: refuse rather than guess
                raise RuntimeError(f"Celery's message has no {placeholder}; the template cannot be built")
            text = text.replace(quoted, field)
        self._format = text.format

    def render(self, task_id: str, argsrepr: str, payload: Any, delivery_tag: str) -> str:
        """One message's JSON text, as Celery's builder and kombu's envelope would write it."""
        body = self._body_head + _ENCODE(payload) + self._body_tail
        return self._format(
            i=json.dumps(task_id),
            a=json.dumps(argsrepr),
            b='"' + base64.b64encode(body.encode()).decode() + '"',
            t=json.dumps(delivery_tag),
        )


def _split(text: str, placeholder: str) -> tuple[str, str]:
    head, found, tail = text.partition(placeholder)
    if not found:
        raise RuntimeError("Celery's message body has no payload placeholder; the template cannot be built")
    return head, tail


# Templates per app, so an app's configuration change (a new app in tests) never reuses another's.
_TEMPLATES: weakref.WeakKeyDictionary[Celery, dict[tuple[str, str, str], MessageTemplate]] = (
    weakref.WeakKeyDictionary()
)


def template_for(app: Celery, queue: str, task: str, *, origin: str) -> MessageTemplate:
    """The template for `task` on `queue` of `app`, built on first use."""
    per_app = _TEMPLATES.setdefault(app, {})
    key = (queue, task, origin)
    template = per_app.get(key)
    if template is None:
        template = per_app[key] = MessageTemplate(app, queue, task, origin=origin)
    return template
