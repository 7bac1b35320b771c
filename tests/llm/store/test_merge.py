"""Merging the caches of shards: counts, a complete answer beats a cut one, nothing left behind by a failed merge."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.errors import CacheError
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.merge import merge
from tests.llm.store.test_cache import make_completion, make_request


def test_merge_shards(tmp_path):
    shards = []
    for index in range(2):
        cache = ResponseCache(tmp_path / f"s{index}.sqlite", create=True)
        for image_id in range(index, 6, 2):
            cache.put(make_request(image_id), make_completion(f"answer {image_id}"), 0.2)
        cache.record_failure(make_request(100 + index), "attempt 1: HTTP 500")
        cache.close()
        shards.append(tmp_path / f"s{index}.sqlite")
    out = ResponseCache(tmp_path / "all.sqlite", create=True)
    out.put(make_request(0), make_completion("a different answer"), 0.1)
    out.put(make_request(1), make_completion("a cut ans", finish="length"), 0.1)
    counts = merge(out, shards)
    paid = out.get(make_request(0).key).cost_usd * 2  # images 0 and 1 were answered here and in a shard
    assert counts == {
        "added": 4,
        "already_present": 2,
        "conflicts": 2,
        "upgraded": 1,
        "failures_added": 2,
        "paid_twice_usd": pytest.approx(paid),
    }
    assert [r.image_id for r in out.iter_responses()] == list(range(6))
    assert out.get(make_request(0).key).text == "a different answer"  # both complete: the existing one stays
    assert out.get(make_request(1).key).text == "answer 1"  # a complete answer is never dropped for a cut one
    again = merge(out, shards)  # idempotent; image 1 is now the same row in both, image 0 still two answers
    assert (again["added"], again["upgraded"], again["paid_twice_usd"]) == (0, 0, pytest.approx(paid / 2))
    assert out.stats().failed_attempts == 2
    with pytest.raises(CacheError, match="into itself"):
        merge(out, [tmp_path / "all.sqlite"])


def test_merge_logs_per_file_counts(tmp_path, caplog):
    shards = []
    for index in range(2):
        with ResponseCache(tmp_path / f"s{index}.sqlite", create=True) as cache:
            for image_id in range(3 + index):
                cache.put(make_request(10 * index + image_id), make_completion(), 0.1)
        shards.append(tmp_path / f"s{index}.sqlite")
    out = ResponseCache(tmp_path / "all.sqlite", create=True)
    with caplog.at_level("INFO", logger="keypoint_instruct.llm.store.merge"):
        assert merge(out, shards)["added"] == 7  # the summary counts all files
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("merged")]
    assert lines == [f"merged {shards[0]}: 3 responses added", f"merged {shards[1]}: 4 responses added"]


def test_failed_merge_leaves_no_new_output_and_keeps_an_old_one(tmp_path, capsys):
    good = tmp_path / "good.sqlite"
    with ResponseCache(good, create=True) as cache:
        cache.put(make_request(1), make_completion(), 0.1)
    not_a_cache = tmp_path / "contexts.jsonl"
    not_a_cache.write_text('{"image_id": 1}\n')
    new = tmp_path / "new.sqlite"
    assert main(["cache", "merge", str(new), str(good), str(not_a_cache)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "contexts.jsonl" in err and "Traceback" not in err
    assert not any(p.name.startswith("new.sqlite") for p in tmp_path.iterdir())  # nothing created, no -wal either
    old = tmp_path / "old.sqlite"
    with ResponseCache(old, create=True) as cache:
        cache.put(make_request(2), make_completion(), 0.1)
    assert main(["cache", "merge", str(old), str(good), str(not_a_cache)]) == 2
    capsys.readouterr()
    with ResponseCache(old) as cache:  # a cache that was there stays, untouched
        assert [r.image_id for r in cache.iter_responses()] == [2]
    assert main(["cache", "merge", str(old), str(old)]) == 2
    assert "into itself" in capsys.readouterr().err


def test_merge_carries_the_settings_and_the_prompt_records(tmp_path):
    from keypoint_instruct.llm.store.prompts import PromptCatalogue

    with ResponseCache(tmp_path / "s.sqlite", create=True) as shard:
        shard.put(make_request(1), make_completion(), 0.1)
        PromptCatalogue(shard).record({"v1": ("conversation", {"context_mode": "paper"})})
    with ResponseCache(tmp_path / "all.sqlite", create=True) as out:
        merge(out, [tmp_path / "s.sqlite"])
        assert out.get(make_request(1).key).sampling == {"max_tokens": 1024, "seed": 42, "temperature": 0.2}
        assert PromptCatalogue(out).read() == {"v1": ("conversation", {"context_mode": "paper"})}
