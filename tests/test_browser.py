"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real uvicorn
server on a free loopback port. Screenshots are saved under test-artifacts/.

Skipped when Playwright or /usr/bin/chromium is missing (never downloads a browser).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .test_server_support import (  # noqa: F401 (fixtures)
    gallery_fixture,
    make_app_fixture,
    photo_path,
    photos_fixture,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, make_app, photos):
    from facenet.server.background import BackgroundServer

    with BackgroundServer(make_app()) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        page.url_root = url
        yield page
        context.close()
    assert not page.errors, page.errors


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_verify_two_photos(page):
    page.wait_for_selector("#model-info:has-text('mobilenet')")
    page.set_input_files("#verify-a", str(photo_path("bush1")))
    page.set_input_files("#verify-b", str(photo_path("bush2")))
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-result:not([hidden])")

    decision = page.inner_text("#verify-decision")
    assert decision in ("Same person", "Different people")
    distance = float(page.inner_text("#verify-distance"))
    threshold = float(page.inner_text("#verify-threshold"))
    assert (decision == "Same person") == (distance <= threshold)
    for figure in ("#verify-photo-a", "#verify-photo-b"):
        page.wait_for_function(f"document.querySelector('{figure} img').naturalWidth > 0")
        boxes = page.locator(f"{figure} .box")
        assert boxes.count() >= 1
        assert page.locator(f"{figure} .box.chosen").count() == 1
        box = page.locator(f"{figure} .box.chosen").bounding_box()
        image = page.locator(f"{figure} img").bounding_box()
        assert box["width"] > 10 and box["height"] > 10
        assert image["x"] <= box["x"] and box["x"] + box["width"] <= image["x"] + image["width"] + 1
    screenshot(page, "verify-page.png")


def test_verify_error_is_shown(page, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    page.set_input_files("#verify-a", str(text))
    page.set_input_files("#verify-b", str(photo_path("bush1")))
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-status.error")
    assert "not a supported image" in page.inner_text("#verify-status")


def test_enroll_identify_remove_and_cluster(page):
    import httpx

    page.click(".tab[data-tab=gallery]")
    page.wait_for_selector("#gallery-status:has-text('empty')")
    for name, keys in (("George W Bush", ["bush1", "bush2"]), ("Colin Powell", ["powell1"])):
        page.fill("#enroll-name", name)
        page.set_input_files("#enroll-images", [str(photo_path(k)) for k in keys])
        page.click("#enroll-form button[type=submit]")
        page.wait_for_selector(f"#gallery-status:has-text('of {name}')")
        page.wait_for_selector(f".person[data-name='{name}']")
    bush = page.locator(".person[data-name='George W Bush']")
    assert bush.locator(".thumbs img").count() == 2
    page.wait_for_function(
        "[...document.querySelectorAll('.thumbs img')].every(img => img.naturalWidth > 0)"
    )
    screenshot(page, "gallery-page.png")

    page.click(".tab[data-tab=identify]")
    page.set_input_files("#identify-image", str(photo_path("bush1")))
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector("#identify-result:not([hidden])")
    labels = page.locator("#identify-photo .box.known .label").all_inner_texts()
    assert "George W Bush" in labels  # an enrolled photo matches itself (distance 0)
    screenshot(page, "identify-page.png")

    page.click(".tab[data-tab=gallery]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".person[data-name='Colin Powell'] button.remove")
    page.wait_for_selector("#gallery-status:has-text('removed Colin Powell')")
    page.wait_for_selector(".person[data-name='Colin Powell']", state="detached")
    people = httpx.get(page.url_root + "/api/v1/people").json()
    assert [(p["name"], p["faces"]) for p in people] == [("George W Bush", 2)]

    page.click(".tab[data-tab=cluster]")
    paths = [str(photo_path(k)) for k in ("bush1", "bush3", "powell1", "blair1")]
    page.set_input_files("#cluster-images", paths)
    page.click("#cluster-form button[type=submit]")
    page.wait_for_selector("#cluster-status:has-text('group(s)')")
    assert page.locator("#clusters canvas").count() >= 4
    screenshot(page, "cluster-page.png")


def test_double_click_enrol_enrols_once(page):
    """A user who double-clicks Enrol (or clicks again while it runs) enrols the photos once:
    the button is disabled while the request runs, and usable again afterwards."""
    import httpx

    page.click(".tab[data-tab=gallery]")
    page.fill("#enroll-name", "George W Bush")
    page.set_input_files("#enroll-images", [str(photo_path("bush1"))])
    page.dblclick("#enroll-form button[type=submit]")
    page.wait_for_selector("#enroll-form button[type=submit]:enabled")
    page.wait_for_selector(".person[data-name='George W Bush']")
    page.wait_for_timeout(500)  # a second request, if one was sent, has ended by now
    assert "of George W Bush" in page.inner_text("#gallery-status")
    people = httpx.get(page.url_root + "/api/v1/people").json()
    assert [(p["name"], p["faces"]) for p in people] == [("George W Bush", 1)]


def test_typing_the_key_reloads_the_open_tab(browser, make_app, photos):
    """With --api-key-all, a user opens the Gallery (or People) tab, reads 'this request needs
    an API key', and types the key: the open tab loads again with it, not only the model line
    (the key-needed error used to stay up over an empty list until the tab was clicked again)."""
    from facenet.server.background import BackgroundServer

    with BackgroundServer(make_app(api_key="k3y", api_key_all=True)) as url:
        context = browser.new_context()
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        for tab, status, loaded in (
            ("gallery", "#gallery-status", "#gallery-status:has-text('the gallery is empty')"),
            ("library", "#lib-status", "#lib-summary:has-text('0 faces')"),
        ):
            page.fill("#api-key", "")
            page.press("#api-key", "Tab")
            page.click(f".tab[data-tab={tab}]")
            page.wait_for_selector(f"{status}.error:has-text('needs an API key')")
            page.fill("#api-key", "k3y")
            page.press("#api-key", "Tab")
            page.wait_for_selector("#model-info:has-text('threshold')")
            page.wait_for_selector(loaded)
            assert not page.locator(f"{status}.error").count(), page.inner_text(status)
        context.close()
    assert not errors, errors


def test_a_stopped_server_is_named_as_such(browser, make_app, photos):
    """The server stops while the page is open: Compare says the server cannot be reached
    (not the browser's bare 'Failed to fetch'), and the button is usable again."""
    from facenet.server.background import BackgroundServer

    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with BackgroundServer(make_app()) as url:
        page.goto(url + "/")
        page.wait_for_selector("#model-info:has-text('threshold')")
    page.set_input_files("#verify-a", str(photo_path("bush1")))
    page.set_input_files("#verify-b", str(photo_path("bush2")))
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-status.error")
    assert "cannot reach the server" in page.inner_text("#verify-status")
    assert page.locator("#verify-form button[type=submit]").is_enabled()
    context.close()
    assert not errors, errors
