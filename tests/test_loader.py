import numpy as np
import pytest
import torch

from cnnlab.data.arrays import Split
from cnnlab.data.loader import DeviceLoader, Normalization, channel_stats, pad_to, stratified_split


def make_split(n: int = 50, c: int = 1, size: int = 4, classes: int = 5, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, c, size, size), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.int64)
    return Split(images, labels)


def test_channel_stats_matches_numpy_per_channel():
    split = make_split(n=37, c=3)
    stats = channel_stats(split.images, chunk=10)
    x = split.images.astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, x.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(stats.std, x.std(axis=(0, 2, 3)), rtol=1e-6)


def test_batches_are_normalised_and_cover_every_sample_once():
    split = make_split(n=23)
    norm = Normalization((0.5,), (0.25,))
    loader = DeviceLoader(split, norm, batch_size=5, shuffle=True, seed=3)
    xs, ys = zip(*loader, strict=True)
    assert len(loader) == 5 == len(xs)
    assert [len(y) for y in ys] == [5, 5, 5, 5, 3]
    x = torch.cat(xs)
    y = torch.cat(ys)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    # Undo the normalisation and find each image back in the split exactly once.
    raw = torch.round((x * 0.25 + 0.5) * 255).to(torch.uint8).numpy()
    keys = sorted(r.tobytes() for r in raw)
    assert keys == sorted(r.tobytes() for r in split.images)
    order = [
        next(i for i, img in enumerate(split.images) if img.tobytes() == r.tobytes()) for r in raw
    ]
    np.testing.assert_array_equal(y.numpy(), split.labels[order])


def test_unshuffled_order_is_the_split_order():
    split = make_split(n=12)
    loader = DeviceLoader(split, Normalization((0.0,), (1.0,)), batch_size=5)
    y = torch.cat([b[1] for b in loader])
    np.testing.assert_array_equal(y.numpy(), split.labels)


def test_drop_last_drops_the_partial_batch():
    loader = DeviceLoader(
        make_split(n=23), Normalization((0.0,), (1.0,)), batch_size=5, drop_last=True
    )
    assert len(loader) == 4 == len(list(loader))


def test_order_depends_only_on_seed_and_epoch():
    split = make_split(n=40)
    norm = Normalization((0.0,), (1.0,))

    def labels(seed: int, epoch: int) -> list[int]:
        loader = DeviceLoader(split, norm, batch_size=8, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader]).tolist()

    assert labels(1, 0) == labels(1, 0)
    assert labels(1, 0) != labels(1, 1)
    assert labels(1, 0) != labels(2, 0)


def test_augment_is_called_with_unit_range_floats_and_the_loader_generator():
    seen = []

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        seen.append((float(x.min()), float(x.max()), isinstance(gen, torch.Generator)))
        return 1.0 - x

    split = make_split(n=10)
    plain = torch.cat([x for x, _ in DeviceLoader(split, Normalization((0.0,), (1.0,)), 10)])
    flipped = torch.cat(
        [x for x, _ in DeviceLoader(split, Normalization((0.0,), (1.0,)), 10, augment=augment)]
    )
    assert seen and all(lo >= 0.0 and hi <= 1.0 and g for lo, hi, g in seen)
    torch.testing.assert_close(flipped, 1.0 - plain)


def test_both_paths_normalise_each_channel_alike():
    # Without augmentation the loader goes from uint8 to normalised floats in one step,
    # with it through [0, 1] floats: the same numbers either way.
    split = make_split(n=12, c=3)
    norm = Normalization((0.2, 0.5, 0.7), (0.1, 0.3, 0.25))
    direct = torch.cat([x for x, _ in DeviceLoader(split, norm, 5)])
    through = torch.cat([x for x, _ in DeviceLoader(split, norm, 5, augment=lambda x, g: x)])
    mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(norm.std).view(1, 3, 1, 1)
    expected = (torch.from_numpy(split.images).float() / 255 - mean) / std
    torch.testing.assert_close(direct, expected)
    torch.testing.assert_close(through, expected)


def test_channels_last_layout():
    loader = DeviceLoader(
        make_split(c=3), Normalization((0.0,) * 3, (1.0,) * 3), 8, channels_last=True
    )
    x, _ = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_normalisation_channel_mismatch_is_an_error():
    with pytest.raises(ValueError, match="channels"):
        DeviceLoader(make_split(c=3), Normalization((0.0,), (1.0,)), 8)


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20]).astype(np.int64)
    keep, held = stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(keep, held)) == 0
    assert len(keep) + len(held) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[held]), [20, 10, 6, 4])
    _, held2 = stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(held, held2)
    _, held3 = stratified_split(labels, 0.2, seed=1)
    assert not np.array_equal(held, held3)


def test_pad_to_centres_the_image():
    images = np.full((2, 1, 28, 28), 7, dtype=np.uint8)
    padded = pad_to(images, (32, 32))
    assert padded.shape == (2, 1, 32, 32)
    assert padded[:, :, 2:30, 2:30].min() == 7
    assert padded.sum() == images.sum()
    assert pad_to(images, (28, 28)) is images
