"""Tenant slots passed straight from an attempt that ended to a job of the same tenant waiting in this
process.

A tenant's slots (``taskcast.store.DeliverySlots``) live in DynamoDB so that the cap holds across
invocations. Giving a slot back and having a waiting job take it again costs three calls (the update that
frees it, then a read and a conditional write), and a job waiting in another thread only looks again every
quarter of a second. When a job of the same tenant is already waiting in this process, the thread whose
attempt ended keeps the slot, renews its lease and hands it over instead: one call, no wait. The cap is
unchanged (the slot changes hands, it is never shared), and a tenant with nobody waiting here gives its
slot back as before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Waiter:
    """A job waiting for one of ``tenant``'s slots."""

    tenant: str
    slot: int | None = None  # set when a slot was handed over
    handed: threading.Event = field(default_factory=threading.Event)
    gone: bool = False  # stopped waiting: it must not be handed anything any more


class Handoffs:
    """The jobs of this process waiting for a slot, per tenant, first come first served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[Waiter]] = {}

    def join(self, tenant: str) -> Waiter:
        waiter = Waiter(tenant)
        with self._lock:
            self._waiting.setdefault(tenant, deque()).append(waiter)
        return waiter

    def leave(self, waiter: Waiter) -> int | None:
        """Stop waiting; the slot handed over meanwhile, if any (the caller now holds it)."""
        with self._lock:
            waiter.gone = True
            queue = self._waiting.get(waiter.tenant)
            if queue is not None and waiter in queue:
                queue.remove(waiter)
                if not queue:
                    del self._waiting[waiter.tenant]
            return waiter.slot

    def hand_over(self, tenant: str, slot: int, renew: Callable[[], None]) -> bool:
        """Give ``slot`` to the tenant's first waiter, after ``renew`` extends its lease; False when nobody
        of that tenant waits here (the caller gives the slot back)."""
        with self._lock:
            queue = self._waiting.get(tenant)
            if not queue:
                return False
            waiter = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            # Renewed under the lock so that the waiter cannot give up between the renewal and the handover.
            renew()
            waiter.slot = slot
            waiter.handed.set()
            return True
