"""The `cnnlab` command line: argument parsing and dispatch, nothing else.

Every command turns a CnnlabError into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cnnlab import __version__
from cnnlab.errors import CnnlabError

console = Console()
err_console = Console(stderr=True)

EPILOG = """\
examples:
  cnnlab data list                         which datasets are available, and where
  cnnlab data show fashion-mnist           class counts and a PNG grid of samples
  cnnlab data show folder:photos.tar.gz    any image folder or .tar(.gz) of one
  cnnlab models list                       the built-in models
  cnnlab models show lenet5 --input 1x32x32
  cnnlab run studies/quick-fashion.toml    a study: variants x seeds, resumable, then a report
  cnnlab predict runs/x/checkpoint.pt photos/   top-3 labels for every image in a folder
  cnnlab export runs/x/checkpoint.pt model.onnx  ONNX (or --format torchscript), checked

Datasets are looked for in --data-dir (or $CNNLAB_DATA), laid out as
<data dir>/<name>/<canonical files>, e.g. <data dir>/mnist/train-images-idx3-ubyte.gz.
"""


DATASET_HELP = (
    "mnist, fashion-mnist, cifar10, cifar100, svhn, "
    "digits-wild[:size=28,mnist=W,printed=W,svhn=W] or folder:PATH"
)


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding <name>/<canonical files> (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download a missing built-in dataset with torchvision (needs a network)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Train and compare small image classifiers, with evidence: "
        "repeated seeds, error bars and significance tests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="list datasets, show class counts and sample images")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dl = data_sub.add_parser(
        "list", help="each built-in dataset, whether it is available and where"
    )
    _add_data_dir(dl)
    dl.set_defaults(func=cmd_data_list)
    ds = data_sub.add_parser(
        "show",
        help="class counts per split and a PNG grid of sample images",
        description="Load a dataset, print its counts per class and save a grid of samples.",
    )
    ds.add_argument("name", help=DATASET_HELP)
    ds.add_argument(
        "--out", type=Path, default=None, help="PNG to write (default: <name>-samples.png)"
    )
    ds.add_argument("--per-class", type=int, default=8, help="sample images per class (default 8)")
    _add_data_dir(ds)
    ds.set_defaults(func=cmd_data_show)

    models = sub.add_parser("models", help="list built-in models, show a per-layer summary")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = models_sub.add_parser("list", help="the built-in model names")
    ml.set_defaults(func=cmd_models_list)
    ms = models_sub.add_parser(
        "show",
        help="per-layer table: output shapes, parameters, multiply-accumulates",
    )
    ms.add_argument("model", help="a built-in name or a model .toml file")
    ms.add_argument("--input", default="3x32x32", help="input shape CxHxW (default 3x32x32)")
    ms.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    ms.set_defaults(func=cmd_models_show)

    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_analysis_parsers(sub)
    _add_run_parser(sub)  # `cnnlab run` (study runner), defined below
    _add_predict_parser(sub)  # `cnnlab predict`, defined below
    _add_export_parser(sub)  # `cnnlab export`, defined below
    return parser


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


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
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


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, accuracy, per-class accuracy and a confusion matrix for a checkpoint",
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument("--dataset", help="dataset to test on (default: the one it was trained on)")
    p.add_argument("--data-dir", type=Path, default=None, help="default $CNNLAB_DATA")
    p.add_argument("--out", type=Path, help="confusion matrix PNG (default: beside the checkpoint)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)


def cmd_data_list(args: argparse.Namespace) -> int:
    from cnnlab.data.sources import SOURCES, default_data_dir, locate

    data_dir = args.data_dir or default_data_dir()
    table = Table(title=f"datasets (data dir: {data_dir})")
    table.add_column("name")
    table.add_column("available")
    table.add_column("where / expected")
    table.add_column("what")
    for name, source in SOURCES.items():
        found, _ = locate(name, data_dir)
        if found is None:
            # A composite (digits-wild) has no folder of its own: it names its parts.
            where = (
                f"{data_dir / name}/: {source.expected}" if source.subdirs[0] else source.expected
            )
            table.add_row(name, "[red]no[/red]", where, source.description)
        else:
            table.add_row(name, "[green]yes[/green]", str(found.location), source.description)
    table.add_row(
        "folder:PATH", "-", "PATH/<class>/*.png|jpg, or a .tar/.tar.gz of it", "your own images"
    )
    console.print(table)
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from cnnlab.data.preview import class_counts, save_sample_grid
    from cnnlab.data.sources import load_dataset

    with console.status(f"loading {args.name}..."):
        data = load_dataset(args.name, args.data_dir, download=args.download)
    c, h, w = data.shape
    table = Table(
        title=f"{data.name}: {len(data.train)} train / {len(data.test)} test, {c}x{h}x{w}"
    )
    table.add_column("class")
    table.add_column("name")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for i, (name, n_train, n_test) in enumerate(class_counts(data)):
        table.add_row(str(i), name, str(n_train), str(n_test))
    console.print(table)
    console.print(f"source: {data.source}")
    safe = data.name.replace("/", "_").replace(":", "_")
    out = args.out or Path(f"{safe}-samples.png")
    save_sample_grid(data, out, per_class=args.per_class)
    console.print(f"sample grid: {out}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from cnnlab.models.registry import list_models

    table = Table(title="built-in models (or pass a model .toml file)")
    table.add_column("name")
    table.add_column("description")
    for name, description in list_models():
        table.add_row(name, description)
    console.print(table)
    return 0


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise CnnlabError(f"--input '{text}' is not a shape; write CxHxW, e.g. 1x28x28 or 3x32x32")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def cmd_models_show(args: argparse.Namespace) -> int:
    from cnnlab.models.registry import build_model, render_summary, resolve_model, summarize

    shape = parse_shape(args.input)
    spec = resolve_model(args.model)
    model = build_model(spec, shape, args.classes)
    console.print(render_summary(summarize(model, shape)))
    return 0


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
    from cnnlab.train.config import load_config_file, make_config
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
    summary = train(cfg, out, resume=args.resume, reporter=make_reporter(args.quiet, console))
    final = summary["final"]
    console.print(
        f"done: test accuracy {100 * final['test_acc']:.2f}% (loss {final['test_loss']:.4f}) after "
        f"{summary['epochs']} epochs, {summary['train_seconds']:.1f}s training, "
        f"{summary['params']:,} parameters, {summary['precision']}; results in {out}"
    )
    return 0


def _accuracy_table(title: str, what: str, rows: Sequence[tuple[str, float, int]]) -> Table:
    table = Table(title=title)
    table.add_column(what)
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    for name, acc, count in rows:
        table.add_row(name, f"{100 * acc:.2f}%", str(count))
    return table


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.train.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint, args.dataset, args.data_dir, args.out, args.device
    )
    title = f"{report.dataset}: accuracy {100 * report.accuracy:.2f}%, loss {report.loss:.4f}"
    console.print(_accuracy_table(title, "class", report.per_class))
    if report.per_domain:
        console.print(_accuracy_table("accuracy per domain", "domain", report.per_domain))
    console.print(f"confusion matrix: {report.confusion_png}")
    return 0


# --- analysis: `cnnlab report` and `cnnlab compare` (begin) -------------------------------

REPORT_EPILOG = """\
examples:
  cnnlab report studies/out/bn-vs-plain             writes report.html, report.md, report.json
  cnnlab report studies/out/bn-vs-plain --format json > numbers.json   numbers only, no files
  cnnlab compare studies/out/cpu studies/out/gpu    same-named variants of two studies

