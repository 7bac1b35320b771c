"""One request goes first: :class:`FirstRequestGate` holds a run's other senders until its first attempt settles.

An error that every request would get (a refused key, an unknown model, a parameter the endpoint refuses, an
exhausted quota) stops a run; without the gate, one such answer per concurrency slot would come back before the
stop. So a run sends one attempt, and fans out to its full concurrency only once that attempt settled without
stopping the run: an answer, or any failure that is not fatal (a 500, a 429, a timeout: those are retried as usual).
An attempt that ends without being sent (its claim lapsed, the spend cap) hands the turn to the next sender.

Also here: :class:`Pulse`, the wake-up call the run and the gate use.
"""

from __future__ import annotations

import asyncio

from keypoint_instruct.llm.online.waits import Why, wait


class Pulse:
    """Wakes everyone waiting at the moment it fires (an event replaced each time it is set)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class FirstRequestGate:
    """Closed until the run's first attempt settled without stopping the run; meanwhile one sender at a time."""

    def __init__(self) -> None:
        self.open = False
        self._turn_taken = False  # a sender went ahead and has not left yet
        self._changed = Pulse()

    async def enter(self) -> bool:
        """Return when this sender may go on; True when it goes first (it must then call :meth:`leave`)."""
        while not self.open:
            if not self._turn_taken:
                self._turn_taken = True
                return True
            await wait(Why.FIRST_ANSWER, until=self._changed.wait())
        return False

    def leave(self, *, settled: bool) -> None:
        """The sender that went first is done: ``settled`` (its attempt was sent and the run goes on) opens the
        gate for everyone; otherwise the next sender goes first."""
        self._turn_taken = False
        self.open = self.open or settled
        self._changed.fire()
