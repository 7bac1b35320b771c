"""The teacher run's plan: which requests a selection gives, what a cache leaves to send, the cost checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm.online.budget import worst_case_usd
from keypoint_instruct.llm.request import Completion
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import Claims
from keypoint_instruct.teacher import plan
from keypoint_instruct.vocab import ALL, OFFLINE_TEACHER_MODEL, TASKS, TEACHER_MODEL


def selection(coco_root, **fields) -> plan.Selection:
    return plan.Selection(coco_root=coco_root, split="val2014", **{"task": ALL, **fields})


def answer(cache: ResponseCache, request) -> None:
    cache.put(request, Completion("x", "stop", 1, 1, 0, TEACHER_MODEL), 0.0)


def test_requests_come_in_image_order_task_by_task(coco_root):
    requests = plan.select_requests(selection(coco_root, limit=4))
    assert [r.task for r in requests] == [task for task in TASKS for _ in range(4)]
    ids = [r.item_id for r in requests[:4]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert all([r.item_id for r in requests[4 * t : 4 * t + 4]] == ids for t in range(len(TASKS)))
    assert {r.body["model"] for r in requests} == {TEACHER_MODEL}
    one = plan.select_requests(selection(coco_root, task=TASKS[1], limit=4))
    assert [r.key for r in one] == [r.key for r in requests[4:8]]


def test_shards_split_the_selection_without_overlap(coco_root):
    whole = {r.key for r in plan.select_requests(selection(coco_root, limit=10))}
    shards = [{r.key for r in plan.select_requests(selection(coco_root, limit=10, shard=(i, 3)))} for i in range(3)]
    assert set().union(*shards) == whole and sum(len(s) for s in shards) == len(whole)


def test_the_offline_teacher_answers_under_its_own_name_only():
    assert plan.teacher_model(None) == TEACHER_MODEL
    assert plan.teacher_model("my-llama") == "my-llama"
    assert plan.teacher_model(None, offline=True) == OFFLINE_TEACHER_MODEL
    assert plan.teacher_model(OFFLINE_TEACHER_MODEL, offline=True) == OFFLINE_TEACHER_MODEL
    with pytest.raises(UsageError, match="drop --model my-llama"):
        plan.teacher_model("my-llama", offline=True)


def test_left_out_names_answered_batched_and_claimed_keys(coco_root, tmp_path):
    requests = plan.select_requests(selection(coco_root, task=TASKS[0], limit=6))
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        answer(cache, requests[0])
        BatchJobs(cache).record("batch_1", requests[1:3], input_file_id="file_1", status="in_progress")
        Claims(cache).claim([requests[3].key])  # another live run of this process is sending it
        skipped = plan.left_out(cache, requests)
    answered, in_batch, claimed = skipped  # unpacks like the tuple `not_to_send` always gave
    assert answered == {requests[0].key}
    assert in_batch == {r.key for r in requests[1:3]}
    assert claimed == {requests[3].key}
    assert plan.to_send(requests, skipped.keys) == requests[4:]


def test_to_send_keeps_each_key_once_in_selection_order(coco_root):
    requests = plan.select_requests(selection(coco_root, task=TASKS[0], limit=3))
    assert plan.to_send([*requests, *requests], {requests[1].key}) == [requests[0], requests[2]]


def test_a_dry_run_creates_no_cache_and_leaves_out_what_is_answered(coco_root, tmp_path):
    requests = plan.select_requests(selection(coco_root, limit=3))
    path = tmp_path / "dry.sqlite"
    dry = plan.dry_run(requests, path)
    assert not path.exists()
    assert (dry.selected, len(dry.todo), dry.left_out.keys) == (9, 9, set())
    assert dry.estimate.requests == 9
    with ResponseCache(path, create=True) as cache:
        answer(cache, requests[0])
    dry = plan.dry_run(requests, path)
    assert dry.left_out.answered == {requests[0].key} and dry.todo == requests[1:]


def test_a_cap_on_a_model_without_a_price_is_refused(coco_root):
    requests = plan.select_requests(selection(coco_root, task=TASKS[0], limit=1, model="my-local-llama"))
    with pytest.raises(UsageError, match="no price for model my-local-llama in pricing.json"):
        plan.check_cap(requests, 5.0)
    plan.check_cap(plan.select_requests(selection(coco_root, task=TASKS[0], limit=1)), 5.0)


def test_a_cap_below_the_first_request_left_to_send_is_refused(coco_root, tmp_path):
    requests = plan.select_requests(selection(coco_root, task=TASKS[0], limit=2))
    first, second = (worst_case_usd(r) for r in requests)
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        with pytest.raises(UsageError, match="below the worst case of the first request to send"):
            plan.check_first_fits(cache, requests, first * 0.9)
        plan.check_first_fits(cache, requests, first)
        answer(cache, requests[0])  # the first left to send is now the second
        with pytest.raises(UsageError):
            plan.check_first_fits(cache, requests, second * 0.9)
        answer(cache, requests[1])
        plan.check_first_fits(cache, requests, 1e-9)  # nothing left to send: nothing to refuse


def test_a_capped_run_that_sent_nothing_is_the_same_usage_error():
    with pytest.raises(UsageError, match=r"\$0.0123"):
        plan.check_something_fitted(SimpleNamespace(capped=True, attempts=0, refused_usd=0.0123), 0.01)
    plan.check_something_fitted(SimpleNamespace(capped=True, attempts=3, refused_usd=0.0123), 0.01)
    plan.check_something_fitted(SimpleNamespace(capped=False, attempts=0, refused_usd=0.0), None)
