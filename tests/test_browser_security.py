"""Cross-site request forgery in a real browser (issue 21): a page on another origin submits a
plain multipart form to the server, with a photo filled in through DataTransfer, as the review
did. The server must refuse it, and the gallery must not change.

Skipped when Playwright or Chromium is missing (see test_browser.py).
"""

from __future__ import annotations

import base64

import pytest

from .test_browser import browser  # noqa: F401 (fixture)
from .test_server_support import (  # noqa: F401 (fixtures)
    CLIENT_HEADER,
    gallery_fixture,
    make_app_fixture,
    photo_path,
    photos_fixture,
)

ATTACK = """<!doctype html>
<html><body>
<form id="attack" method="POST" enctype="multipart/form-data" action="{action}">
  <input name="name" value="Mallory">
  <input id="photo" type="file" name="images">
</form>
<script>
  const bytes = Uint8Array.from(atob("{photo}"), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "stranger.jpg", {{ type: "image/jpeg" }}));
  document.getElementById("photo").files = transfer.files;
  document.getElementById("attack").submit();
</script>
</body></html>"""


def attacker_app(html: str):
    """Another origin: a server with one page, the attack."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request):
        return HTMLResponse(html)

    return Starlette(routes=[Route("/", page)])


@pytest.mark.parametrize("target", ["new person", "existing person"])
def test_cross_origin_form_post_is_refused(browser, make_app, photos, target):  # noqa: F811
    import httpx

    from facenet.server.background import BackgroundServer

    with BackgroundServer(make_app(allowed_hosts=())) as url:
        victim = httpx.post(
            f"{url}/api/v1/people",
            data={"name": "Colin Powell"},
            files=[("images", ("p.jpg", photos["powell1"]))],
            headers=CLIENT_HEADER,
        )
        assert victim.status_code == 201, victim.text
        person = victim.json()["person"]
        path = (
            "/api/v1/people" if target == "new person" else f"/api/v1/people/{person['id']}/faces"
        )
        html = ATTACK.format(action=url + path, photo=base64.b64encode(photos["bush1"]).decode())
        with BackgroundServer(attacker_app(html)) as evil:
            assert evil != url  # another port: another origin
            context = browser.new_context()
            page = context.new_page()
            try:
                with page.expect_navigation(url=url + path, timeout=60_000):
                    page.goto(evil + "/")
                answer = page.inner_text("body")
            finally:
                context.close()
        assert '"cross_origin"' in answer, answer
        people = httpx.get(f"{url}/api/v1/people").json()
        assert [(p["name"], p["faces"]) for p in people] == [("Colin Powell", 1)]
