from __future__ import annotations

import pytest

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.samples import BuildStats, iter_rows
from keypoint_instruct.errors import UnknownImageError
from keypoint_instruct.llm.store.cache import CachedResponse

SPLIT = "train2017"


@pytest.fixture(scope="module")
def scenes(coco_root):
    return load_scenes(coco_root, SPLIT)


def response(task, image_id, text, *, key=None, finish_reason="stop", created_at="2026-11-01T00:00:00+00:00"):
    return CachedResponse(
        key=key or f"{task}-{image_id}-key",
        task=task,
        image_id=image_id,
        coco_split=SPLIT,
        model="scripted-teacher",
        prompt_version="v-test",
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        cost_usd=0.5,
        latency_s=0.1,
        created_at=created_at,
    )


def rows_of(responses, scenes, coco_root, **kwargs):
    stats = BuildStats()
    rows = list(
        iter_rows(
            responses,
            scenes,
            coco_root=coco_root,
            instruction=lambda image_id, version: f"Describe the people in image {image_id}.",
            stats=stats,
            **kwargs,
        )
    )
    return rows, stats


CONVERSATION = (
    "Question: What is the person doing?\nAnswer: Running.\n===\n"
    "Question: Where are the arms?\nAnswer: Swinging at the sides.\n===\n"
    "Question: Is the person sitting?\nAnswer: No, standing on one leg."
)


def test_single_turn_rows_one_per_pair_with_image_first(scenes, coco_root):
    image_id, scene = next(iter(scenes.items()))
    rows, stats = rows_of([response("conversation", image_id, CONVERSATION)], scenes, coco_root)
    assert [row["id"] for row in rows] == [f"conversation-{image_id}-{n}" for n in range(3)]
    first = rows[0]
    assert first["messages"][0]["content"][0] == {"type": "image", "text": None}
    assert first["messages"][0]["content"][1] == {"type": "text", "text": "What is the person doing?"}
    assert first["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Running."}]}
    assert first["images"] == [{"bytes": None, "path": f"{SPLIT}/{scene.file_name}"}]
    assert first["file_name"] == scene.file_name and first["response_key"] == f"conversation-{image_id}-key"
    assert stats.samples["conversation"] == 3 and stats.cost_usd == pytest.approx(0.5)


