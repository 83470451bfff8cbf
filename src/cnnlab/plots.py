"""Drawing primitives: figures written as PNG files (Agg backend: no display needed).

Torch-free and study-agnostic: a run folder's curves and confusion matrix, and the
study report's figures (which :mod:`cnnlab.analysis.figures` chooses and captions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cnnlab.atomic import atomic_path
from cnnlab.records import EpochRow


def _save(fig: plt.Figure, out: Path, dpi: int = 100) -> Path:
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return out


def plot_run_curves(history: Sequence[EpochRow], out: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch for train, test and (when present) validation."""
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("val", ":"), ("test", "--")):
        # None -> nan, a gap where an epoch has no figure (the test split at the end only).
        losses = np.array([r.get(f"{split}_loss") for r in history], dtype=float)
        accs = 100 * np.array([r.get(f"{split}_acc") for r in history], dtype=float)
        if not np.isnan(losses).all():
            ax_loss.plot(epochs, losses, style, marker=".", label=split)
            ax_acc.plot(epochs, accs, style, marker=".", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts; rows are true classes."""
    k = len(classes)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    # Long titles (variant, seed, dataset, accuracy) must fit the square figure.
    ax.set_title(title or "confusion matrix", fontsize=9, wrap=True)
    return _save(fig, out)


# ---------------------------------------------------------------------------
# Study report figures (chosen by cnnlab.analysis.figures).
# ---------------------------------------------------------------------------

CurveStats = tuple[Sequence[int], Sequence[float | None], Sequence[float | None]]


def variant_colors(names: Sequence[str]) -> dict[str, Any]:
    """One stable colour per variant, the same in every figure of a report."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _band(ax: plt.Axes, curve: CurveStats, scale: float, color: Any, label: str, **kw: Any) -> None:
    epochs, mean, std = curve
    xs = [e for e, m in zip(epochs, mean, strict=True) if m is not None]
    ms = np.array([m for m in mean if m is not None], dtype=float) * scale
    if not xs:
        return
    ax.plot(xs, ms, color=color, label=label, marker="." if len(xs) < 30 else None, **kw)
    sd = [s for m, s in zip(mean, std, strict=True) if m is not None]
    if any(s is not None for s in sd):
        sds = np.array([np.nan if s is None else s for s in sd], dtype=float) * scale
        ax.fill_between(xs, ms - sds, ms + sds, color=color, alpha=0.18, linewidth=0)


def plot_study_curves(
    curves: dict[str, dict[str, CurveStats]],
    out: Path,
    baseline: str | None = None,
    title: str = "",
) -> Path:
    """Train/test loss and accuracy per epoch for every variant: mean line, ±1 std band.

    ``curves[variant][metric] = (epochs, mean, std)`` with metric one of
    train_loss, test_loss, train_acc, test_acc (accuracies as fractions).
    """
    names = list(curves)
    colors = variant_colors(names)
    if all(len(c[0]) <= 1 for stats in curves.values() for c in stats.values()):
        return _one_epoch_bars(curves, out, colors, baseline)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    panels = (
        ("train_loss", "train loss", 1.0, axes[0][0]),
        ("test_loss", "test loss", 1.0, axes[0][1]),
        ("train_acc", "train accuracy (%)", 100.0, axes[1][0]),
        ("test_acc", "test accuracy (%)", 100.0, axes[1][1]),
    )
    for key, label, scale, ax in panels:
        for name in names:
            if key in curves[name]:
                is_base = name == baseline
                shown = f"{name} (baseline)" if is_base else name
                _band(
                    ax,
                    curves[name][key],
                    scale,
                    colors[name],
                    shown,
                    lw=2.4 if is_base else 1.6,
                    linestyle="--" if is_base else "-",
                    zorder=3 if is_base else 2,
                )
        ax.set(title=label, ylabel=label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[1][1].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(4, len(labels)),
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
    fig.suptitle(title or "mean over seeds; band: ±1 standard deviation", fontsize=11)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) - 1) // 4), 1, 1))
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


