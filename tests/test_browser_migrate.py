"""The gallery tab's migration line in a real browser (see test_browser.py): a dry run reports,
a migration switches the page to the new model."""

from __future__ import annotations

from .test_browser import browser, page, screenshot  # noqa: F401, F811 (fixtures)
from .test_server_support import (  # noqa: F401 (fixtures)
    gallery_fixture,
    make_app_fixture,
    photo_path,
    photos_fixture,
)


def test_migration_line_dry_run_then_switch(page, second_model_file):  # noqa: F811
    page.click(".tab[data-tab=gallery]")
    page.fill("#enroll-name", "George W Bush")
    page.set_input_files("#enroll-images", [str(photo_path("bush1")), str(photo_path("bush2"))])
    page.click("#enroll-form button[type=submit]")
    page.wait_for_selector(".person[data-name='George W Bush']")

    page.fill("#migrate-model", str(second_model_file))
    page.click("#migrate-form button[type=submit]")
    page.wait_for_selector("#migrate-status:has-text('dry run (nothing switched)')")
    assert "of 2 faces" in page.inner_text("#migrate-status")
    page.uncheck("#migrate-dry-run")
    page.click("#migrate-form button[type=submit]")
    page.wait_for_selector("#migrate-status:has-text('switched to test-second')")
    page.wait_for_selector("#model-info:has-text('64-d')")
    page.wait_for_function(
        "[...document.querySelectorAll('.thumbs img')].every(img => img.naturalWidth > 0)"
    )
    screenshot(page, "gallery-migrate.png")