A variant is called better or worse than the baseline only when Welch's t-test,
Holm-adjusted over all the variants, gives p < 0.05; otherwise "within noise".
"""


def _add_analysis_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="statistics, figures and a report (HTML, Markdown, JSON) of a study's runs",
        description="Analyse a study: mean ± CI per variant, Welch tests against the baseline "
        "with Holm's correction, curves, confusion matrix and sample predictions.",
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study_dir", type=Path, metavar="DIR", help="a study's output folder")
    p.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: DIR)"
    )
    p.add_argument(
        "--format",
        choices=["html", "md", "json"],
        default=None,
        help="print this form to stdout: json prints the numbers and writes nothing; "
        "html/md write the report and print that file (default: write it, print a table)",
    )
    p.add_argument(
        "--no-predictions",
        action="store_true",
        help="skip loading the best checkpoint (no confusion matrix or image grids)",
    )
    p.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="the variants of two studies side by side, with Welch tests between same names",
    )
    c.add_argument("study_a", type=Path, metavar="DIR_A")
    c.add_argument("study_b", type=Path, metavar="DIR_B")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=cmd_compare)


def _verdict_markup(verdict: str) -> str:
    color = {"better": "green", "worse": "red", "higher in B": "green", "lower in B": "red"}.get(
        verdict, "dim" if verdict == "within noise" else "yellow"
    )
    return f"[{color}]{verdict}[/{color}]"


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.analysis.report import analyze, display_rows, to_json, write_report
    from cnnlab.study.store import load_results

    results = load_results(args.study_dir)
    if args.format == "json":
        sys.stdout.write(to_json(analyze(results)))
        return 0
    out = args.out or args.study_dir
    if args.format is None:
        with console.status("writing the report..."):
            paths = write_report(results, out, predictions=not args.no_predictions)
    else:
        paths = write_report(results, out, predictions=not args.no_predictions)
        sys.stdout.write(paths[0 if args.format == "html" else 1].read_text())
        return 0
    analysis = analyze(results)
    table = Table(title=f"{results.name} on {results.dataset}: final test accuracy")
    for label in ("variant", "runs", "mean ± std", "95% CI", "Δ vs baseline [CI]", "p (Holm)"):
        table.add_column(label, justify="left" if label == "variant" else "right")
    table.add_column("verdict")
    for row in display_rows(analysis):
        table.add_row(
            row["variant"],
            row["runs"],
            row["acc"],
            row["ci"],
            row["diff"],
            row["p_holm"],
            _verdict_markup(row["verdict"]),
        )
    console.print(table)
    for sentence in analysis["summary"]:
        console.print(f"- {sentence}", highlight=False)
    for warning in analysis["warnings"]:
        console.print(f"[yellow]! {warning}[/yellow]", highlight=False)
    console.print(f"report: {paths[0]}  (also {paths[1].name}, {paths[2].name})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from cnnlab.analysis.compare import compare_studies
    from cnnlab.analysis.report import fmt_p, fmt_pct, fmt_pts
    from cnnlab.study.store import load_results

    a, b = load_results(args.study_a), load_results(args.study_b)
    result = compare_studies(a, b)
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
        return 0

    def cell(d: dict | None) -> str:
        if d is None or d["mean"] is None:
            return "—"
        text = fmt_pct(d["mean"])
        if d["ci_low"] is not None:
            text += f" [{fmt_pct(d['ci_low'])}, {fmt_pct(d['ci_high'])}]"
        return f"{text} (n={d['n']})"

    table = Table(title=f"final test accuracy: A = {a.name}, B = {b.name} (mean [95% CI])")
    for label in ("variant", "A", "B", "B − A, points [CI]", "p (Welch)", "p (Holm)"):
        table.add_column(label, justify="left" if label == "variant" else "right")
    table.add_column("verdict")
    for row in result["variants"]:
        t = row["b_minus_a"]
        diff = p = p_holm = verdict = "—"
        if t is not None:
            verdict = _verdict_markup(t["verdict"])
            if t.get("diff") is not None:
                diff = f"{fmt_pts(t['diff'])} [{fmt_pts(t['ci_low'])}, {fmt_pts(t['ci_high'])}]"
                p, p_holm = fmt_p(t["p"]), fmt_p(t["p_holm"])
        table.add_row(row["variant"], cell(row["a"]), cell(row["b"]), diff, p, p_holm, verdict)
    console.print(table)
    return 0


# --- analysis: `cnnlab report` and `cnnlab compare` (end) ---------------------------------


# --- `cnnlab run`: the study runner (cnnlab.study) (begin) -----------------------------------

RUN_EPILOG = """\
examples:
  cnnlab run studies/quick-fashion.toml          every variant x seed; results in runs/<name>
  cnnlab run studies/seed004-cifar10-17.toml --epochs-scale 0.1 --seeds 0,1
  cnnlab run studies/cifar10-fast.toml --variants fast   one variant of the study
  cnnlab run study.toml --dataset folder:data/cifar10-jpeg.tar.gz --data-dir ~/data
  cnnlab run study.toml --retry-failed           run the failed runs again too

