"""The design tutorials teach: Flask, the `twilio` RequestValidator, `celery.send_task`, under gunicorn.

Run as `gunicorn -w 2 'bench.baselines.tutorial_app:create_app()'` with TUTORIAL_AUTH_TOKEN,
TUTORIAL_BROKER_URL and TUTORIAL_QUEUE set. Each callback is validated, then published
with one `send_task` round trip to Redis before the 204.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from celery import Celery
from flask import Flask, abort, request
from twilio.request_validator import RequestValidator


def create_app() -> Flask:
    app = Flask(__name__)
    validator = RequestValidator(os.environ["TUTORIAL_AUTH_TOKEN"])
    celery_app = Celery("tutorial", broker=os.environ["TUTORIAL_BROKER_URL"])
    queue = os.environ.get("TUTORIAL_QUEUE", "celery")

    @app.post("/twilio/recording-status")
    def recording_status():
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            abort(403)
        payload = {"params": request.form.to_dict(), "received_at": datetime.now(UTC).isoformat()}
        celery_app.send_task("recvault.archive_event", args=[payload], queue=queue)
        return "", 204

    return app
