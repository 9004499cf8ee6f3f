"""The library endpoints on a 10,000-face library: what the People tab asks for, over HTTP
(FastAPI's TestClient, in process) side by side with the same `facenet.Library` call in Python,
so the ratio is the server's own cost (locking, lookups, JSON).

The library is `benchmarks/people_scale.py`'s: `--faces` synthetic faces (identities of 5)
stored as `add` leaves them, re-clustered once (so it holds clusters and unassigned faces).

    nice -n 10 python benchmarks/server_library.py [--faces 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from people_scale import fill, synthetic  # noqa: E402


def best_of(repeat: int, function) -> float:
    """The fastest of `repeat` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--unassigned", type=int, default=500, help="Faces taken out.")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.people import Library
    from facenet.server import Settings, create_app

    model = FaceNet.load()
    path = Path(tempfile.mkdtemp(prefix="server_library_")) / "photos.db"
    Library.open(path, model).close()
    fill(path, synthetic(args.faces, model.info.embedding_size), model.model_id)
    with Library.open(path, model) as lib:
        print(lib.recluster().summary())
    gallery = Gallery.open(path, model)
    app = create_app(model, gallery, Settings(allowed_hosts=("testserver",)))
    lib = app.state.service.library_service().library
    for person in lib.people()[: args.unassigned]:  # one face each taken out: unassigned
        lib.move(lib.faces(person.id)[0].id, None)
    people = lib.people()
    big = max(people, key=lambda p: p.face_count)
    face = lib.faces(big.id)[0].id
    api = "/api/v1/library"
    cases = [
        ("counts", lambda c: c.get(api), lambda: (lib.people(), lib.faces(unassigned=True))),
        ("people (the grid)", lambda c: c.get(f"{api}/people"), lambda: lib.people()),
        ("faces of a person", lambda c: c.get(f"{api}/people/{big.id}/faces"),
         lambda: lib.faces(big.id)),
        ("suggestions", lambda c: c.get(f"{api}/people/{big.id}/suggestions"),
         lambda: lib.suggestions(big.id)),
        ("unassigned faces", lambda c: c.get(f"{api}/faces?unassigned=true"),
         lambda: lib.faces(unassigned=True)),
        ("one face", lambda c: c.get(f"{api}/faces/{face}"), lambda: lib.face(face)),
    ]  # fmt: skip
    print(f"{len(people):,} people/clusters, {args.faces:,} faces; best of {args.repeat}")
    print(f"{'request':28} {'HTTP ms':>9} {'Python ms':>10} {'ratio':>7}")
    with TestClient(app, headers={"X-Requested-With": "bench"}) as client:
        for name, http, python in cases:
            assert http(client).status_code == 200, name
            over_http = best_of(args.repeat, lambda http=http: http(client))
            direct = best_of(args.repeat, python)
            ratio = f"{over_http / direct:7.1f}" if direct > 0.05 else "      -"
            print(f"{name:28} {over_http:9.1f} {direct:10.1f} {ratio}")
    gallery.close()


if __name__ == "__main__":
    main()
