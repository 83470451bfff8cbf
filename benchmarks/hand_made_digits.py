"""Score checkpoints on the hand-made digit pictures: tests/data/digits (pen strokes on
paper and boards, every image format) and tests/data/digits-wild (calligraphy nibs,
brushes, several colours, neon, embossing, notebook and graph paper: styles the printed
digit generator never draws). Each folder's labels.json holds the answers.

    python benchmarks/hand_made_digits.py runs/digits-wild/runs/*/checkpoint.pt

One row per checkpoint and folder: how many it reads, and which it misreads. --invert
is passed on to prediction (auto: light-on-dark digits for models trained on MNIST-like
data, as `cnnlab predict` does). --small also pastes each picture, 100 px on its longer
side, at a random place into a 500x400 picture of its border's colour (a figure filling
a fifth of a photo) and reads those with predict's figure finder on and off.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.api import predict
from cnnlab.inference.images import flatten_mode, open_image

FOLDERS = [
    Path(__file__).resolve().parent.parent / "tests" / "data" / d for d in ("digits", "digits-wild")
]


def score(
    checkpoint: Path, folder: Path, invert: str, locate: str = "auto"
) -> tuple[int, int, list[str]]:
    labels = json.loads((folder / "labels.json").read_text())
    got = {
        p.path.name: p.top[0][0] if p.top else "?"
        for p in predict(checkpoint, folder, top_k=1, invert=invert, locate=locate)
    }
    wrong = [
        f"{name}: {got.get(name, '?')}" for name, label in labels.items() if got.get(name) != label
    ]
    return len(labels) - len(wrong), len(labels), wrong


def in_large_pictures(folder: Path, out: Path, seed: int = 0) -> Path:
    """Each picture of ``folder`` small in a large one, under the same names, in ``out``."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    labels = json.loads((folder / "labels.json").read_text())
    for name in labels:
        picture = flatten_mode(open_image(folder / name)).convert("RGB")
        side = max(picture.size)
        picture = picture.resize((100 * picture.width // side, 100 * picture.height // side))
        pixels = np.asarray(picture, dtype=np.float64)
        border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3)])
        canvas = np.median(border, axis=0) + rng.normal(0, 4, (400, 500, 3))
        x = int(rng.integers(0, 500 - picture.width))
        y = int(rng.integers(0, 400 - picture.height))
        canvas[y : y + picture.height, x : x + picture.width] = pixels
        image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
        image.save(out / Path(name).with_suffix(".png"))
    renamed = {str(Path(name).with_suffix(".png")): label for name, label in labels.items()}
    (out / "labels.json").write_text(json.dumps(renamed))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--invert", default="auto", choices=["auto", "yes", "no"])
    parser.add_argument("--small", action="store_true", help="also small in large pictures")
    args = parser.parse_args(argv)
    print("| checkpoint | pictures | read | misread (file: predicted) |\n|---|---|---:|---|")
    with tempfile.TemporaryDirectory() as scratch:
        sets = [(folder, folder.name, "auto") for folder in FOLDERS]
        if args.small:
            for folder in FOLDERS:
                large = in_large_pictures(folder, Path(scratch) / folder.name)
                sets += [
                    (large, f"{folder.name}, small, --locate {how}", how) for how in ("auto", "off")
                ]
        for checkpoint in args.checkpoints:
            for folder, name, locate in sets:
                right, total, wrong = score(checkpoint, folder, args.invert, locate)
                print(f"| {checkpoint} | {name} | {right}/{total} | {', '.join(wrong) or '-'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
