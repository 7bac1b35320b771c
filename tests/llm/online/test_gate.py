"""One request goes first: the gate alone, then a run of 16 slots against a refusing and a failing teacher."""

from __future__ import annotations

import asyncio

import pytest

from keypoint_instruct.errors import TeacherError
from keypoint_instruct.llm.online.gate import FirstRequestGate
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.llm.online.test_state import REFUSED, SERVER_ERROR, Scripted, in_loop, new_run


def test_one_sender_goes_first_and_the_rest_follow_once_it_settled():
    async def go():
        gate = FirstRequestGate()
        entered: list[tuple[int, bool]] = []

        async def sender(i):
            entered.append((i, await gate.enter()))

        tasks = [asyncio.create_task(sender(i)) for i in range(4)]
        await asyncio.sleep(0.05)
        assert entered == [(0, True)]  # the others wait
        gate.leave(settled=False)  # the first was not sent (its claim lapsed): the next one goes first
        await asyncio.sleep(0.05)
        assert entered == [(0, True), (1, True)]
        gate.leave(settled=True)  # answered (or failed, not fatally): everyone goes
        await asyncio.gather(*tasks)
        assert sorted(entered) == [(0, True), (1, True), (2, False), (3, False)] and gate.open
        assert await gate.enter() is False  # open for good

    asyncio.run(go())


@pytest.fixture
def cache(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        yield cache


def test_a_fatal_first_answer_stops_a_run_of_sixteen_slots_after_one_request(cache):
    teacher = Scripted(REFUSED, delay_s=0.05)

    async def go():
        run = new_run(cache, n=40, teacher=teacher, concurrency=16)
        with pytest.raises(TeacherError, match="HTTP 401"):
            await run.execute()

    in_loop(go)
    assert len(teacher.sent) == 1


class Counting(Scripted):
    """Records how many attempts were in flight at most."""

    def __init__(self, *script, delay_s):
        super().__init__(*script, delay_s=delay_s)
        self.now = self.most = 0

    async def complete(self, request):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().complete(request)
        finally:
            self.now -= 1


@pytest.mark.parametrize("first", [None, SERVER_ERROR], ids=["answered", "failed-not-fatally"])
def test_the_run_fans_out_once_the_first_attempt_settled(cache, first):
    teacher = Counting(*([first] if first else []), delay_s=0.05)

    async def go():
        run = new_run(cache, n=40, teacher=teacher, concurrency=16)
        return await run.execute()

    summary = in_loop(go)
    assert summary.answered == 40 and teacher.most == 16
    assert teacher.sent.count(teacher.sent[0]) == (2 if first else 1)  # a failed first attempt is retried as usual


def test_a_first_request_that_is_never_sent_hands_the_turn_on(cache):
    teacher = Scripted(delay_s=0.01)

    async def go():
        run = new_run(cache, n=5, teacher=teacher, concurrency=4)
        lapsed = {run.queue._queue[0][0].key}  # the first request's claim is taken over before it is sent
        confirm = run.keys.confirm
        run.keys.confirm = lambda key: False if key in lapsed else confirm(key)
        return await run.execute()

    summary = in_loop(go)
    assert summary.answered == 4 and len(teacher.sent) == 4