Rerun the same command to continue: done runs are skipped, interrupted ones resume
from their last finished epoch. Changing a setting in the study file makes new runs
(the old results stay stored; the report shows the study file as it is now).
Results: <out>/study.sqlite; each run's files: <out>/runs/<variant>-s<seed>-<id>/.
"""


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a study (variants x seeds from a TOML file), resumably, then report",
        description="Run every variant of a study file with every seed, store the results "
        "in <out>/study.sqlite and write the report.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", type=Path, help="the study file (.toml)")
    p.add_argument("--out", type=Path, help="study folder (default runs/<study name>)")
    p.add_argument(
        "--epochs-scale",
        type=float,
        metavar="FACTOR",
        help="multiply every run's epochs (rounded, at least 1), e.g. 0.2 for a quick look",
    )
    p.add_argument("--seeds", metavar="LIST", help="replace the study's seeds, e.g. 0,1")
    p.add_argument(
        "--variants",
        metavar="NAMES",
        help="run only these variants, comma-separated, e.g. fast (the baseline stays the "
        "study's if chosen, else the first one named)",
    )
    p.add_argument("--dataset", help="replace the study's dataset, e.g. folder:cifar10-jpeg.tar.gz")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding <name>/<canonical files> (default $CNNLAB_DATA)",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.set_defaults(func=cmd_run)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CnnlabError(f"--seeds '{text}' is not a list of integers; write e.g. 0,1,2") from None
    if not seeds:
        raise CnnlabError("--seeds is empty; write e.g. 0,1,2")
    return seeds


def cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.study.progress import make_study_progress
    from cnnlab.study.runner import default_out_dir, run_study, summary_table
    from cnnlab.study.spec import load_study

    study = load_study(
        args.study,
        dataset=args.dataset,
        seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
        epochs_scale=args.epochs_scale,
        data_dir=args.data_dir,
        variants=[v.strip() for v in args.variants.split(",") if v.strip()]
        if args.variants is not None
        else None,
    )
    out = Path(args.out or default_out_dir(study))
    if not args.quiet:
        console.print(
            f"study {study.name}: {len(study.variants)} variants x {len(study.seeds)} seeds "
            f"on {study.dataset} -> {out}",
            highlight=False,
            soft_wrap=True,
        )
    outcome = run_study(
        study,
        out,
        retry_failed=args.retry_failed,
        progress=make_study_progress(args.quiet, console),
    )
    skipped = []
    if outcome.skipped_done:
        skipped.append(f"{len(outcome.skipped_done)} done before")
    if outcome.skipped_failed:
        skipped.append(f"{len(outcome.skipped_failed)} failed before (--retry-failed reruns them)")
    console.print(
        f"{len(outcome.executed)} runs trained now"
        + (f"; skipped {', '.join(skipped)}" if skipped else ""),
        highlight=False,
        soft_wrap=True,
    )
    results = outcome.results
    console.print(summary_table(results))
    for r in results.runs:
        if r.status == "failed":
            console.print(
                f"failed: {r.variant} seed {r.seed}: {r.error}", highlight=False, soft_wrap=True
            )
    if not args.no_report:
        try:
            from cnnlab.analysis.report import write_report
        except ImportError as exc:
            console.print(
                f"report: not written (cnnlab.analysis.report unavailable: {exc})",
                highlight=False,
                soft_wrap=True,
            )
        else:
            paths = write_report(results, out)
            console.print(f"report: {paths[0] if paths else '-'}", highlight=False, soft_wrap=True)
    console.print(f"results: {out / 'study.sqlite'}", highlight=False, soft_wrap=True)
    return 0


# --- `cnnlab run`: the study runner (end) ------------------------------------------------------


# --- `cnnlab predict`: top-k labels for image files (cnnlab.inference) (begin) -------------

PREDICT_EPILOG = """\
examples:
  cnnlab predict runs/lenet5/checkpoint.pt digit.png          top 3 labels with probabilities
  cnnlab predict runs/lenet5/checkpoint.pt photos/ scan.jpg   folders are searched recursively
  cnnlab predict ckpt.pt photos/ --json > predictions.jsonl   one JSON object per file
  cnnlab predict ckpt.pt chalkboard.jpg --invert no --top-k 1

