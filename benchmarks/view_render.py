"""Views a second: the PIL renderer in the loader's threads beside the JAX renderer in one step.

Why: the views trainer renders every face's augmented view at the student's and the teacher's
input sizes. On the host (`--render host`) PIL does it in `--workers` threads; on the device
(`--render device`) `facenet.data.views_jax.render_views` does it inside the jitted step from the
crops held there. This times both on the same 128 px CelebA chips-to-be (centre crops resized,
as `facenet align --size 128` gives) and the same view rows (mixup 0.2, the trainer's default
augmentation), per batch: the median of `--rounds` after one warm-up (the jitted renderer's
compilation), and faces/s, with the ratio device / host. On a CPU the "device" is this CPU: the
figure says what rendering in XLA costs here; on a GPU run it there (JAX's default device).

    python benchmarks/view_render.py [--batch 256] [--workers 2] [--rounds 5] [--sizes 112 150]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facenet.data.loader import ViewLoader  # noqa: E402
from facenet.data.views import ViewSpec  # noqa: E402

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"


def chips(folder: Path, count: int, size: int, out: Path) -> list[str]:
    """`count` CelebA photos as square centre crops of `size` px, written under `out`."""
    from PIL import Image

    paths = []
    for i, photo in enumerate(sorted(folder.glob("*/*.jpg"))[:count]):
        image = Image.open(photo).convert("RGB")
        side = min(image.size)
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size))
        paths.append(str(out / f"{i:05d}.jpg"))
        image.save(paths[-1], quality=90)
    return paths


def timed(function, rounds: int) -> float:
    """Median seconds of `rounds` calls after one warm-up."""
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 150])
    parser.add_argument("--celeba", type=Path, default=CELEBA)
    args = parser.parse_args()
    import tempfile

    import jax
    import jax.numpy as jnp

    from facenet.data.views_jax import render_views

    with tempfile.TemporaryDirectory() as tmp:
        paths = chips(args.celeba, args.batch, 128, Path(tmp))
        if len(paths) < args.batch:
            sys.exit(f"error: {args.celeba}: fewer than {args.batch} photos")
        spec = ViewSpec(mixup=0.2)
        labels = np.arange(len(paths))
        host = ViewLoader(paths, labels, args.sizes, spec=spec, workers=args.workers, cache=True)
        device = ViewLoader(paths, labels, args.sizes, spec=spec, workers=args.workers,
                            cache=True, render=False)  # fmt: skip
        indices = np.arange(args.batch)
        rows = host.rows(0, 0, args.batch)
        crops = jax.device_put(device.all_crops())

        @jax.jit
        def render(idx, r):
            return [render_views(crops, idx, r, size) for size in args.sizes]

        idx, r = jnp.asarray(indices, jnp.int32), jnp.asarray(rows, jnp.float32)
        host_s = timed(lambda: host.batch(indices, rows=rows), args.rounds)
        device_s = timed(lambda: jax.block_until_ready(render(idx, r)), args.rounds)
        host.close()
        device.close()
    print(f"{args.batch} faces a batch at sizes {args.sizes}; JAX device {jax.devices()[0]}")
    print(f"host (PIL, {args.workers} threads): {host_s * 1e3:8.1f} ms a batch, "
          f"{args.batch / host_s:8.0f} faces/s")  # fmt: skip
    print(f"device (JAX, jitted):      {device_s * 1e3:8.1f} ms a batch, "
          f"{args.batch / device_s:8.0f} faces/s")  # fmt: skip
    print(f"device / host speed: {host_s / device_s:.2f}x")


if __name__ == "__main__":
    main()
