"""The webhook receiver of the benchmark: the SDK's verifying receiver on 127.0.0.1, with every
verified delivery's arrival time recorded and handed to the asyncio loop."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.clients import TERMINAL, Follow
from taskcast_client.webhooks import Delivery, WebhookReceiver


@dataclass(frozen=True)
class Receipt:
    task_id: str
    version: int
    status: str
    at: float
    repeat: bool


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class WebhookSink:
    def __init__(self, secret: str) -> None:
        self.receiver = WebhookReceiver(secret, on_delivery=self._on_delivery, out=_Discard(), log=_Discard())
        self.receipts: list[Receipt] = []
        self.listeners: list[Callable[[Receipt], None]] = []  # called from the receiver's threads
        self._follows: dict[str, tuple[Follow, asyncio.AbstractEventLoop]] = {}

    @property
    def url(self) -> str:
        return self.receiver.url

    def __enter__(self) -> WebhookSink:
        self.receiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()

    def follow(self, follow: Follow, loop: asyncio.AbstractEventLoop) -> None:
        self._follows[follow.task_id] = (follow, loop)

    def count(self) -> int:
        return len(self.receipts)

    def _on_delivery(self, delivery: Delivery) -> None:
        at = time.time()
        data: dict[str, Any] = delivery.data
        receipt = Receipt(
            str(data.get("task_id")), int(data.get("version", 0)), str(data.get("status")), at, delivery.repeat
        )
        self.receipts.append(receipt)
        for listener in self.listeners:
            listener(receipt)
        entry = self._follows.get(receipt.task_id)
        if entry is not None:
            follow, loop = entry
            loop.call_soon_threadsafe(_received, follow, receipt)


def _received(follow: Follow, receipt: Receipt) -> None:
    follow.messages += 1
    if receipt.status in TERMINAL:
        follow.know(receipt.status, receipt.at)
