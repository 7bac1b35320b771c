"""The review page and report.html in a real headless Chromium (Playwright driving the system `chromium`).

Both pages come from the fixture pipeline, as the demo makes them: the offline teacher's answers (plus scripted
answers the build drops) for `review`, the offline teacher's benchmark and the offline judge for `bench report`.
Each page is opened from file://; every picture must have loaded, the console must stay free of errors, and the
filters and sorting must do what they say. Screenshots go to a temporary folder (``KI_SCREENSHOTS`` names another).

Where Playwright or Chromium is missing these tests skip, saying so; ``.ci/run`` installs Chromium and sets
``KI_REQUIRE_BROWSER=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.pages import hpaub_report, mixed_cache, review_folder

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str | None:
    for candidate in (os.environ.get("KI_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(why: str):
    if os.environ.get("KI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}; KI_REQUIRE_BROWSER=1 asks for the browser tests to run")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser(review_dir, report_dir):
    """The browser, started once the pages are written (Playwright's sync API holds an event loop while it runs,
    and writing the report runs the engine's own)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install -y chromium, as .ci/run does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("KI_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Opened:
    """A page opened from file:// with its console errors collected."""

    def __init__(self, browser, path: Path, width: int = 1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def broken_images(self) -> list[str]:
        return self.page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )

    def choose(self, form: str, field: str, value: str) -> None:
        self.page.select_option(f"#{form} select[name={field}]", value)

    def visible(self, selector: str, attribute: str) -> list[str]:
        return self.page.evaluate(
            f"Array.from(document.querySelectorAll({selector!r})).filter(e => e.offsetParent !== null)"
            f".map(e => e.getAttribute({attribute!r}))"
        )


@pytest.fixture(scope="module")
def review_dir(coco_root, offline_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("review_page")
    cache, cases = mixed_cache(offline_cache, folder / "mixed.sqlite")
    return review_folder(coco_root, cache, folder / "review", "--per-page", "12"), cases


@pytest.fixture(scope="module")
def report_dir(coco_root, tmp_path_factory):
    return hpaub_report(coco_root, tmp_path_factory.mktemp("report_page"))


def test_review_page_loads_every_picture_without_errors(browser, review_dir, shots):
    folder, _ = review_dir
    for name in ("index.html", "page-2.html"):
        opened = Opened(browser, folder / name)
        assert opened.page.evaluate("document.images.length") >= 10
        assert opened.broken_images() == []
        assert opened.errors == []
        opened.page.screenshot(path=str(shots / f"review-{name}.png"))
        opened.page.close()


def test_review_filters_hide_what_they_should(browser, review_dir, shots):
    folder, cases = review_dir
    opened = Opened(browser, folder / "index.html")
    total = opened.page.evaluate("document.querySelectorAll('section.image').length")
    opened.choose("filters", "reason", "refusal")
    assert opened.visible("section.image", "id") == [f"image-{cases['leaky']}"]
    assert set(opened.visible(".unit", "data-reason")) == {"refusal"}
    assert opened.page.inner_text("#shown") == f"1 of {total} images on this page shown"
    assert opened.page.evaluate("location.hash") == "#reason=refusal"
    assert opened.page.get_attribute("a.page", "href") == "page-2.html#reason=refusal"  # the filter follows you
    opened.page.screenshot(path=str(shots / "review-filter-refusal.png"), full_page=True)

    opened.page.click("#reset")
    opened.choose("filters", "task", "complex_reasoning")
    opened.choose("filters", "status", "dropped")
    assert set(opened.visible(".unit", "data-task")) == {"complex_reasoning"}
    assert set(opened.visible(".unit", "data-status")) == {"dropped"}
    assert 0 < len(opened.visible("section.image", "id")) < total

    opened.page.click("#reset")
    opened.choose("filters", "status", "kept")
    assert set(opened.visible(".unit", "data-status")) == {"kept"}
    opened.page.click("#reset")
    assert len(opened.visible("section.image", "id")) == total
    opened.page.click("[data-set-reason=names_source]")  # a reason in the counts table
    assert set(opened.visible(".unit", "data-reason")) == {"names_source"}
    assert opened.errors == []
    opened.page.close()


def test_review_page_opens_with_the_filter_of_its_link(browser, review_dir):
    folder, cases = review_dir
    opened = Opened(browser, folder / "index.html")
    opened.page.goto((folder / "index.html").resolve().as_uri() + "#reason=extra_pair")
    opened.page.reload()
    assert opened.page.input_value("#filters select[name=reason]") == "extra_pair"
    assert opened.visible("section.image", "id") == [f"image-{cases['extra_pair']}"]
    opened.page.close()


def test_review_page_reads_on_a_narrow_screen(browser, review_dir, shots):
    opened = Opened(browser, review_dir[0] / "index.html", width=600)
    assert opened.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll
    opened.page.screenshot(path=str(shots / "review-narrow.png"))
    opened.page.close()


def test_report_page_loads_every_picture_without_errors(browser, report_dir, shots):
    opened = Opened(browser, report_dir / "report.html")
    assert opened.page.evaluate("document.images.length") == 1 + 18  # the chart and one picture per question
    assert opened.broken_images() == []
    assert opened.errors == []
    opened.page.screenshot(path=str(shots / "report-top.png"))
    opened.page.close()


def test_report_page_reads_on_a_narrow_screen(browser, report_dir, shots):
    opened = Opened(browser, report_dir / "report.html", width=600)
    assert opened.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll
    opened.page.evaluate("document.getElementById('questions').scrollIntoView()")
    opened.page.screenshot(path=str(shots / "report-narrow.png"))
    opened.page.close()


def _order(opened: Opened) -> list[dict]:
    return opened.page.evaluate(
        "Array.from(document.querySelectorAll('section.question')).filter(s => !s.hidden).map(s => ({"
        "id: s.id, category: s.dataset.category, a: parseFloat(s.getAttribute('data-score-0')), "
        "b: parseFloat(s.getAttribute('data-score-1'))}))"
    )


def test_report_sorts_and_filters(browser, report_dir, shots):
    opened = Opened(browser, report_dir / "report.html")
    opened.choose("controls", "category", "detailed_description")
    shown = _order(opened)
    assert len(shown) == 6 and {s["category"] for s in shown} == {"detailed_description"}
    assert opened.page.inner_text("#shown") == "6 of 18 questions shown"

    opened.choose("controls", "category", "")
    opened.choose("controls", "a", "0")
    opened.choose("controls", "b", "1")
    opened.choose("controls", "sort", "diff")
    diffs = [s["a"] - s["b"] for s in _order(opened)]
    assert len(diffs) == 18 and diffs == sorted(diffs, reverse=True) and diffs[0] > diffs[-1]
    first = opened.page.inner_text("section.question .diff")
    assert first.startswith("echo - vague: +")
    opened.page.evaluate("document.getElementById('questions').scrollIntoView()")
    opened.page.screenshot(path=str(shots / "report-sorted-by-difference.png"))

    opened.choose("controls", "sort", "category")
    categories = [s["category"] for s in _order(opened)]
    assert categories == sorted(categories, key=["conversation", "detailed_description", "complex_reasoning"].index)
    opened.choose("controls", "sort", "order")
    order = opened.page.evaluate(
        "Array.from(document.querySelectorAll('section.question')).map(s => +s.dataset.order)"
    )
    assert order == list(range(18))
    assert opened.errors == []
    opened.page.close()
