"""Write examples/data/heart_sample.csv: synthetic rows in the schema of the South African heart
disease data (``sbp,tobacco,ldl,adiposity,famhist,typea,obesity,alcohol,age,chd``).

The values are made up (plausible ranges, a logistic link from risk factors to ``chd``) so the
example can ship data of its own; the real file is never copied into the repository. Only
``random.random()`` is used, whose sequence Python keeps stable across versions, so the same
seed always writes the same bytes.

    python examples/make_heart_sample.py [--rows 200] [--seed 9] [--out examples/data/heart_sample.csv]
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path
from typing import List, Optional

from loaders.files import atomic_write

HEADER = "sbp,tobacco,ldl,adiposity,famhist,typea,obesity,alcohol,age,chd"
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "heart_sample.csv"


def _normal(rng: random.Random) -> float:
    """A standard normal draw from two uniforms (Box-Muller), built on random() only."""
    return math.sqrt(-2.0 * math.log(1.0 - rng.random())) * math.cos(2.0 * math.pi * rng.random())


def make_rows(rows: int, seed: int) -> List[str]:
    """``rows`` CSV lines (no header) drawn with ``seed``."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rows):
        age = 15 + int(50 * rng.random())
        sbp = int(min(218, max(101, 110 + 0.8 * age + 18 * _normal(rng))))
        tobacco = round(max(0.0, 0.12 * age * rng.random() ** 1.5 * 2.5), 2)
        ldl = round(min(15.33, max(0.98, 4.7 + 2.0 * _normal(rng))), 2)
        adiposity = round(min(42.49, max(6.74, 14 + 0.35 * age + 5 * _normal(rng))), 2)
        famhist = "Present" if rng.random() < 0.42 else "Absent"
        typea = int(min(78, max(13, 53 + 10 * _normal(rng))))
        obesity = round(min(46.58, max(14.7, 26 + 4 * _normal(rng))), 2)
        alcohol = round(147.19 * rng.random() ** 3, 2)
        risk = (
            -6.2 + 0.006 * sbp + 0.08 * tobacco + 0.18 * ldl + 0.9 * (famhist == "Present")
            + 0.04 * typea - 0.03 * obesity + 0.05 * age
        )
        chd = 1 if rng.random() < 1.0 / (1.0 + math.exp(-risk)) else 0
        lines.append(f"{sbp},{tobacco},{ldl},{adiposity},{famhist},{typea},{obesity},{alcohol},{age},{chd}")
    return lines


def write_sample(path: Path, rows: int = 200, seed: int = 9) -> Path:
    """Write the header and ``rows`` lines to ``path`` through a temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([HEADER, *make_rows(rows, seed)]) + "\n"
    with atomic_write(path) as out:
        out.write(text.encode())
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    write_sample(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
