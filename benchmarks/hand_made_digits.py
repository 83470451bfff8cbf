"""Score checkpoints on the hand-made digit pictures: tests/data/digits (pen strokes on
paper and boards, every image format) and tests/data/digits-wild (calligraphy nibs,
brushes, several colours, neon, embossing, notebook and graph paper: styles the printed
digit generator never draws). Each folder's labels.json holds the answers.

    python benchmarks/hand_made_digits.py runs/digits-wild/runs/*/checkpoint.pt

One row per checkpoint and folder: how many it reads, and which it misreads. --invert
is passed on to prediction (auto: light-on-dark digits for models trained on MNIST-like
data, as `cnnlab predict` does).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.api import predict

FOLDERS = [
    Path(__file__).resolve().parent.parent / "tests" / "data" / d for d in ("digits", "digits-wild")
]


def score(checkpoint: Path, folder: Path, invert: str) -> tuple[int, int, list[str]]:
    labels = json.loads((folder / "labels.json").read_text())
    got = {
        p.path.name: p.top[0][0] if p.top else "?"
        for p in predict(checkpoint, folder, top_k=1, invert=invert)
    }
    wrong = [
        f"{name}: {got.get(name, '?')}" for name, label in labels.items() if got.get(name) != label
    ]
    return len(labels) - len(wrong), len(labels), wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--invert", default="auto", choices=["auto", "yes", "no"])
    args = parser.parse_args(argv)
    print("| checkpoint | pictures | read | misread (file: predicted) |\n|---|---|---:|---|")
    for checkpoint in args.checkpoints:
        for folder in FOLDERS:
            right, total, wrong = score(checkpoint, folder, args.invert)
            print(f"| {checkpoint} | {folder.name} | {right}/{total} | {', '.join(wrong) or '-'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
