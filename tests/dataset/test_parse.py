from __future__ import annotations

import pytest

from keypoint_instruct.dataset.parse import ParseError, QAPair, parse_description, parse_pairs


def test_plain_pairs_in_order():
    text = "Question: What is the man doing?\nAnswer: He is skiing.\n\nQuestion: Where are his arms?\nAnswer: Wide."
    assert parse_pairs(text) == [
        QAPair("What is the man doing?", "He is skiing."),
        QAPair("Where are his arms?", "Wide."),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "**Question:** Why is she leaning forward?\n**Answer:** To keep her balance.",
        "Question:\nWhy is she leaning forward?\n===\nAnswer:\nTo keep her balance.",
        "Sure, here is one.\n\nQuestion 1: Why is she leaning forward?\nAnswer 1: To keep her balance.",
        "Q: Why is she leaning forward?\nA: To keep her balance.",
        "### Question: Why is she leaning forward?\n### Answer: To keep her balance.\n",
        "1. **Question:** Why is she leaning forward?\n   **Answer:** To keep her balance.",
        "- Question: Why is she leaning forward?\n- Answer: To keep her balance.",
        # a label alone on its line, as a markdown heading or in bold, without a colon
        "### Question 1\nWhy is she leaning forward?\n\n### Answer 1\nTo keep her balance.",
        "**Question**\nWhy is she leaning forward?\n**Answer**\nTo keep her balance.",
        "## Question (1)\nWhy is she leaning forward?\n## Answer (1)\nTo keep her balance.",
        "Question (1): Why is she leaning forward?\nAnswer (1): To keep her balance.",
    ],
)
def test_decorated_labels(text):
    assert parse_pairs(text) == [QAPair("Why is she leaning forward?", "To keep her balance.")]


def test_multiline_answer_is_kept_whole():
    text = "Question: How does she stand?\nAnswer: Her knees are bent.\nHer weight is on the left foot."
    assert parse_pairs(text)[0].answer == "Her knees are bent.\nHer weight is on the left foot."


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("The man is skiing down a slope.", "unparseable"),
        ("Question: What is he doing?", "unparseable"),
        ("Answer: Skiing.", "unparseable"),
        ("Question: What?\nQuestion: Why?\nAnswer: Because.", "unparseable"),
        ("Question: What is he doing?\nAnswer:", "unparseable"),
    ],
)
def test_bad_shapes_have_reason_codes(text, reason):
    with pytest.raises(ParseError) as info:
        parse_pairs(text)
    assert info.value.reason == reason


def test_description_label_and_emphasis_removed():
    assert parse_description("**Description:** Two people are dancing.") == "Two people are dancing."
    assert parse_description("  A woman jumps.\n") == "A woman jumps."


def test_blank_description_is_empty():
    with pytest.raises(ParseError) as info:
        parse_description(" \n ")
    assert info.value.reason == "empty"


def test_heading_label_lines_only_without_colon():
    """A line reading just "Answer" is a label; a line that starts with the word and goes on is answer text."""
    text = "### Question\nWhat comes next?\n### Answer\nAnswer the serve: she\nquestions the call."
    assert parse_pairs(text) == [QAPair("What comes next?", "Answer the serve: she\nquestions the call.")]


@pytest.mark.parametrize(
    "text",
    [
        "## Detailed description\n\nTwo people are dancing.",
        "### Detailed Description:\nTwo people are dancing.",
        "**Detailed description**\n\nTwo people are dancing.",
        "# Description\nTwo people are dancing.",
        "### Scene description\n\nTwo people are dancing.",
    ],
)
def test_description_heading_removed(text):
    """A heading line at the top of a description is the teacher's formatting, not text for the student."""
    assert parse_description(text) == "Two people are dancing."


def test_description_keeps_a_first_sentence_about_a_description():
    text = "Description of the scene: two people are dancing."
    assert parse_description(text) == text


def test_windows_line_endings_are_read_like_unix_ones():
    assert parse_pairs("### Question 1\r\nWhat?\r\n### Answer 1\r\nA jump.\r\nA high one.\r\n") == [
        QAPair("What?", "A jump.\nA high one.")
    ]
    assert (
        parse_description("**Detailed description**\r\n\r\nTwo people.\r\nThey dance.") == "Two people.\nThey dance."
    )
