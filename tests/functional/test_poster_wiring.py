"""The push functions post through the lean ``PostToConnection`` client, with the poster's semantics kept:
a frame arrives, a gone connection is reported as gone (for cleanup), a throttled post is retried."""

from __future__ import annotations

import pytest

from taskcast.push.connections_client import ConnectionsClient
from taskcast.push.fanout import PostFailed, PostOutcome
from tests.support.push_env import PushEnv

pytest_plugins = ["tests.support.push_fixtures"]


def test_the_push_deps_post_through_the_lean_client(push_env: PushEnv) -> None:
    poster = push_env.push.poster
    assert isinstance(poster.client, ConnectionsClient)
    assert push_env.websocket.poster is poster  # one client and pool for the WebSocket replies too

    connection = push_env.connections.connect()
    assert poster.post(connection, b'{"type":"task.status","version":1}') is PostOutcome.DELIVERED
    assert push_env.connections.frames(connection) == [{"type": "task.status", "version": 1}]


def test_gone_and_throttled_posts_keep_the_poster_semantics(push_env: PushEnv) -> None:
    poster = push_env.push.poster
    gone = push_env.connections.connect()
    push_env.connections.disconnect(gone)
    assert poster.post(gone, b"{}") is PostOutcome.GONE

    throttled = push_env.connections.connect()
    push_env.connections.throttle(throttled, 2)
    assert poster.post(throttled, b'{"n":1}') is PostOutcome.DELIVERED
    assert push_env.connections.frames(throttled) == [{"n": 1}]

    stuck = push_env.connections.connect()
    push_env.connections.throttle(stuck, 100)
    with pytest.raises(PostFailed):
        poster.post(stuck, b"{}", budget_s=0.3)
