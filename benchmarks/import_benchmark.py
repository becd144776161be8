"""Bulk import speed and memory: `main.py --mode INDEX` on a folder of drawn images.

Draws `--images` pictures (default 10,000; 640x480 JPEGs of random ellipses and rectangles on a
random background, seeded: no dataset image), then imports them into a fresh SQLite store with the
shipped checkpoint, as a user would, twice: the first run adds them all, the second finds every
file stored and skips it. Reports wall time, images per second (model loading included) and the
import process's peak RSS, with the load average before each run (the machine's contention).

python benchmarks/import_benchmark.py --out benchmarks/results/import_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 480)


def draw_folder(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for number in range(count):
        picture = Image.new("RGB", SIZE, tuple(int(v) for v in rng.integers(0, 256, 3)))
        pen = ImageDraw.Draw(picture)
        for _ in range(8):
            x, y = int(rng.integers(0, SIZE[0])), int(rng.integers(0, SIZE[1]))
            box = [x, y, x + int(rng.integers(20, 300)), y + int(rng.integers(20, 300))]
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (pen.ellipse if rng.random() < 0.5 else pen.rectangle)(box, fill=colour)
        picture.save(folder / f"{number:05d}.jpg", quality=90)


def timed_import(folder: Path, store_dir: Path) -> dict:
    """One `main.py --mode INDEX` run in a child process: its wall time, peak RSS and summary."""
    env = {**os.environ, "CLIP_STORE_DIR": str(store_dir)}
    env.pop("CLIP_DATABASE_URL", None)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "main.py"), "--mode", "INDEX", "--folder", str(folder)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the import failed: {output}")
    return {
        "summary": output.splitlines()[0],
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "load_average_before": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-benchmark-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        started = time.perf_counter()
        draw_folder(folder, args.images)
        print(f"drew {args.images} images in {time.perf_counter() - started:.0f} s", flush=True)
        first = timed_import(folder, Path(tmp) / "store")
        first["images_per_s"] = round(args.images / first["seconds"], 1)
        print("first run:", first, flush=True)
        again = timed_import(folder, Path(tmp) / "store")
        again["images_per_s"] = round(args.images / again["seconds"], 1)
        print("second run (every file already stored):", again, flush=True)
    results = {"images": args.images, "size": list(SIZE), "first": first, "second": again, "cpus": os.cpu_count()}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