def test_multi_turn_keeps_pairs_of_an_image_together(scenes, coco_root):
    image_id = next(iter(scenes))
    rows, _ = rows_of(
        [response("conversation", image_id, CONVERSATION)], scenes, coco_root, conversation_turns="multi"
    )
    assert len(rows) == 1
    messages = rows[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    images = [part for m in messages for part in m["content"] if part["type"] == "image"]
    assert len(images) == 1 and messages[0]["content"][0]["type"] == "image"


def test_description_uses_the_picked_instruction(scenes, coco_root):
    image_id = next(iter(scenes))
    rows, _ = rows_of([response("detailed_description", image_id, "A man stands still.")], scenes, coco_root)
    (row,) = rows
    assert row["id"] == f"detailed_description-{image_id}-0"
    assert row["messages"][0]["content"][1]["text"] == f"Describe the people in image {image_id}."
    assert row["messages"][1]["content"][0]["text"] == "A man stands still."


def test_every_drop_is_counted_by_reason(scenes, coco_root):
    ids = list(scenes)
    conversation = (
        "Question: What is she doing?\nAnswer: Dancing.\n"
        "Question: What is she doing?\nAnswer: Still dancing.\n"  # repeated
        "Question: Where is her wrist?\nAnswer: At 0.42, 0.31.\n"  # coordinates
        "Question: What do the captions say?\nAnswer: That she dances.\n"  # source
        "Question: Is she tired?\nAnswer: I'm sorry, I cannot tell from here.\n"  # refusal
    )
    responses = [
        response("complex_reasoning", ids[0], "Question: Why?\nAnswer: Because it is", finish_reason="length"),
        response("complex_reasoning", ids[1], "   "),
        response("complex_reasoning", ids[2], "Just a paragraph without labels."),
        response("conversation", ids[3], conversation),
        response("detailed_description", ids[4], "old", key="a", created_at="2026-11-01T00:00:00+00:00"),
        response("detailed_description", ids[4], "A woman jumps.", key="b", created_at="2026-11-02T00:00:00+00:00"),
    ]
    responses.sort(key=lambda r: (r.task, r.image_id, r.key))
    rows, stats = rows_of(responses, scenes, coco_root)
    assert sorted(row["id"] for row in rows) == [f"conversation-{ids[3]}-0", f"detailed_description-{ids[4]}-0"]
    assert rows[-1]["messages"][1]["content"][0]["text"] == "A woman jumps."  # the newer response wins
    dropped = stats.dropped_by_reason()
    assert {reason: n for reason, n in dropped.items() if n} == {
        quality.TRUNCATED: 1,
        quality.EMPTY: 1,
        quality.UNPARSEABLE: 1,
        quality.REPEATED_QUESTION: 1,
        quality.COORDINATE_LEAKAGE: 1,
        quality.NAMES_SOURCE: 1,
        quality.REFUSAL: 1,
        quality.SUPERSEDED: 1,
    }
    assert sum(stats.responses.values()) == 6


def test_response_for_an_image_outside_the_split_is_an_error(scenes, coco_root):
    missing = max(scenes) + 1
    with pytest.raises(UnknownImageError, match=str(missing)):
        rows_of([response("conversation", missing, CONVERSATION)], scenes, coco_root)


def test_embedded_images_carry_the_file_bytes(scenes, coco_root):
    image_id, scene = next(iter(scenes.items()))
    rows, _ = rows_of([response("complex_reasoning", image_id, CONVERSATION)], scenes, coco_root, embed_images=True)
    assert len(rows) == 1  # complex reasoning keeps the first pair only
    image = rows[0]["images"][0]
    assert image["bytes"] == (coco_root / SPLIT / scene.file_name).read_bytes()
    assert image["path"] == f"{SPLIT}/{scene.file_name}"


def test_an_answer_stopped_by_the_content_filter_is_dropped(scenes, coco_root):
    """A provider's content filter cuts the answer short, like the length limit: its partial text is not a sample."""
    image_id = next(iter(scenes))
    cut = "Question: What is he doing?\nAnswer: He is"
    rows, stats = rows_of(
        [response("complex_reasoning", image_id, cut, finish_reason="content_filter")], scenes, coco_root
    )
    assert rows == []
    assert {r: n for r, n in stats.dropped_by_reason().items() if n} == {quality.CONTENT_FILTER: 1}


def test_complex_reasoning_pairs_after_the_first_are_counted(scenes, coco_root):
    """Complex reasoning keeps one question per image; the others in the response are left out, and counted (the
    card says every pair that is not a row is counted)."""
    image_id = next(iter(scenes))
    rows, stats = rows_of([response("complex_reasoning", image_id, CONVERSATION)], scenes, coco_root)
    assert len(rows) == 1 and rows[0]["messages"][0]["content"][1]["text"] == "What is the person doing?"
    assert {r: n for r, n in stats.dropped_by_reason().items() if n} == {quality.EXTRA_PAIR: 2}


def test_a_newer_cut_answer_does_not_replace_an_older_complete_one(scenes, coco_root):
    """An image's older answer is complete, a newer one (another prompt version or model) hit the length limit:
    the complete one is used rather than losing the image."""
    image_id = next(iter(scenes))
    old = "Question: Why?\nAnswer: To keep his balance."
    new = "Question: Why?\nAnswer: Because his"
    responses = [
        response("complex_reasoning", image_id, old, key="a", created_at="2026-11-01T00:00:00+00:00"),
        response(
            "complex_reasoning", image_id, new, key="b", finish_reason="length", created_at="2026-11-02T00:00:00+00:00"
        ),
    ]
    rows, stats = rows_of(responses, scenes, coco_root)
    assert [row["response_key"] for row in rows] == ["a"]
    assert {r: n for r, n in stats.dropped_by_reason().items() if n} == {quality.SUPERSEDED: 1}


def test_a_provider_refusal_is_dropped_and_never_replaces_an_older_complete_answer(scenes, coco_root):
    """A refusal in the provider's own field (finish_reason ``refusal``) is no answer, whatever its words: alone it is
    counted as a refusal; newer than a complete answer (a rerun with another prompt version), it does not replace
    it."""
    first, second = list(scenes)[:2]
    policy = "Describing people's bodies in this way is not something this service provides."  # no refusal phrase
    assert quality.pair_reason(None, policy) is None  # the words alone would pass the filters
    old = "A man stands on one leg."
    responses = [
        response("detailed_description", first, old, key="a", created_at="2026-11-01T00:00:00+00:00"),
        response(
            "detailed_description", first, policy, key="b", finish_reason="refusal",
            created_at="2026-11-02T00:00:00+00:00",
        ),
        response("detailed_description", second, policy, finish_reason="refusal"),
    ]  # fmt: skip
    rows, stats = rows_of(responses, scenes, coco_root)
    assert [row["response_key"] for row in rows] == ["a"]
    assert {r: n for r, n in stats.dropped_by_reason().items() if n} == {quality.SUPERSEDED: 1, quality.REFUSAL: 1}


def test_stats_record_the_images_answered_per_task_dropped_answers_too(scenes, coco_root):
    """The build compares them with the images `generate` selects: a response dropped by a filter still answered."""
    first, second, third = list(scenes)[:3]
    responses = [
        response("conversation", first, CONVERSATION),
        response("conversation", second, "no labels at all"),
        response("complex_reasoning", third, "Question: Why?\nAnswer: To reach.", finish_reason="length"),
    ]
    _, stats = rows_of(responses, scenes, coco_root)
    assert stats.answered == {"conversation": {first, second}, "complex_reasoning": {third}}
    other = BuildStats(answered={"conversation": {third}})
    other.merge(stats)
    assert other.answered == {"conversation": {first, second, third}, "complex_reasoning": {third}}


def test_every_drop_has_a_report_record_with_its_span(scenes, coco_root, monkeypatch):
    """The records `build --report` writes: one per dropped response or pair, the contradiction's claim and fact."""
    from keypoint_instruct.dataset import verify

    def find(text, scene):
        at = text.find("sitting")
        return (
            [verify.Contradiction(text, 0, len(text), "sitting", 1, "knees straight below the hips")]
            if at >= 0
            else []
        )

    monkeypatch.setattr(verify, "find_contradictions", find)
    first, second = list(scenes)[:2]
    conversation = (
        "Question: What is he doing?\nAnswer: He is sitting on a bench.\n===\n"
        "Question: How is his arm?\nAnswer: Bent at about 100 degrees.\n===\n"
        "Question: Where is he?\nAnswer: In a park."
    )
    responses = [
        response("conversation", first, conversation),
        response("detailed_description", second, "old", key="a", created_at="2026-11-01T00:00:00+00:00"),
        response("detailed_description", second, "A man is sitting.", key="b", created_at="2026-11-02T00:00:00+00:00"),
    ]
    rows, stats = rows_of(responses, scenes, coco_root)
    assert [row["id"] for row in rows] == [f"conversation-{first}-2"]
    records = {(r["response_key"], r["reason"]): r for r in stats.report}
    assert set(records) == {
        (f"conversation-{first}-key", quality.POSE_CONTRADICTION),
        (f"conversation-{first}-key", quality.LEAK_ANGLE),
        ("a", quality.SUPERSEDED),
        ("b", quality.POSE_CONTRADICTION),
    }
    sitting = records[(f"conversation-{first}-key", quality.POSE_CONTRADICTION)]
    assert sitting["pair"] == 0 and sitting["image_id"] == first and sitting["task"] == "conversation"
    assert (sitting["span"], sitting["claim"], sitting["person"]) == ("He is sitting on a bench.", "sitting", 1)
    assert sitting["fact"] == "knees straight below the hips"
    angle = records[(f"conversation-{first}-key", quality.LEAK_ANGLE)]
    assert angle["pair"] == 1 and angle["span"] == "100 degrees" and "claim" not in angle
    assert conversation[angle["start"] : angle["end"]] == "100 degrees"
    assert records[("b", quality.POSE_CONTRADICTION)]["pair"] is None  # a description has no pairs
    assert records[("a", quality.SUPERSEDED)]["span"] is None
    assert stats.dropped_by_reason()[quality.POSE_CONTRADICTION] == 2 and stats.verify_poses

    rows, stats = rows_of(responses, scenes, coco_root, verify_poses=False)
    assert len(rows) == 3 and not stats.verify_poses
    assert stats.dropped_by_reason()[quality.POSE_CONTRADICTION] == 0
