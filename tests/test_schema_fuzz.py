"""Schema fuzzing: schemathesis generates requests from the server's own OpenAPI schema; no
request may get a 5xx, and every response must match the status codes and shapes the schema
declares. Bounded and deterministic: 20 examples per operation (10 valid by the schema, 10
not), derandomised."""

from __future__ import annotations

import pytest

from .test_server_support import photo_path

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture(scope="module")
def fuzz_app(small_model, tmp_path_factory):
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    gallery = Gallery.create(tmp_path_factory.mktemp("fuzz") / "people.db", small_model)
    if photo_path("bush1").is_file():  # a person to find (ids 1), when LFW is here
        gallery.enroll("Bush", [photo_path("bush1")])
        from facenet.people import Library  # library faces too (ids 2 and 3)

        Library.from_gallery(gallery).add([photo_path("powell1"), photo_path("blair1")])
    settings = Settings(max_upload_mb=1, max_files=5, allowed_hosts=("testserver", "localhost"))
    yield create_app(small_model, gallery, settings)
    gallery.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_app)


#: Every operation of the API; `test_every_operation_is_fuzzed` keeps this list complete.
OPERATIONS = [
    "GET /api/v1/health",
    "GET /api/v1/model",
    "POST /api/v1/embed",
    "POST /api/v1/verify",
    "POST /api/v1/identify",
    "POST /api/v1/cluster",
    "GET /api/v1/people",
    "POST /api/v1/people",
    "GET /api/v1/people/{person_id}",
    "PATCH /api/v1/people/{person_id}",
    "DELETE /api/v1/people/{person_id}",
    "POST /api/v1/people/{person_id}/faces",
    "POST /api/v1/people/{person_id}/merge",
    "DELETE /api/v1/faces/{face_id}",
    "GET /api/v1/faces/{face_id}/thumbnail",
    "GET /api/v1/gallery/migrate",
    "POST /api/v1/gallery/migrate",
    "DELETE /api/v1/gallery/migrate",
    "GET /api/v1/library",
    "GET /api/v1/library/people",
    "GET /api/v1/library/people/{person_id}",
    "PATCH /api/v1/library/people/{person_id}",
    "GET /api/v1/library/people/{person_id}/faces",
    "POST /api/v1/library/people/{person_id}/split",
    "GET /api/v1/library/people/{person_id}/suggestions",
    "POST /api/v1/library/people/{person_id}/accept",
    "POST /api/v1/library/people/{person_id}/decline",
    "GET /api/v1/library/faces",
    "GET /api/v1/library/faces/{face_id}",
    "GET /api/v1/library/faces/{face_id}/thumbnail",
    "POST /api/v1/library/faces/{face_id}/move",
    "POST /api/v1/library/faces/{face_id}/reject",
    "GET /api/v1/library/constraints",
    "POST /api/v1/library/photos",
    "POST /api/v1/library/recluster",
    "POST /api/v1/library/merge",
    "POST /api/v1/library/links",
    "POST /api/v1/library/unlink",
    "POST /api/v1/library/faces/{face_id}/unreject",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_every_operation_is_fuzzed(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(api_schema, label, mode):
    """Valid-by-schema requests (positive) and schema-violating ones (negative): 10 each."""
    from hypothesis import given

    operation = api_schema.find_operation_by_label(label)
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=10,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        # the web page's header: without it every gallery change stops at 403
        case.call_and_validate(checks=CHECKS, headers={"X-Requested-With": "schemathesis"})

    try:
        run()
    except Unsatisfiable:
        if mode == "positive":
            raise
        pytest.skip(f"{label} has no input to violate")
