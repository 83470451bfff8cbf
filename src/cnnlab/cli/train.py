"""`cnnlab train`: one run from flags and/or a TOML file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from cnnlab.cli.common import (
    DATASET_HELP,
    console,
)
from cnnlab.errors import CnnlabError

TRAIN_EPILOG = """\
examples:
  cnnlab train --dataset mnist --model lenet5 --epochs 10 --batch-size 64 \\
      --optimizer adam --lr 1e-3 --augment rotate=20,translate=0.1,crop=0.8,nearest --out runs/lenet5
  cnnlab train --config lenet5.toml --seed 3      a TOML file of the same settings; flags win
  cnnlab train --out runs/lenet5 --resume ...     continue an interrupted run from its checkpoint
  cnnlab train --dataset digits-wild --model lenet5 --model-arg batch_norm=true \\
      --augment recolor,gray=0.2,texture=0.3,blur=1 --epochs 6
  cnnlab train --dataset cifar10 --model models/cifar10-fast-narrow.toml --epochs 5 \\
      --batch-size 128 --optimizer sgd --nesterov --lr 0.4 --weight-decay 5e-4 \\
      --schedule linear --warmup-epochs 0.5 --label-smoothing 0.2 --augment flip,pad=2 \\
      --ema-decay 0.98 --tta flip          the CIFAR-10 fast recipe (studies/cifar10-fast.toml)

augment ops (comma-separated): flip[=p], translate=frac, pad=px, rotate=deg, crop=min_scale,
cutout=px, blur=sigma, nearest (nearest-neighbour resampling: no blur, for digits);
for gray digits: recolor[=p_invert] (random colours), with gray=p (keep a fraction gray) and
texture=amp (textured, noisy backgrounds)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one dataset; writes metrics, curves and a checkpoint",
        description="Train one model. Settings come from --config (TOML) and flags; flags win.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="TOML file with any of the settings below")
    p.add_argument("--dataset", help=DATASET_HELP)
    p.add_argument("--model", help="built-in name (see `cnnlab models list`) or a model .toml file")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder argument, repeatable, e.g. --model-arg batch_norm=true",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--nesterov", action="store_const", const=True, help="Nesterov momentum (SGD)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle", "linear"])
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--grad-clip", type=float, help="clip the global gradient norm to this")
    p.add_argument(
        "--ema-decay",
        type=float,
        help="evaluate and save an exponential moving average of the weights, e.g. 0.99",
    )
    p.add_argument(
        "--tta",
        choices=["none", "flip", "flip-translate"],
        help="test-time augmentation: flip averages each test image's logits with its mirror "
        "image's (2 passes); flip-translate adds 1-pixel shifts (6 passes) (default none)",
    )
    p.add_argument(
        "--compile",
        action="store_const",
        const=True,
        help="torch.compile the training step (a warm-up of tens of seconds first)",
    )
    p.add_argument("--augment", help="e.g. rotate=20,translate=0.1,crop=0.8 or flip,pad=4")
    p.add_argument("--val-fraction", type=float, help="stratified validation hold-out from train")
    p.add_argument(
        "--early-stopping", type=int, metavar="PATIENCE", help="epochs without val-loss gain"
    )
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="default auto")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, help="fixes init, shuffling and augmentation")
    p.add_argument(
        "--data-dir", help="folder holding <name>/<canonical files> (default $CNNLAB_DATA)"
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/<model>-<dataset>-s<seed>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)


TRAIN_FLAGS = {
    "dataset": ("dataset",),
    "model": ("model",),
    "epochs": ("epochs",),
    "batch_size": ("batch_size",),
    "optimizer": ("optimizer", "name"),
    "lr": ("optimizer", "lr"),
    "momentum": ("optimizer", "momentum"),
    "nesterov": ("optimizer", "nesterov"),
    "weight_decay": ("optimizer", "weight_decay"),
    "schedule": ("schedule", "name"),
    "warmup_epochs": ("schedule", "warmup_epochs"),
    "label_smoothing": ("label_smoothing",),
    "grad_clip": ("grad_clip",),
    "ema_decay": ("ema_decay",),
    "tta": ("tta",),
    "compile": ("compile",),
    "augment": ("augment",),
    "val_fraction": ("val_fraction",),
    "early_stopping": ("early_stopping",),
    "precision": ("precision",),
    "device": ("device",),
    "seed": ("seed",),
    "data_dir": ("data_dir",),
}


def parse_key_values(items: Sequence[str], flag: str) -> dict[str, object]:
    """KEY=VALUE pairs; VALUE is read as a TOML value (true, 0.5, "text"), else as a string."""
    import tomllib

    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CnnlabError(f"{flag} '{item}' is not KEY=VALUE, e.g. {flag} batch_norm=true")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def train_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings given as flags, nested the way the config file nests them."""
    values: dict[str, object] = {}
    for flag, path in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if len(path) == 1:
            values[path[0]] = value
        else:
            section = values.setdefault(path[0], {})
            assert isinstance(section, dict)
            section[path[1]] = value
    if args.model_arg:
        values["model_args"] = parse_key_values(args.model_arg, "--model-arg")
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.config.schema import load_config_file, make_config
    from cnnlab.plots import plot_run_curves
    from cnnlab.records import ARTIFACTS
    from cnnlab.train.loop import train
    from cnnlab.train.progress import make_reporter

    overrides = train_overrides(args)
    cfg = (
        load_config_file(args.config, overrides) if args.config else make_config(overrides, "flags")
    )
    out = (
        args.out
        or Path("runs")
        / f"{Path(cfg.model).stem}-{cfg.dataset.replace(':', '_').replace('/', '_')}-s{cfg.seed}"
    )
    if not args.quiet:
        console.print(f"training {cfg.model} on {cfg.dataset} for {cfg.epochs} epochs -> {out}")
    record = train(cfg, out, resume=args.resume, reporter=make_reporter(args.quiet, console))
    plot_run_curves(
        record.history, out / ARTIFACTS["curves"], title=f"{cfg.model} on {cfg.dataset}"
    )
    summary, final = record.summary, record.summary.final
    console.print(
        f"done: test accuracy {100 * final.test_acc:.2f}% (loss {final.test_loss:.4f}) after "
        f"{summary.epochs} epochs, {summary.train_seconds:.1f}s training, "
        f"{summary.params:,} parameters, {summary.precision}; results in {out}"
    )
    return 0
