"""The web page's four tabs in a real browser, served by `facenet serve` (a subprocess, as a user
starts it) over a gallery built with the CLI. Skipped when Playwright or Chromium is missing.

The Gallery tab's thumbnails must load for CLI-enrolled faces too (issue 15, item 2)."""

from __future__ import annotations

import re

import pytest

from ..conftest import lfw_image
from ..test_browser import browser  # noqa: F401 (fixture)
from .helpers import EXAMPLES, facenet, serving

PHOTOS = {n: str(EXAMPLES / f"{n}.jpg") for n in ("a_1", "a_2", "b_1", "b_2", "c_1")}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`facenet serve -g G` over a gallery made with `facenet gallery create/enroll`."""
    work = tmp_path_factory.mktemp("served")
    gallery = work / "people.db"
    assert facenet("gallery", "create", gallery).code == 0
    for name, keys in (("Colin Powell", ["a_1", "a_2"]), ("Serena Williams", ["b_1"])):
        result = facenet("gallery", "enroll", gallery, "--name", name, *(PHOTOS[k] for k in keys))
        assert result.code == 0, result.stderr
    with serving(gallery, work) as url:
        yield url


@pytest.fixture
def page(browser, served):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)
    page.goto(served + "/")
    yield page
    context.close()
    assert not errors, errors


def test_verify_tab(page):
    page.set_input_files("#verify-a", PHOTOS["a_1"])
    page.set_input_files("#verify-b", PHOTOS["a_2"])
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-result:not([hidden])")
    distance = float(page.inner_text("#verify-distance"))
    threshold = float(page.inner_text("#verify-threshold"))
    same = page.inner_text("#verify-decision") == "Same person"
    assert same == (distance <= threshold)


def test_identify_tab_names_the_nearest_for_unknown(page):
    """A stranger (Jennifer Aniston against Colin Powell and Serena Williams): the row still
    says who is nearest, and how far."""
    page.click(".tab[data-tab=identify]")
    page.set_input_files("#identify-image", str(lfw_image("Jennifer_Aniston", 1)))
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector("#identify-result:not([hidden])")
    (item,) = page.locator("#identify-list li").all_inner_texts()
    assert ": unknown" in item, item
    assert re.search(r"nearest (Colin Powell|Serena Williams), distance \d", item), item


def test_gallery_tab_thumbnails_load_for_cli_enrolled_faces(page):
    page.click(".tab[data-tab=gallery]")
    page.wait_for_selector(".person[data-name='Colin Powell']")
    assert page.locator(".person[data-name='Colin Powell'] .thumbs img").count() == 2
    assert page.locator(".person[data-name='Serena Williams'] .thumbs img").count() == 1
    page.wait_for_function(
        "[...document.querySelectorAll('.thumbs img')].every(img => img.complete)"
    )
    broken = page.evaluate(
        "[...document.querySelectorAll('.thumbs img')].filter(i => i.naturalWidth === 0).length"
    )
    assert broken == 0, f"{broken} thumbnails did not load"


def test_cluster_tab(page):
    page.click(".tab[data-tab=cluster]")
    page.set_input_files("#cluster-images", [PHOTOS[k] for k in ("a_1", "a_2", "b_1", "b_2")])
    page.click("#cluster-form button[type=submit]")
    page.wait_for_selector("#cluster-status:has-text('group(s)')")
    assert page.locator("#clusters canvas").count() == 4
