"""What a worker holds, for its heartbeat: its channel's messages and tasks still running from before a reconnect."""

from __future__ import annotations

from types import SimpleNamespace

from celery.worker import state

from recvault.queue.heartbeat import held_tags


class _Request:
    """The part of a Celery request the heartbeat reads: the message it came in."""

    def __init__(self, tag: str) -> None:
        self.message = SimpleNamespace(delivery_tag=tag)


def _consumer(*tags: str) -> SimpleNamespace:
    qos = SimpleNamespace(_delivered=dict.fromkeys(tags))
    return SimpleNamespace(task_consumer=SimpleNamespace(channel=SimpleNamespace(qos=qos)))


def test_tasks_still_running_from_a_closed_channel_stay_held() -> None:
    # The connection dropped: Celery's new channel holds "new"; "running" came on the old one and runs on.
    running, both = _Request("running"), _Request("new")
    state.active_requests.add(running)
    state.active_requests.add(both)
    try:
        assert sorted(held_tags(_consumer("new", "waiting-for-eta"))) == ["new", "running", "waiting-for-eta"]
    finally:
        state.active_requests.discard(running)
        state.active_requests.discard(both)
    assert held_tags(_consumer("new")) == ["new"]


def test_a_consumer_without_a_channel_holds_only_what_runs() -> None:
    running = _Request("running")
    state.active_requests.add(running)
    try:
        assert held_tags(SimpleNamespace(task_consumer=None)) == ["running"]
    finally:
        state.active_requests.discard(running)
    assert held_tags(SimpleNamespace()) == []
