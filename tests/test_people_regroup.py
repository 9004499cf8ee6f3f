"""`add` regroups the machine-made clusters near the new faces (`facenet/people/assign.py`):
two clusters of one person that a later add bridges become one, as a batch re-clustering would
make them; clusters a correction touched (a cannot-link, a name) are never regrouped.

The photos are real (LFW Tony Blair, one face each), picked from the model's own distances
(squared L2, threshold 0.1793): A = 0002, 0017 and B = 0008, 0018 are each a tight pair, 0.188
apart on average (so two clusters); C = 0028, 0047 lies near both (0.089 from A, 0.154 from B),
and average linkage over all six makes one cluster."""

from __future__ import annotations

from facenet.people import Library

from .people_support import memo_model, photos

A, B, C = (17, 2), (8, 18), (28, 47)


def blair(numbers) -> list:
    return [photos("Tony_Blair", 1, n)[0] for n in numbers]


def two_fragments(lib) -> tuple[list[int], list[int], int, int]:
    """Add A, then B: two clusters (the premise; checked)."""
    a = lib.add(blair(A)).face_ids
    b = lib.add(blair(B)).face_ids
    assert len(a) == len(b) == 2
    pa, pb = lib.face(a[0]).person_id, lib.face(b[0]).person_id
    assert pa is not None and pb is not None and pa != pb, "premise: A and B two clusters"
    assert {lib.face(f).person_id for f in a} == {pa} and {lib.face(f).person_id for f in b} == {pb}
    return a, b, pa, pb


def test_a_bridging_add_merges_two_machine_made_clusters(tmp_path):
    with Library.open(tmp_path / "lib.db", memo_model()) as lib:
        a, b, pa, pb = two_fragments(lib)
        report = lib.add(blair(C))
        owners = {lib.face(f).person_id for f in a + b + report.face_ids}
        assert len(owners) == 1 and owners <= {pa, pb}, owners  # one cluster, an old id kept
        assert report.regrouped == 2  # the two faces of the cluster that gave way
        assert {p.id for p in lib.people()} == owners  # the emptied cluster is gone
        assert lib.violations() == []


def test_corrected_or_named_clusters_are_not_regrouped(tmp_path):
    for how in ("cannot_link", "named"):
        with Library.open(tmp_path / f"{how}.db", memo_model()) as lib:
            a, b, pa, pb = two_fragments(lib)
            if how == "cannot_link":
                lib.cannot_link(a[0], b[0])
            else:
                lib.name(pa, "Tony Blair")
                lib.name(pb, "Tony Blair (young)")
            report = lib.add(blair(C))
            assert report.regrouped == 0
            assert {lib.face(f).person_id for f in a} == {pa}, how
            assert {lib.face(f).person_id for f in b} == {pb}, how
            assert {lib.face(f).person_id for f in report.face_ids} <= {pa, pb}, how
            assert lib.violations() == []