Any PNG, JPEG, BMP, GIF (first frame) or WebP, of any size and colour mode, is turned
upright by its EXIF orientation, made opaque on white, scaled to fit the model's input
keeping its aspect ratio, padded, and converted to the model's channels (gray <-> RGB).
For gray (MNIST-like) models the picture is also made to look like the training data:
a light figure on black, background at 0 and strokes at full white; --invert auto
inverts dark-on-light pictures (ink on paper), yes and no force it (colour models
are inverted only with yes).
More than 1,000 files are listed as tab-separated lines instead of a table.
--json prints per file {"file": ..., "top": [{"label": "7", "probability": 0.98}, ...],
"inverted": true}, or {"file": ..., "error": "..."} for a file that could not be read.
Exit status: 0 all files predicted, 1 some could not be read (each named on stderr),
2 a usage problem (e.g. no such checkpoint).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; use 1 or more")
    return value


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k labels with probabilities for image files or folders of them",
        description="Classify image files with a trained checkpoint.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER", help="image files or folders"
    )
    p.add_argument(
        "--top-k", type=_positive_int, default=3, metavar="K", help="labels per image (default 3)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per file")
    p.add_argument(
        "--invert",
        choices=["auto", "yes", "no"],
        default="auto",
        help="gray models: make dark-on-light pictures light-on-dark like MNIST (default auto)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=256, help="images per batch (default 256)"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_predict)


TABLE_ROWS = 1000


def cmd_predict(args: argparse.Namespace) -> int:
    import json
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from cnnlab.inference.predict import Prediction, find_images, predict_files
    from cnnlab.train.checkpoint import load_checkpoint

    # Pillow warns about blemishes it reads past (corrupt EXIF, palette transparency):
    # thousands of files would bury the one line per unreadable file that matters.
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    ckpt = load_checkpoint(args.checkpoint)
    files = find_images(args.images)
    show_bar = not args.json and console.is_terminal
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show_bar,
    )
    task = progress.add_task("predicting", total=len(files))
    # Rich lays a table out at about 1 ms a row: fine for a screenful, 10 s for 10,000
    # files. Past TABLE_ROWS the rows stream out as they are predicted instead, as
    # tab-separated lines (file, then "label probability%" per rank).
    as_table = not args.json and len(files) <= TABLE_ROWS
    done: list[Prediction] = []
    failed = 0
    with progress:
        for pred in predict_files(
            ckpt,
            files,
            top_k=args.top_k,
            invert=args.invert,
            batch_size=args.batch_size,
            device=args.device,
            on_batch=lambda n: progress.advance(task, n),
        ):
            if pred.error is not None:
                failed += 1
                err_console.print(f"cnnlab: {pred.error}", highlight=False, soft_wrap=True)
            if args.json:
                sys.stdout.write(json.dumps(pred.to_json()) + "\n")
            elif pred.error is not None:
                continue
            elif as_table:
                done.append(pred)
            else:
                cells = (f"{label} {100 * p:.1f}%" for label, p in pred.top)
                sys.stdout.write("\t".join((str(pred.path), *cells)) + "\n")
    if done:
        k = len(done[0].top)
        table = Table(
            title=f"{ckpt.model_spec.get('name', 'model')}: top {k} of {len(ckpt.classes)}"
        )
        table.add_column("file", overflow="fold")
        for rank in range(1, k + 1):
            table.add_column(f"#{rank}", justify="right")
        for pred in done:
            cells = [f"{label} [dim]{100 * p:5.1f}%[/dim]" for label, p in pred.top]
            table.add_row(str(pred.path), *cells)
        console.print(table)
    if failed:
        err_console.print(
            f"cnnlab: {failed} of {len(files)} files could not be read", highlight=False
        )
        return 1
    return 0


