"""Pack aligned training faces into tar parts small enough to travel to the lent GPU machine.

Why: a device call carries the working tree plus named ignored paths, 64 MiB in all, and the
tree itself takes a good part of that; the faces (CelebA + UTKFace, chip-aligned) go over in
parts, one per call, unpacked on the machine by `tools/gpu/run.sh unpack`.

Each SRC is a `facenet align` output: `<identity>/<image>` folders (CelebA), or images directly
in it (UTKFace: each becomes its own identity). Every face is re-encoded as a SIZE px JPEG
(quality Q) under `<prefix>-<identity>/` and packed, in sorted order, into `OUT/faces-NN.tar`
parts of at most PART MiB (`--part-mib auto`: what a call can carry beside the working tree and
the wheels in .whl/). `--teacher FILE` packs the teacher's model file too (it is not in the
tree), in pieces under `.teacher/` at the front of the parts, which `run.sh` joins again.
`OUT/manifest.json` lists the parts, the face count and the teacher's pieces, which `run.sh`
checks before training.

    python tools/gpu/stage.py /work/data-cache/celeba-chip-128:celeba \\
        /work/data-cache/utkface-chip-128:utk --out .stage --part-mib auto \\
        --teacher /work/runs/dlib-resnet-noflip.keras
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CARRY_LIMIT = 64 * 2**20
TAR_OVERHEAD = 1024  # a header block plus padding, per member (bytes, upper bound)


def faces(src: Path, prefix: str) -> list[tuple[str, Path]]:
    """(archive name, file) of every face under src, in sorted order."""
    out = []
    for entry in sorted(src.iterdir()):
        if entry.is_dir():
            out += [(f"{prefix}-{entry.name}/{f.stem}.jpg", f) for f in sorted(entry.iterdir())
                    if f.suffix.lower() in SUFFIXES]  # fmt: skip
        elif entry.suffix.lower() in SUFFIXES:
            out.append((f"{prefix}-{entry.stem}/{entry.stem}.jpg", entry))
    return out


def encode(path: Path, size: int, quality: int) -> bytes:
    image = Image.open(path).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def tree_bytes(repo: Path) -> int:
    """Bytes of the files a device call sends anyway: tracked and untracked-not-ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, check=True).stdout  # fmt: skip
    names = [n for n in listed.decode().split("\0") if n]
    return sum((repo / n).stat().st_size for n in names if (repo / n).is_file())


def auto_part_bytes(repo: Path) -> int:
    wheels = sum(p.stat().st_size for p in (repo / ".whl").glob("*.whl"))
    budget = CARRY_LIMIT - tree_bytes(repo) - wheels - 2**20  # 1 MiB to spare
    if budget < 2**20:
        sys.exit(f"error: the working tree leaves {budget / 2**20:.1f} MiB of the 64 MiB carry")
    return budget


def teacher_pieces(path: Path, piece_bytes: int) -> list[tuple[str, bytes]]:
    """(archive name, bytes) of the teacher file cut into pieces that fit a part."""
    data = path.read_bytes()
    step = max(piece_bytes - TAR_OVERHEAD * 4, 2**16)
    return [(f".teacher/{path.name}.piece-{i // step:03d}", data[i : i + step])
            for i in range(0, len(data), step)]  # fmt: skip


def pack(items, out: Path, part_bytes: int, size: int, quality: int, extra=()) -> dict:
    """Write the parts (the `extra` (name, bytes) pieces first); returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict] = []
    tar, used = None, 0
    for name, source in [*extra, *items]:
        data = source if isinstance(source, bytes) else encode(source, size, quality)
        if tar is None or used + len(data) + TAR_OVERHEAD > part_bytes - TAR_OVERHEAD * 2:
            if tar is not None:
                tar.close()
            part = out / f"faces-{len(parts) + 1:02d}.tar"
            tar, used = tarfile.open(part, "w", format=tarfile.USTAR_FORMAT), 0
            parts.append({"file": part.name, "faces": 0})
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        used += len(data) + TAR_OVERHEAD
        parts[-1]["faces"] += not isinstance(source, bytes)
    if tar is not None:
        tar.close()
    for part in parts:
        part["bytes"] = (out / part["file"]).stat().st_size
    return {"faces": sum(p["faces"] for p in parts), "size": size, "quality": quality,
            "parts": parts, "teacher_pieces": [name for name, _ in extra]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="ALIGNED_DIR:PREFIX")
    parser.add_argument("--out", type=Path, default=Path(".stage"))
    parser.add_argument("--part-mib", default="auto", help="MiB per part, or auto")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--limit", type=int, default=None, help="at most N faces per source")
    parser.add_argument("--teacher", type=Path, default=None, help="a teacher .keras to pack too")
    args = parser.parse_args()
    items = []
    for spec in args.sources:
        folder, _, prefix = spec.partition(":")
        if not Path(folder).is_dir():
            sys.exit(f"error: {folder}: no such folder")
        items += faces(Path(folder), prefix or Path(folder).name)[: args.limit]
    if not items:
        sys.exit("error: no faces found")
    if args.part_mib == "auto":
        part_bytes = auto_part_bytes(Path.cwd())
    else:
        part_bytes = int(float(args.part_mib) * 2**20)
    for old in args.out.glob("faces-*.tar"):
        old.unlink()
    if args.teacher is not None and not args.teacher.is_file():
        sys.exit(f"error: {args.teacher}: no such file")
    extra = teacher_pieces(args.teacher, part_bytes) if args.teacher else []
    manifest = pack(items, args.out, part_bytes, args.size, args.quality, extra)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p["bytes"] for p in manifest["parts"]) / 2**20
    print(f"{manifest['faces']} faces in {len(manifest['parts'])} parts of <= "
          f"{part_bytes / 2**20:.1f} MiB ({total:.1f} MiB) under {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
