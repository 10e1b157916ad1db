"""The chaos suite's answer policy for the tests' webhook receiver: a share of requests answer 500, time out
(held past the sender's timeout) or have their connection reset; the receiver verifies and records every
request, so the suite can count deliveries, retries and duplicates."""

from __future__ import annotations

import random
import threading
from collections import Counter

from tests.support.webhook_receiver import Answer, WebhookReceiver

FAULTS = ("http_500", "timeout", "reset")


class FlakyAnswers:
    def __init__(self, fault_rate: float, hold_s: float, seed: int = 7, max_faults_per_id: int = 4) -> None:
        self.fault_rate = fault_rate
        self.max_faults_per_id = max_faults_per_id
        self._faults = {"http_500": Answer(500, kind="http_500"), "timeout": Answer(hold_s=hold_s, kind="timeout"),
                        "reset": Answer(reset=True, kind="reset")}
        self._faults_by_id: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def answer(self, path: str, webhook_id: str) -> Answer:
        # A fault at the configured rate, but never more than max_faults_per_id in a row for one delivery,
        # so that the retry schedule (longer than that) always ends in a delivery and nothing is dead-lettered.
        with self._lock:
            if self._faults_by_id[webhook_id] >= self.max_faults_per_id or self._random.random() >= self.fault_rate:
                return Answer()
            self._faults_by_id[webhook_id] += 1
            return self._faults[self._random.choice(FAULTS)]


def flaky_receiver(secret: str, fault_rate: float, hold_s: float, seed: int = 7,
                   max_faults_per_id: int = 4) -> WebhookReceiver:
    return WebhookReceiver(secret, answers=FlakyAnswers(fault_rate, hold_s, seed, max_faults_per_id))
