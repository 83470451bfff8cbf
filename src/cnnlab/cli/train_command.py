"""`cnnlab train`: one run from flags and/or a TOML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from cnnlab.cli.common import (
    console,
    output_folder,
)
from cnnlab.cli.train_flags import add_setting_flags, setting_overrides
from cnnlab.stats.formatting import counted

TRAIN_EPILOG = """\
examples:
  cnnlab train --dataset mnist --model lenet5 --epochs 10 --batch-size 64 \\
      --optimizer adam --lr 1e-3 --augment rotate=20,translate=0.1,crop=0.8,nearest --out runs/lenet5
  cnnlab train --config lenet5.toml --seed 3      a TOML file of the same settings; flags win
  cnnlab train --config runs/lenet5 --seed 1 --out runs/lenet5-s1   another run's settings
  cnnlab train --out runs/lenet5 --resume         continue an interrupted run, its settings
  cnnlab train --dataset digits-wild --model lenet5 --model-arg batch_norm=true \\
      --augment recolor,gray=0.2,texture=0.3,blur=1 --epochs 6
  cnnlab train --dataset cifar10 --model models/cifar10-fast-narrow.toml --epochs 5 \\
      --batch-size 128 --optimizer sgd --nesterov --lr 0.4 --weight-decay 5e-4 \\
      --schedule linear --warmup-epochs 0.5 --label-smoothing 0.2 --augment flip,pad=2 \\
      --ema-decay 0.98 --tta flip          the CIFAR-10 fast recipe (studies/cifar10-fast.toml)

augment ops (comma-separated): flip[=p], translate=frac, pad=px, rotate=deg, crop=min_scale,
cutout=px, blur=sigma, nearest (nearest-neighbour resampling: no blur, for digits);
for gray digits: recolor[=p_invert] (random colours), with gray=p (keep a fraction gray) and
texture=amp (textured, noisy backgrounds); other hands' digits: stroke=p (gray digits:
a thicker or thinner pen), slant=k (shear up to k), elastic=px (smooth wobble of up to px
pixels), lowres=p (shrink and scale back up)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one dataset; writes metrics, curves and a checkpoint",
        description="Train one model. Settings come from --config (TOML) and flags; flags win.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        help="TOML file with any of the settings below, or a run folder (its config.json)",
    )
    add_setting_flags(p)
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder argument, repeatable, e.g. --model-arg batch_norm=true",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/<model>-<dataset>-s<seed>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with the settings it was "
        "started with (flags given too must agree with them)",
    )
    p.add_argument(
        "--allow-device-change",
        action="store_true",
        help="with --resume: go on although this machine resolves --device/--precision auto "
        "differently from the run's start (e.g. CPU then GPU); its numbers will then differ "
        "from an uninterrupted run's",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.config.files import load_config_file
    from cnnlab.config.schema import flag_of, make_config
    from cnnlab.data.datasets import DataCache
    from cnnlab.errors import ConfigError
    from cnnlab.evaluation.precision import resolve_precision
    from cnnlab.models.registry import resolve_model
    from cnnlab.records import ARTIFACTS
    from cnnlab.training.reporting import make_reporter
    from cnnlab.training.run import default_run_folder, finished_summary, train_run

    overrides = setting_overrides(args)
    config = args.config
    if args.resume and config is None:
        if args.out is None:
            raise ConfigError("--resume needs --out DIR: the folder of the run to continue")
        if not (args.out / ARTIFACTS["config"]).is_file():
            raise ConfigError(
                f"--resume: {args.out} holds no run to continue (no {ARTIFACTS['config']}); "
                "check --out, or start it without --resume"
            )
        config = args.out  # its settings; flags given too must agree (checked on resume)
    cfg = (
        load_config_file(config, overrides, label=flag_of)
        if config
        else make_config(overrides, "flags", label=flag_of)
    )
    # Everything that can be refused is checked before the first line is printed, and
    # before any data is read: the model, and the device (--device cuda without a GPU).
    resolve_model(cfg.model, cfg.model_args)
    resolve_precision(cfg.precision, cfg.device)
    out = output_folder(Path(args.out or default_run_folder(cfg)))
    if args.resume and (done := finished_summary(cfg, out, args.allow_device_change)):
        console.print(
            f"already finished: test accuracy {100 * done.final.test_acc:.2f}% after "
            f"{counted(done.epochs, 'epoch')}; nothing to do (results in {out})",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    with console.status(f"loading {cfg.dataset}..."):  # a spinner on a terminal only
        data = DataCache().dataset(cfg.dataset_ref, cfg.data_dir)
    if not args.quiet:
        console.print(
            escape(
                f"training {cfg.model} on {cfg.dataset} for {counted(cfg.epochs, 'epoch')} -> {out}"
            )
        )
    record = train_run(
        cfg,
        out,
        data=data,
        resume=args.resume,
        reporter=make_reporter(args.quiet, console),
        allow_device_change=args.allow_device_change,
    )
    summary, final = record.summary, record.summary.final
    console.print(
        f"done: test accuracy {100 * final.test_acc:.2f}% (loss {final.test_loss:.4f}) after "
        f"{counted(summary.epochs, 'epoch')}, {summary.train_seconds:.1f}s training, "
        f"{summary.params:,} parameters, {summary.precision}; results in {out}"
    )
    return 0
