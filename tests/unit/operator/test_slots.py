"""The bound on API calls in flight, and the order in which waiting calls get a slot."""

from __future__ import annotations

import asyncio

import pytest

from kubesft_operator.slots import Slots


async def _take(slots: Slots, name: str, urgent: bool, order: list[str], release: asyncio.Event) -> None:
    async with slots.hold(urgent=urgent):
        order.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_urgent_calls_get_freed_slots_before_earlier_reports() -> None:
    async def scenario() -> list[str]:
        slots, release = Slots(1), asyncio.Event()
        order: list[str] = []
        holder = asyncio.create_task(_take(slots, "holder", False, order, release))
        await _settle()
        tasks = [
            asyncio.create_task(_take(slots, name, urgent, order, release))
            for name, urgent in (("status-1", False), ("status-2", False), ("job-1", True), ("job-2", True))
        ]
        await _settle()
        assert order == ["holder"] and slots.waiting == 4
        release.set()
        await asyncio.gather(holder, *tasks)
        return order

    assert asyncio.run(scenario()) == ["holder", "job-1", "job-2", "status-1", "status-2"]


def test_no_more_than_the_limit_hold_a_slot_at_once() -> None:
    async def scenario() -> int:
        slots, busiest, holding = Slots(3), 0, 0

        async def call(urgent: bool) -> None:
            nonlocal busiest, holding
            async with slots.hold(urgent=urgent):
                holding += 1
                busiest = max(busiest, holding)
                await asyncio.sleep(0)
                holding -= 1

        await asyncio.gather(*(call(n % 3 == 0) for n in range(50)))
        return busiest

    assert asyncio.run(scenario()) == 3


def test_a_waiter_cancelled_before_or_as_it_is_granted_leaves_no_slot_taken() -> None:
    async def scenario() -> list[str]:
        slots, release = Slots(1), asyncio.Event()
        order: list[str] = []
        release.set()
        async with slots.hold():
            gone = asyncio.create_task(_take(slots, "gone", True, order, release))
            granted = asyncio.create_task(_take(slots, "granted", True, order, release))
            later = asyncio.create_task(_take(slots, "later", False, order, release))
            await _settle()
            gone.cancel()
            await _settle()
        # Leaving the block handed the slot to "granted", which has not run yet: cancel it now.
        granted.cancel()
        await asyncio.wait_for(later, timeout=5)  # a slot lost would leave it waiting
        for task in (gone, granted):
            with pytest.raises(asyncio.CancelledError):
                await task
        async with slots.hold():
            order.append("after")
        assert slots.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["later", "after"]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Slots(0)
