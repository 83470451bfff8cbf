"""The reference data path: how the seed projects load data (PIL image per sample,
per-sample torchvision transforms, torch.utils.data.DataLoader)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class PerSampleDataset(Dataset):
    """Like torchvision.datasets.MNIST/CIFAR10: a PIL image per item, then transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: T.Compose) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        return self.transform(pil), int(self.labels[i])


def reference_loader(
    images: np.ndarray,
    labels: np.ndarray,
    pil_transforms: list,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    workers: int,
    tensor_transforms: tuple = (),
    train: bool = True,
    device: torch.device | None = None,
) -> DataLoader:
    """Per-sample PIL transforms, then ToTensor and Normalize, then tensor transforms.

    ``train``: shuffled, incomplete last batch dropped; else in order, every sample once.
    For a CUDA ``device`` the batches come in page-locked memory, as a careful PyTorch user
    sets it up, so that :func:`to_device` copies them asynchronously."""
    transform = T.Compose(
        [*pil_transforms, T.ToTensor(), T.Normalize(mean, std), *tensor_transforms]
    )
    return DataLoader(
        PerSampleDataset(images, labels, transform),
        batch_size=batch_size,
        shuffle=train,
        num_workers=workers,
        drop_last=train,
        pin_memory=device is not None and device.type == "cuda",
    )


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The reference loop's copy to the device: non-blocking from pinned memory on CUDA."""
    return batch.to(device, non_blocking=device.type == "cuda")
