"""`cnnlab predict`: top-k labels for image files, decoded in threads and run in batches."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import ConfigError
from cnnlab.evaluation.contract import normalize, tta_logits
from cnnlab.evaluation.precision import run_precision
from cnnlab.inference.images import (
    IMAGE_SUFFIXES,
    ImageError,
    InputSpec,
    Invert,
    Prepared,
    prepare_image,
)
from cnnlab.inference.locate import Locate
from cnnlab.training.checkpoint import Checkpoint


@dataclass(frozen=True)
class Prediction:
    path: Path
    top: list[tuple[str, float]]  # (class name, probability), most likely first
    inverted: bool = False
    error: str | None = None  # set when the file could not be read; ``top`` is then empty

    def to_json(self) -> dict[str, object]:
        if self.error is not None:
            return {"file": str(self.path), "error": self.error}
        return {
            "file": str(self.path),
            "top": [{"label": label, "probability": round(p, 6)} for label, p in self.top],
            "inverted": self.inverted,
        }


def find_images(inputs: Sequence[Path]) -> list[Path]:
    """Files as given (whatever their suffix), folders walked recursively for image suffixes.

    A path that does not exist is kept, so that it is reported like any unreadable
    file instead of stopping the others; a folder without images is an error.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if not item.is_dir():
            found.append(item)
            continue
        images = sorted(
            p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not images:
            raise ConfigError(
                f"{item}: no image files in this folder or below it "
                f"(looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        found.extend(images)
    return found


def default_workers() -> int:
    # Pillow decodes and resizes without the GIL, but opening a file and the per-image
    # numpy steps hold it: on 2 cores, 2 threads ran 10,000 PNGs at ~1,170 images/s,
    # 1 thread at ~580 and 4 at ~1,040 (lock contention). One thread per core, then.
    return max(1, min(8, os.cpu_count() or 1))


# Files per decoding task: one future per file cost ~10% more CPU per image in
# thread hand-offs on 2 cores; a few dozen keep that negligible and still spread a
# batch over the threads.
TASK_FILES = 32


def _prepare_all(paths: Sequence[Path], spec: InputSpec) -> list[Prepared | str]:
    """Each file prepared, or the one-line reason it could not be."""
    out: list[Prepared | str] = []
    for path in paths:
        try:
            out.append(prepare_image(path, spec))
        except ImageError as exc:
            out.append(str(exc))
    return out


class Predictor:
    """A checkpoint's model ready to classify prepared images, with its precision policy."""

    def __init__(self, ckpt: Checkpoint, device: str = "auto") -> None:
        self.classes = list(ckpt.classes)
        self.precision = run_precision(ckpt.config, device, trained_on=ckpt.trained_on)
        device_ = self.precision.device
        model = ckpt.build_model().to(device_)
        if self.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        # Test-time augmentation the run was evaluated with, so that predict agrees with
        # `cnnlab evaluate`.
        self.tta = str(ckpt.config.get("tta", "none"))
        self.normalization = ckpt.normalization

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> torch.Tensor:
        """Softmax probabilities (N, classes) on the CPU for float (N, C, H, W) in [0, 1]."""
        x = torch.from_numpy(images)
        if self.precision.device.type == "cuda":  # page-locked, so the copy runs asynchronously
            x = x.pin_memory().to(self.precision.device, non_blocking=True)
        x = normalize(x, self.normalization)
        if self.precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast():
            logits = tta_logits(self.model, x, self.tta)
        return torch.softmax(logits, dim=1).cpu()


def predict_files(
    ckpt: Checkpoint,
    files: Sequence[Path],
    *,
    top_k: int = 3,
    invert: Invert = "auto",
    locate: Locate = "auto",
    batch_size: int = 256,
    device: str = "auto",
    workers: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[Prediction]:
    """Predictions for ``files`` in their order, one per file; unreadable files carry an error.

    Files are decoded by a thread pool two batches ahead of the model, so decoding
    the next batches overlaps running the current one; memory stays at a few batches
    however many files there are. ``on_batch(n)`` is called after each batch of n files.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: must be at least 1")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    spec = InputSpec.for_checkpoint(ckpt, invert, locate)
    predictor = Predictor(ckpt, device)
    k = min(top_k, len(predictor.classes))
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="decode") as pool:
        ahead: deque[tuple[Sequence[Path], list[Future[list[Prepared | str]]]]] = deque()

        def submit(index: int) -> None:
            if index < len(chunks):
                paths = chunks[index]
                tasks = [
                    pool.submit(_prepare_all, paths[i : i + TASK_FILES], spec)
                    for i in range(0, len(paths), TASK_FILES)
                ]
                ahead.append((paths, tasks))

        submit(0)
        submit(1)
        for index in range(len(chunks)):
            paths, futures = ahead.popleft()
            submit(index + 2)
            results = [r for f in futures for r in f.result()]
            ok = [r for r in results if isinstance(r, Prepared)]
            top_p = top_i = None
            if ok:
                probs = predictor.probabilities(np.stack([r.array for r in ok]))
                top_p, top_i = (t.tolist() for t in probs.topk(k, dim=1))
            row = 0
            for path, result in zip(paths, results, strict=True):
                if isinstance(result, str):
                    yield Prediction(path, [], error=result)
                    continue
                assert top_p is not None and top_i is not None
                top = [
                    (predictor.classes[i], p) for i, p in zip(top_i[row], top_p[row], strict=True)
                ]
                yield Prediction(path, top, result.inverted)
                row += 1
            if on_batch is not None:
                on_batch(len(paths))