def _one_epoch_bars(
    curves: dict[str, dict[str, CurveStats]],
    out: Path,
    colors: dict[str, Any],
    baseline: str | None,
) -> Path:
    """With one epoch a curve is a dot: each panel is then a bar per variant, mean ± std."""
    names = list(curves)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = (("train_loss", "train loss", 1.0), ("test_loss", "test loss", 1.0),
              ("train_acc", "train accuracy (%)", 100.0), ("test_acc", "test accuracy (%)", 100.0))  # fmt: skip
    for ax, (key, label, scale) in zip(axes.flat, panels, strict=True):
        shown = [n for n in names if key in curves[n] and curves[n][key][1]]
        means = [scale * (curves[n][key][1][0] or 0.0) for n in shown]
        stds = [scale * (curves[n][key][2][0] or 0.0) for n in shown]
        ax.bar(range(len(shown)), means, yerr=stds, capsize=4, color=[colors[n] for n in shown],
               edgecolor=["black" if n == baseline else "none" for n in shown])  # fmt: skip
        ax.set_xticks(range(len(shown)), shown, rotation=20, ha="right", fontsize=8)
        ax.set(title=f"{label} after 1 epoch", ylabel=label)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("one epoch: mean over seeds, bar ±1 standard deviation (outlined: baseline)",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


def plot_final_accuracy(
    names: Sequence[str],
    means: Sequence[float | None],
    ci: Sequence[tuple[float | None, float | None]],
    seeds: Sequence[Sequence[float]],
    out: Path,
    baseline: str | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Final test accuracy per variant: the mean as a black dot with its 95% CI whisker,
    each seed a coloured dot.

    No bars: the axis is zoomed to the data (a bar from 0 would hide 0.1-point
    differences), and a bar from a cut axis would make its length lie about the
    ratio of two accuracies. The baseline's mean is a dashed vertical line.
    ``labels`` (e.g. verdicts) are written at the right.
    """
    colors = variant_colors(list(names))
    k = len(names)
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.55 * max(k, 2)))
    ys = np.arange(k)[::-1]
    values = [100 * v for seq in seeds for v in seq]
    values += [100 * v for pair in ci for v in pair if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 100.0)
    pad = max(0.05 * (hi - lo), 0.1)
    left = lo - pad
    base_mean = None
    for y, name, mean, (c_lo, c_hi), pts in zip(ys, names, means, ci, seeds, strict=True):
        color = colors[name]
        if mean is None:
            ax.text(left + pad / 2, y, "no finished runs", va="center", fontsize=9, color="0.4")
            continue
        m = 100 * mean
        if name == baseline:
            base_mean = m
        ax.axhline(y, color=color, lw=0.6, alpha=0.35, zorder=0)  # guides the eye to the name
        if c_lo is not None and c_hi is not None:
            ax.errorbar(
                m,
                y,
                xerr=[[m - 100 * c_lo], [100 * c_hi - m]],
                fmt="o",
                color="black",
                capsize=5,
                lw=1.4,
                ms=5,
            )
        else:
            ax.plot([m], [y], "o", color="black", ms=5)
        jitter = np.linspace(-0.12, 0.12, len(pts)) if len(pts) > 1 else [0.0]
        ax.scatter(
            [100 * v for v in pts],
            y + np.asarray(jitter),
            s=24,
            color=color,
            edgecolor="white",
            linewidth=0.5,
            zorder=3,
        )
    xlabel = "final test accuracy (%): mean, 95% CI, one dot per seed"
    if base_mean is not None:
        ax.axvline(base_mean, color="0.25", linestyle="--", lw=1, zorder=1)
        xlabel += "; dashed: baseline mean"
    ticks = [f"{n} (baseline)" if n == baseline else n for n in names]
    ax.set_yticks(ys, ticks, fontsize=9)
    ax.set_xlim(left, hi + pad)
    if labels:  # in the right margin, outside the data range
        for y, text in zip(ys, labels, strict=True):
            color = {"better": "#1b7f3b", "worse": "#b3261e"}.get(text, "0.35")
            weight = "bold" if text in ("better", "worse") else "normal"
            ax.annotate(
                text,
                xy=(1.0, y),
                xycoords=("axes fraction", "data"),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                fontsize=8.5,
                color=color,
                weight=weight,
            )
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out)


def _rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) with C = 1 or 3 -> float (N, H, W, 3) in [0, 1]."""
    x = images.astype(np.float32) / 255.0
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return x[:, :3].transpose(0, 2, 3, 1)


def plot_prediction_grid(
    images: np.ndarray,
    true: Sequence[int],
    pred: Sequence[int],
    classes: Sequence[str],
    out: Path,
    probs: Sequence[float] | None = None,
    cols: int = 8,
    title: str = "",
) -> Path:
    """Test images (uint8 N,C,H,W) captioned "predicted / true"; wrong ones framed in red.

    Drawn as one mosaic in a single axes (24 small axes take seconds to lay out).
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    rgb = _rgb(images) if n else np.zeros((0, 28, 28, 3), np.float32)
    h, w = rgb.shape[1:3]
    border = max(1, round(max(h, w) / 14))
    gap = max(2, round(w / 5))
    inch, fontsize = 1.45, 8.0  # per cell; caption points
    cell_w = w + 2 * border + gap
    units_per_inch = cell_w / inch
    cap = int(np.ceil(2.5 * fontsize / 72 * units_per_inch)) + border  # two caption lines
    cell_h = h + 2 * border + cap
    canvas = np.ones((rows * cell_h, cols * cell_w, 3), dtype=np.float32)
    red, green, grey = (0.78, 0.16, 0.16), (0.11, 0.37, 0.13), (0.8, 0.8, 0.8)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * cell_h + cap, c * cell_w + gap // 2
        wrong = int(pred[i]) != int(true[i])
        canvas[top : top + h + 2 * border, left : left + w + 2 * border] = red if wrong else grey
        canvas[top + border : top + border + h, left + border : left + border + w] = rgb[i]
    fig = plt.figure(figsize=(inch * cols, inch * cols * canvas.shape[0] / canvas.shape[1] + 0.3))
    ax = fig.add_axes((0, 0, 1, 1 if not title else 1 - 0.3 / fig.get_figheight()))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        wrong = int(pred[i]) != int(true[i])
        head = classes[int(pred[i])][:12]
        if probs is not None:
            head += f" {100 * probs[i]:.0f}%"
        ax.text(
            c * cell_w + gap // 2 + border + w / 2,
            r * cell_h + cap - border,
            f"{head}\ntrue: {classes[int(true[i])][:12]}",
            ha="center",
            va="bottom",
            fontsize=fontsize,
            color=red if wrong else green,
            weight="bold" if wrong else "normal",
        )
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
