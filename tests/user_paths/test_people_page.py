"""A library built with the CLI, then served and corrected on the web page, as a user does it:
`facenet library add`, `facenet library name`, then `facenet serve -g LIB` (a subprocess) and
the People tab in Chromium; the CLI sees the web page's correction afterwards.

Skipped when Playwright or Chromium is missing."""

from __future__ import annotations

import json
import time

import pytest

from ..conftest import lfw_image
from ..test_browser import browser  # noqa: F401 (fixture)
from .helpers import EXAMPLES, facenet, serving


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """`facenet library add` over the examples and two more Powell photos; Powell named."""
    work = tmp_path_factory.mktemp("library")
    path = work / "photos.db"
    photos = [*sorted(EXAMPLES.glob("*.jpg")), lfw_image("Colin_Powell", 3)]
    result = facenet("library", "add", path, *photos)
    assert result.code == 0, result.stderr
    people = facenet("library", "people", path, "--json").json_lines()
    powell = next(p for p in people if p["face_count"] == 3)  # a_1, a_2 and Colin_Powell_0003
    assert facenet("library", "name", path, str(powell["id"]), "Colin Powell").code == 0
    return path, work


@pytest.fixture(scope="module")
def served(library):
    path, work = library
    with serving(path, work) as url:
        yield url


def test_cli_library_on_the_people_tab(browser, served, library):  # noqa: F811
    path, _ = library
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)
    try:
        page.goto(served + "/")
        page.click(".tab[data-tab=library]")
        card = page.locator(".lib-card[data-name='Colin Powell']")
        card.wait_for()
        assert card.locator(".lib-count").inner_text() == "3 faces"
        serena = page.locator(".lib-card[data-name='']")  # b_1 and b_2: one unnamed cluster
        assert serena.count() == 1 and serena.locator(".lib-count").inner_text() == "2 faces"
        deadline = time.monotonic() + 60
        while page.evaluate(
            "[...document.querySelectorAll('.lib-card img')].some(i => i.naturalWidth === 0)"
        ):  # the thumbnails of CLI-added faces load
            assert time.monotonic() < deadline, "thumbnails did not load"
            time.sleep(0.1)
        serena.locator(".lib-open").click()
        page.fill("#lib-rename-input", "Serena Williams")
        page.click("#lib-rename-form button[type=submit]")
        page.wait_for_selector("#lib-person-name:has-text('Serena Williams')")
    finally:
        context.close()
    assert not errors, errors
    people = facenet("library", "people", path, "--json").json_lines()
    assert sorted((p["name"], p["face_count"]) for p in people if p["name"]) == [
        ("Colin Powell", 3),
        ("Serena Williams", 2),
    ], json.dumps(people)
