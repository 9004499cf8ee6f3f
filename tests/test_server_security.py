"""Server hardening (issue 21): foreign Host and cross-site requests refused, hostile-but-legal
photos answered within bounds, names and metadata under one rule, headers and key scope.

The cross-origin form in a real browser is in test_browser_security.py.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .test_server_support import (  # noqa: F401  (fixtures)
    CLIENT_HEADER,
    client_fixture,
    error_of,
    files,
    gallery_fixture,
    make_app_fixture,
    photo_path,
    photos_fixture,
)

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    """benchmarks/server_memory.py: the hostile photos are made there, once for both."""
    spec = importlib.util.spec_from_file_location(
        "server_memory", ROOT / "benchmarks/server_memory.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_benchmark()


def enroll(client, name: str, photo: bytes, headers=None):
    return client.post(
        f"{API}/people", data={"name": name}, files=files(images=photo), headers=headers
    )


def jpeg_claiming(width: int, height: int, photo: bytes) -> bytes:
    """A small real JPEG whose frame header is rewritten to claim width x height (truncated)."""
    data = bytearray(photo)
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


# -- 1. cross-site requests and foreign hosts ---------------------------------------------------


def test_foreign_host_is_refused(make_app, photos):
    with TestClient(make_app()) as client:
        for host in ("attacker.example:8000", "attacker.example", "127.0.0.1.evil.example"):
            for method, path in (("GET", f"{API}/people"), ("GET", "/"), ("GET", f"{API}/health")):
                r = client.request(method, path, headers={"Host": host})
                assert error_of(r, 400) == "host_not_allowed", host
            r = enroll(client, "Eve", photos["bush1"], {"Host": host, **CLIENT_HEADER})
            assert error_of(r, 400) == "host_not_allowed"
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "testserver"):
            assert client.get(f"{API}/people", headers={"Host": host}).status_code == 200, host
        assert client.get(f"{API}/people").json() == []
    with TestClient(make_app(allowed_hosts=("faces.lan",))) as client:
        assert client.get(f"{API}/health", headers={"Host": "faces.lan:8000"}).status_code == 200
        assert error_of(client.get(f"{API}/health"), 400) == "host_not_allowed"  # testserver
    with TestClient(make_app(allowed_hosts=("*",))) as client:
        assert client.get(f"{API}/health", headers={"Host": "any.example"}).status_code == 200


@pytest.mark.parametrize("name", ["http://faces.lan", "faces.lan/app", "user@faces.lan", ""])
def test_an_allowed_host_that_is_no_host_name_is_refused_at_start(name):
    """`--allowed-host http://faces.lan` allowed the Host name "http" and refused every request
    for faces.lan with 400 `host_not_allowed` "start the server with --allowed-host NAME". Now
    such a value is a usage error (exit 2); a name with a port is still taken as the name."""
    from click.testing import CliRunner

    from facenet.cli import main
    from facenet.server import Settings

    with pytest.raises(ValueError, match="not a host name"):
        Settings(allowed_hosts=(name,))
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--allowed-host", name])
    assert result.exit_code == 2 and "not a host name" in result.output, result.output
    assert Settings(allowed_hosts=("faces.lan:8000", "*", "::1")).allowed_hosts


def test_cross_origin_requests_are_refused(client, photos):
    for origin in ("http://evil.example", "null", "http://testserver:8080", "https://testserver.x"):
        r = enroll(client, "Eve", photos["bush1"], {"Origin": origin})
        assert error_of(r, 403) == "cross_origin", origin
        r = client.post(
            f"{API}/identify", files=files(image=photos["bush1"]), headers={"Origin": origin}
        )
        assert error_of(r, 403) == "cross_origin"
    r = enroll(client, "Eve", photos["bush1"], {"Referer": "http://evil.example/page.html"})
    assert error_of(r, 403) == "cross_origin"
    assert client.get(f"{API}/people").json() == []
    # the server's own page, and reads from anywhere (CORS keeps their answers from other sites)
    r = enroll(client, "Bush", photos["bush1"], {"Origin": "http://testserver"})
    assert r.status_code == 201, r.text
    person = r.json()["person"]["id"]
    r = client.patch(
        f"{API}/people/{person}", json={"name": "B"}, headers={"Origin": "http://evil.example"}
    )
    assert error_of(r, 403) == "cross_origin"
    r = client.delete(f"{API}/people/{person}", headers={"Origin": "http://evil.example"})
    assert error_of(r, 403) == "cross_origin"
    assert client.get(f"{API}/people", headers={"Origin": "http://evil.example"}).status_code == 200
    assert [p["name"] for p in client.get(f"{API}/people").json()] == ["Bush"]


def test_cors_origins_are_trusted_for_writes(make_app, photos):
    origin = "http://tools.example"
    with TestClient(make_app(cors_origins=(origin,)), headers=CLIENT_HEADER) as client:
        assert enroll(client, "Bush", photos["bush1"], {"Origin": origin}).status_code == 201
        r = enroll(client, "Eve", photos["bush2"], {"Origin": "http://evil.example"})
        assert error_of(r, 403) == "cross_origin"


@pytest.mark.parametrize("origin", ["*", "tools.example", "http://tools.example/app", "null"])
def test_a_cors_origin_that_is_no_origin_is_refused_at_start(origin):
    """`--cors-origin '*'` answered CORS preflights "allowed" for every site while every write
    from one was 403 `cross_origin` "only ... an origin given with --cors-origin"; and an origin
    without its scheme, or with a path, matched no browser's Origin: CORS silently off. Now each
    is a usage error (exit 2) naming the expected form."""
    from click.testing import CliRunner

    from facenet.cli import main
    from facenet.server import Settings

    with pytest.raises(ValueError, match="not an origin"):
        Settings(cors_origins=(origin,))
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--cors-origin", origin])
    assert result.exit_code == 2 and "not an origin" in result.output, result.output
    settings = Settings(cors_origins=("https://Tools.example:8443/",))
    assert settings.cors_origins == ("https://tools.example:8443",)


def test_gallery_changes_need_a_request_a_form_cannot_make(make_app, photos):
    with TestClient(make_app()) as client:
        r = enroll(client, "Bush", photos["bush1"])  # a multipart form, no custom header
        assert error_of(r, 403) == "missing_client_header"
        assert client.get(f"{API}/people").json() == []
        person = enroll(client, "Bush", photos["bush1"], CLIENT_HEADER).json()["person"]["id"]
        face = client.get(f"{API}/people/{person}").json()["face_ids"][0]
        r = client.post(f"{API}/people/{person}/faces", files=files(images=photos["bush2"]))
        assert error_of(r, 403) == "missing_client_header"
        assert error_of(client.delete(f"{API}/faces/{face}"), 403) == "missing_client_header"
        r = client.patch(f"{API}/people/{person}", content='{"name": "B"}')  # text/plain
        assert error_of(r, 403) == "missing_client_header"
        assert client.patch(f"{API}/people/{person}", json={"name": "B"}).status_code == 200
        r = client.post(f"{API}/identify", files=files(image=photos["bush1"]))  # reads: no header
        assert r.status_code == 200
        assert client.delete(f"{API}/faces/{face}", headers=CLIENT_HEADER).status_code == 200
    with TestClient(make_app(api_key="s3cret")) as client:  # the key header is non-simple too
        r = enroll(client, "Bush", photos["bush1"], {"X-API-Key": "s3cret"})
        assert r.status_code == 201


# -- 2. memory and CPU within the limits --------------------------------------------------------


def test_huge_jpeg_is_decoded_downscaled_and_answered_in_its_pixels(make_app, photos):
    huge = bench.plain_jpeg(6000, 6000)
    with TestClient(make_app(), headers=CLIENT_HEADER) as client:
        r = client.post(f"{API}/identify", files=files(image=huge))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["width"], body["height"]) == (6000, 6000) and body["faces"] == []
        small = jpeg_claiming(6000, 6000, photos["bush1"])  # the review's 7.8 KB file
        assert len(small) < 20_000
        r = client.post(f"{API}/identify", files=files(image=small))
        assert r.status_code == 200, r.text  # libjpeg pads the missing data
        assert (r.json()["width"], r.json()["height"]) == (6000, 6000)


def test_boxes_of_a_downscaled_photo_are_in_its_own_pixels(make_app, photos):
    with Image.open(io.BytesIO(photos["bush1"])) as image:
        big = image.resize((1000, 1000), Image.BILINEAR)
    out = io.BytesIO()
    big.save(out, "PNG")
    with (
        TestClient(make_app(), headers=CLIENT_HEADER) as small_side,
        TestClient(make_app(max_side=250), headers=CLIENT_HEADER) as reduced,
    ):
        full = small_side.post(f"{API}/embed", files=files(image=photos["bush1"])).json()
        scaled = reduced.post(f"{API}/embed", files=files(image=out.getvalue())).json()
    assert (scaled["width"], scaled["height"]) == (1000, 1000)
    assert len(scaled["faces"]) == len(full["faces"]) >= 1
    expected = np.asarray(full["faces"][0]["box"]) * 4
    assert np.allclose(scaled["faces"][0]["box"], expected, atol=6)
    assert np.allclose(
        np.asarray(scaled["faces"][0]["landmarks"]),
        np.asarray(full["faces"][0]["landmarks"]) * 4,
        atol=6,
    )


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def rotated_jpeg() -> bytes:
    """A 6000 x 3000 JPEG whose EXIF says: turn a quarter (it shows as 3000 x 6000)."""
    image = Image.new("RGB", (6000, 3000), (90, 120, 150))
    exif = image.getexif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", quality=10, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("kind", "make", "size"),
    [
        ("palette GIF", lambda: encoded(Image.new("P", (5000, 3000), 3), "GIF"), (5000, 3000)),
        ("16-bit PNG", lambda: encoded(Image.new("I;16", (3000, 5000), 999), "PNG"), (3000, 5000)),
        ("RGBA PNG", lambda: encoded(Image.new("RGBA", (4900, 100)), "PNG"), (4900, 100)),
        ("rotated JPEG", rotated_jpeg, (3000, 6000)),
    ],
)
def test_every_format_is_decoded_downscaled_and_upright(kind, make, size):
    from facenet.server.uploads import decode_image, probe_image

    probe = probe_image(make(), kind, 40_000_000)
    assert (probe.width, probe.height) == size
    upload = decode_image(probe, 2400)
    height, width = upload.rgb.shape[:2]
    assert max(height, width) <= 2400 and upload.rgb.dtype == np.uint8
    assert (width > height) == (size[0] > size[1])  # upright, as the photo shows
    assert upload.scale == pytest.approx((size[0] / width, size[1] / height))


def test_huge_jpeg_is_never_held_at_full_size(tmp_path):
    """Decoding a 6000 x 6000 JPEG raises peak memory by far less than its full size (108 MB
    as RGB, 144 MB in Pillow): it is decoded at a reduced scale."""
    script = textwrap.dedent(
        """
        import resource, sys
        sys.path.insert(0, sys.argv[1])
        from facenet.server.uploads import decode_image, probe_image
        data = open(sys.argv[2], "rb").read()
        probe = probe_image(data, "huge.jpg", 40_000_000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        upload = decode_image(probe, 2400)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(upload.rgb.shape, (after - before) / 1024)
        """
    )
    path = tmp_path / "huge.jpg"
    path.write_bytes(bench.plain_jpeg(6000, 6000))
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(")")
    assert out[0] + ")" == "(2400, 2400, 3)"
    assert float(out[1]) < 80, f"decoding took {float(out[1]):.0f} MB more peak memory"


def test_request_pixel_budget(make_app):
    huge = bench.plain_jpeg(6000, 6000)
    with TestClient(make_app(), headers=CLIENT_HEADER) as client:
        r = client.post(f"{API}/cluster", files=files(images=[huge] * 3))  # 108 MP > 100 MP
        assert error_of(r, 413) == "request_too_large"
        assert "100,000,000" in r.json()["error"]["message"]
    with TestClient(make_app(max_request_pixels=30_000_000), headers=CLIENT_HEADER) as client:
        r = client.post(f"{API}/identify", files=files(image=huge))
        assert error_of(r, 413) == "request_too_large"


def test_faces_per_photo_cap_is_reported(make_app):
    face = photo_path("bush1")
    if not face.is_file():
        pytest.skip("LFW data not available")
    crowd = bench.tiled_faces(face, 1000, 5, quality=90)  # 25 faces
    with TestClient(make_app(max_faces=4), headers=CLIENT_HEADER) as client:
        body = client.post(f"{API}/embed", files=files(image=crowd)).json()
        assert len(body["faces"]) == 4 and body["faces_capped"] is True
        assert body["faces_found"] > 4
        cluster = client.post(f"{API}/cluster", files=files(images=crowd)).json()
        assert cluster["images"][0]["faces"] == 4 and cluster["images"][0]["faces_capped"]
        assert len(cluster["faces"]) == 4
        found = client.post(f"{API}/identify", files=files(image=crowd)).json()
        assert len(found["faces"]) == 4 and found["faces_capped"] is True
        pair = client.post(f"{API}/verify", files=files(image1=crowd, image2=crowd)).json()
        for image in pair["images"]:
            assert len(image["faces"]) == 4 and image["faces_capped"] is True
            assert 0 <= image["chosen"] < 4
    with TestClient(make_app(), headers=CLIENT_HEADER) as client:
        body = client.post(f"{API}/embed", files=files(image=crowd)).json()
        assert body["faces_capped"] is False and len(body["faces"]) == body["faces_found"] > 4


# -- 4, 5. names and metadata: the gallery's one rule, through the API -------------------------


def test_control_characters_in_names_are_refused(client, photos):
    for name in ("\x1b]0;pwned\x07Eve", "Eve\x1b[2J", "Eve\x00", "Eve\u202etxt"):
        assert error_of(enroll(client, name, photos["bush1"]), 400) == "invalid_name"
    person = enroll(client, "Bush", photos["bush1"]).json()["person"]["id"]
    r = client.patch(f"{API}/people/{person}", json={"name": "B\x1b[2J"})
    assert error_of(r, 400) == "invalid_name"
    assert [p["name"] for p in client.get(f"{API}/people").json()] == ["Bush"]


def test_people_list_survives_stored_metadata(client, gallery, photos):
    """Metadata enters through the CLI or Python; what the rule lets in, the API can serve."""
    from facenet.errors import GalleryError
    from facenet.gallery.validation import MAX_METADATA_DEPTH

    deep: dict = {}
    for _ in range(900):
        deep = {"a": deep}
    with pytest.raises(GalleryError, match="nested too deeply"):
        gallery.add_person("Deep", deep)
    deepest_allowed: dict = {}
    for _ in range(MAX_METADATA_DEPTH - 1):
        deepest_allowed = {"a": deepest_allowed}
    gallery.add_person("Ada", deepest_allowed)
    r = client.get(f"{API}/people")
    assert r.status_code == 200 and r.json()[0]["metadata"] == deepest_allowed


# -- 6. headers and key scope -------------------------------------------------------------------


def test_static_files_have_the_page_policy(client):
    for path in ("/", "/static/index.html", "/static/app.js"):
        r = client.get(path)
        assert r.status_code == 200
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-frame-options"] == "DENY"
    assert client.get(f"{API}/health").headers["x-frame-options"] == "DENY"


def test_api_key_all_leaves_only_a_bare_liveness_check(make_app):
    key = {"X-API-Key": "s3cret"}
    with TestClient(make_app(api_key="s3cret", api_key_all=True)) as client:
        assert client.get(f"{API}/health").json() == {"status": "ok"}
        full = client.get(f"{API}/health", headers=key).json()
        assert full["gallery"] == {"people": 0, "faces": 0} and full["model_id"]
        assert client.get(f"{API}/health", headers={"X-API-Key": "wrong"}).json() == {
            "status": "ok"
        }
        for path in ("/openapi.json", "/docs"):
            assert error_of(client.get(API + path), 401) == "missing_api_key"
            assert client.get(API + path, headers=key).status_code == 200
        assert "/api/v1/people" in client.get(f"{API}/openapi.json", headers=key).json()["paths"]
    with TestClient(make_app(api_key="s3cret")) as client:  # writes only: docs stay open
        assert client.get(f"{API}/openapi.json").status_code == 200
        assert "gallery" in client.get(f"{API}/health").json()


def test_serve_command_takes_the_new_limits(tmp_path):
    from click.testing import CliRunner

    from facenet.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    for option in ("--allowed-host", "--max-request-pixels", "--max-side", "--max-faces"):
        assert option in result.output
    result = CliRunner().invoke(main, ["serve", "--max-side", "10"])
    assert result.exit_code == 2 and "Traceback" not in result.output
