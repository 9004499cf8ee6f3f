"""No stored constraint is ever violated, whatever the sequence of operations (issue 19).

Random sequences of add / recluster / merge / split / move / link / unlink / reject / accept /
decline on real LFW faces (default model), three seeds. After every step `violations()` must
be empty; add and recluster must leave every stored correction as it was (they never delete
or change one); refused operations (LibraryError) must change nothing.
"""

from __future__ import annotations

import random

import pytest

from facenet.errors import LibraryError
from facenet.people import Library

from .people_support import LOOKALIKES, PEOPLE, memo_model, photos


def snapshot(lib) -> tuple:
    """Everything a correction stores: links, rejections, names, and the assignment."""
    db = lib._store.db

    def rows(sql: str) -> list[tuple]:
        return sorted(tuple(r) for r in db.execute(sql))

    return (
        rows("SELECT kind, face_a, face_b FROM face_links"),
        rows("SELECT id, rejected FROM faces WHERE rejected IS NOT NULL"),
        rows("SELECT id, name FROM people WHERE name IS NOT NULL"),
        rows("SELECT id, COALESCE(person_id, -1) FROM faces"),
    )


def step(lib, rng: random.Random, pending: list) -> str:
    """One random operation; returns its name."""
    faces = [f.id for f in lib.faces()]
    people = [p.id for p in lib.people() if p.face_count]
    choice = rng.choice(["add", "recluster", "merge", "split", "move", "link", "cannot",
                         "unlink", "reject", "accept", "decline", "name"])  # fmt: skip
    if choice == "add" and pending:
        lib.add([pending.pop() for _ in range(min(len(pending), rng.randint(1, 4)))])
    elif choice == "recluster":
        lib.recluster()
    elif not faces:
        return "skip"
    elif choice == "merge" and len(people) >= 2:
        lib.merge(rng.sample(people, 2))
    elif choice == "split" and people:
        person = rng.choice(people)
        mine = [f.id for f in lib.faces(person)]
        lib.split(person, rng.sample(mine, rng.randint(1, len(mine))))
    elif choice == "move":
        lib.move(rng.choice(faces), rng.choice([None, *people]))
    elif choice in ("link", "cannot", "unlink") and len(faces) >= 2:
        a, b = rng.sample(faces, 2)
        {"link": lib.must_link, "cannot": lib.cannot_link, "unlink": lib.unlink}[choice](a, b)
    elif choice == "reject":
        lib.reject(rng.choice(faces), rng.choice(["not_a_face", "ignore"]))
    elif choice in ("accept", "decline") and people:
        person = rng.choice(people)
        found = lib.suggestions(person) or [None]
        face = found[0].face_id if found[0] else rng.choice(faces)
        (lib.accept if choice == "accept" else lib.decline)(person, face)
    elif choice == "name" and people:
        lib.name(rng.choice(people), rng.choice([None, "Ada", "Bob", "Cy"]))
    else:
        return "skip"
    return choice


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sequences_never_break_a_constraint(tmp_path, seed):
    rng = random.Random(seed)
    pending = [p for name in (*PEOPLE[:3], *LOOKALIKES) for p in photos(name, 6)]
    rng.shuffle(pending)
    done: dict[str, int] = {}
    with Library.open(tmp_path / "lib.db", memo_model()) as lib:
        lib.add([pending.pop() for _ in range(10)])
        for _ in range(60):
            before = snapshot(lib)
            try:
                name = step(lib, rng, pending)
            except LibraryError:
                assert snapshot(lib) == before, "a refused correction changed something"
                name = "refused"
            done[name] = done.get(name, 0) + 1
            assert lib.violations() == [], name
            after = snapshot(lib)
            if name in ("add", "recluster"):
                assert after[:3] == before[:3], f"{name} changed a stored correction"
        assert len(lib.constraints()) > 0
    assert done.get("refused", 0) < 30 and len(done) >= 8, done  # the sequence did exercise it
