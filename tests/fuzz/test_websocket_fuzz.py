"""A hypothesis-driven WebSocket fuzzer on a real local stack: random text, random bytes, huge frames, deep
JSON and wrong types. Every frame gets an ``error`` message (or a pong / task message for the valid ones)
or, over the 128 KB message limit, a 1009 close; the gateway and handlers stay up for the next client."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from taskcast.local.testing import RunningStack
from tests.conftest import TENANTS

KEY = TENANTS["acme"]["api_key"]
ANSWERS = {"error", "pong", "task.status"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
wrong_types = st.fixed_dictionaries(
    {"action": st.one_of(st.sampled_from(["subscribe", "unsubscribe", "ping", "", "$connect"]), json_values)},
    optional={"task_id": json_values, "since_version": json_values},
)


def _deep(depth: int) -> str:
    return '{"action":"subscribe","task_id":' + "[" * depth + "1" + "]" * depth + "}"


frames = st.one_of(
    st.just(""),
    st.text(min_size=1, max_size=200),
    st.binary(min_size=1, max_size=200),
    wrong_types.map(json.dumps),
    json_values.map(json.dumps),
    st.integers(min_value=50, max_value=5000).map(_deep),
    st.integers(min_value=33_000, max_value=120_000).map(lambda n: json.dumps({"action": "ping", "pad": "x" * n})),
    st.integers(min_value=140_000, max_value=300_000).map(lambda size: "x" * size),
)


def _is_json(frame: str | bytes) -> bool:
    if isinstance(frame, bytes):
        return False
    try:
        json.loads(frame)
    except (ValueError, RecursionError):  # too deep for Python's parser: the handler refuses it too
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          report_multiple_bugs=False)
@given(frame=frames)
@example(frame="")  # an empty text frame: API Gateway routes it to $default, which refuses it
def test_any_frame_gets_an_answer_and_the_gateway_stays_up(stack: RunningStack, frame: str | bytes) -> None:
    with connect(stack.websocket_url(KEY), open_timeout=30, max_size=None) as connection:
        connection.send(frame)
        # Frames that are not JSON must get an error; then a ping must get its pong (replies to one frame may
        # overtake another's, and a valid unsubscribe rightly answers nothing, so no reply is paired).
        try:
            replies = []
            if not _is_json(frame):
                while (reply := json.loads(connection.recv(timeout=20)))["type"] != "error":
                    replies.append(reply)
                replies.append(reply)
            connection.send(json.dumps({"action": "ping"}))
            while (reply := json.loads(connection.recv(timeout=20)))["type"] != "pong":
                replies.append(reply)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
            assert len(frame) > 128 * 1024
            return
        assert all(reply.get("type") in ANSWERS for reply in replies), replies
        errors = [reply for reply in replies if reply["type"] == "error"]
        assert all(isinstance(e.get("code"), str) and isinstance(e.get("message"), str) for e in errors), errors
    # The gateway is still up for a new client.
    with connect(stack.websocket_url(KEY), open_timeout=30) as fresh:
        fresh.send(json.dumps({"action": "ping"}))
        assert json.loads(fresh.recv(timeout=20)) == {"type": "pong"}