# --- `cnnlab predict` (end) -------------------------------------------------------------------


# --- `cnnlab export`: ONNX / TorchScript with preprocessing metadata (begin) ------------------

EXPORT_EPILOG = """\
examples:
  cnnlab export runs/lenet5/checkpoint.pt --format onnx lenet5.onnx
  cnnlab export runs/lenet5/checkpoint.pt lenet5.pt      format from the suffix (.onnx, .pt, .ts)
  python -c "import onnxruntime as ort; s = ort.InferenceSession('lenet5.onnx'); \\
      print(s.get_modelmeta().custom_metadata_map['cnnlab'])"     the metadata

The exported model takes float32 NCHW images in [0, 1] (gray, or RGB in that order):
the checkpoint's normalisation is inside the graph, so do not normalise again. It
returns logits; the batch size is free. Classes, input shape, mean/std and the
preprocessing travel in the file (ONNX metadata_props["cnnlab"], TorchScript extra
file cnnlab.json). Before OUT is written, the export is loaded back (onnxruntime,
torch.jit.load) and must match PyTorch's fp32 logits within 1e-4 on test images of
the checkpoint's dataset (random images when it cannot be found); otherwise the
command fails with the measured difference and writes nothing. ONNX needs
pip install -e '.[export]'; TorchScript (torch.jit) is deprecated upstream, so prefer
ONNX unless the consumer is libtorch.
"""


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as ONNX or TorchScript, checked against PyTorch",
        description="Export a checkpoint's model with its preprocessing metadata, then load "
        "the export back and check that it computes what PyTorch does.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument("out", type=Path, metavar="OUT", help="the file to write")
    p.add_argument(
        "--format",
        choices=["onnx", "torchscript"],
        default=None,
        help="default: from OUT's suffix (.onnx; .pt or .ts for TorchScript)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the checkpoint's dataset is, for the check (default $CNNLAB_DATA)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.inference.export import ExportCheckError, export_checkpoint

    try:
        with console.status(f"exporting {args.checkpoint} ..."):
            result = export_checkpoint(args.checkpoint, args.out, args.format, args.data_dir)
    except ExportCheckError as exc:
        # Not a usage problem (status 2): the export itself is wrong.
        err_console.print(
            f"[bold red]cnnlab: error:[/bold red] {exc}", highlight=False, soft_wrap=True
        )
        return 1
    meta = result.metadata
    size = result.path.stat().st_size
    shape = "x".join(str(d) for d in meta["input"]["shape"])
    console.print(
        f"wrote {result.path} ({result.format}, {size / 1024:,.0f} KiB): input "
        f"'{meta['input']['name']}' float32 {shape} in [0, 1], normalisation inside; output "
        f"'{meta['output']['name']}' {len(meta['classes'])} logits",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"checked on {result.checked_on}: max |export - PyTorch| = {result.max_abs_diff:.2e} "
        f"(tolerance {result.tolerance:.0e})",
        highlight=False,
        soft_wrap=True,
    )
    return 0


# --- `cnnlab export` (end) --------------------------------------------------------------------


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except CnnlabError as exc:
        err_console.print(
            f"[bold red]cnnlab: error:[/bold red] {exc}", highlight=False, soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        err_console.print("cnnlab: interrupted")
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
