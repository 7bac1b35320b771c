"""The shared HTML helpers: escaping, highlighted spans and facts, and the Markdown that `bench report` writes."""

from __future__ import annotations

from keypoint_instruct.review.decision import Finding
from keypoint_instruct.review.html import document, esc, highlight, markdown


def test_everything_from_a_cache_is_escaped():
    assert esc('<script>alert("x")</script> & \'') == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;"
    text = "<img src=x onerror=alert(1)> at 0.42"
    out = highlight(text, [Finding("coordinate_leakage", 27, 31, "0.42")])
    assert "<img" not in out and "&lt;img src=x" in out
    assert '<mark class="leak" title="coordinate_leakage: coordinate_leakage">0.42</mark>' in out


def test_control_characters_never_reach_the_page():
    """A NUL byte in a model's answer made `grep` call report.html binary: C0 controls (but tab, newline and CR),
    DEL, C1 and lone surrogates are shown as U+FFFD; the text around them stays."""
    text = "a\x00b\x07c\x1b[0m\x7fd\x85e\ud800f\tg\nh\r\n<i>"
    assert esc(text) == "a\ufffdb\ufffdc\ufffd[0m\ufffdd\ufffde\ufffdf\tg\nh\r\n&lt;i&gt;"
    assert esc("é ü — 中文 😀") == "é ü — 中文 😀"
    assert "\x00" not in highlight("x\x00y", []) and "\x00" not in markdown("x\x00y")
    document("t\x00", esc("a\ud800b")).encode("utf-8")  # writable as UTF-8


def test_a_contradicted_claim_is_followed_by_its_fact():
    text = "He stands upright with his arms at his sides."
    claim = Finding("pose_contradiction", 3, 17, "stands upright", fact="Person 1 is crouching, knees bent 70 degrees")
    out = highlight(text, [claim], {"pose_contradiction": "the keypoints contradict it"})
    assert out == (
        'He <mark class="claim" title="pose_contradiction: the keypoints contradict it">stands upright</mark>'
        '<span class="fact">keypoints: Person 1 is crouching, knees bent 70 degrees</span> with his arms at his sides.'
    )


def test_stale_offsets_fall_back_to_the_text_and_overlaps_keep_the_first():
    text = "I'm sorry, I cannot see it; I'm sorry."
    stale = Finding("refusal", 100, 109, "I cannot see")  # offsets of another text
    overlap = Finding("refusal", 0, 3, "I'm")
    first = Finding("refusal", 0, 9, "I'm sorry")
    out = highlight(text, [stale, overlap, first])
    assert out.count("<mark") == 2
    assert '">I&#x27;m sorry</mark>' in out and '">I cannot see</mark>' in out
    assert highlight("nothing here", [Finding("refusal", 0, 4, "gone")]) == "nothing here"


def test_markdown_of_a_report():
    md = (
        "# HPAUB results\n\nJudge: x. Rubric `abc`.\n\n## Score\n\n| Model | All |\n|---|---|\n| a | **50.00** |\n"
        "| b<c | 40.00 |\n\n- **Score**: the mean\n  continued here.\n- **All**: mean.\n"
    )
    out = markdown(md)
    assert "<h2>HPAUB results</h2>" in out and "<h3>Score</h3>" in out
    assert "<p>Judge: x. Rubric <code>abc</code>.</p>" in out
    assert "<thead><tr><th>Model</th><th>All</th></tr></thead>" in out
    assert "<td><strong>50.00</strong></td>" in out and "<td>b&lt;c</td>" in out
    assert "<li><strong>Score</strong>: the mean continued here.</li><li><strong>All</strong>: mean.</li>" in out


def test_a_document_inlines_its_style_and_scripts_and_fetches_nothing():
    page = document("T <1>", "<p>x</p>", scripts=["var a = 1;"], meta={"generator": "g"})
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;1&gt;</title>" in page
    assert '<meta name="generator" content="g">' in page and "<script>\nvar a = 1;\n</script>" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page
