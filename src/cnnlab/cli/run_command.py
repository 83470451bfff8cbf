"""`cnnlab run`: a study file, every variant x seed, resumably, then its report."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from cnnlab.cli.common import console, err_console, output_folder, positive_int
from cnnlab.cli.verdict_view import print_verdicts
from cnnlab.errors import CnnlabError
from cnnlab.stats.formatting import counted

if TYPE_CHECKING:
    from cnnlab.study.plan.study_plan import Study
    from cnnlab.study.run.executor import Executor
    from cnnlab.study.run.executor_choice import ExecutorChoice

DEFAULT_MAX = 12  # the seed_design default, said here without importing the study package

RUN_EPILOG = """\
examples:
  cnnlab run studies/quick-fashion.toml          every variant x seed; results in runs/<name>
  cnnlab run studies/seed004-cifar10-17.toml --epochs-scale 0.1 --seeds 0,1
  cnnlab run studies/cifar10-fast.toml --variants fast   one variant of the study
  cnnlab run study.toml --dataset folder:data/cifar10-jpeg.tar.gz --data-dir ~/data
  cnnlab run study.toml --retry-failed           run the failed runs again too
  cnnlab run study.toml --until-decided          more seeds only where a claim is still open
  cnnlab run study.toml --dry-run                what is left, and how long it will take here
  cnnlab run study.toml --workers 1              one run after another, in this process
  cnnlab run study.toml --workers 4 --threads-per-run 2   4 runs at once, 2 threads each
  cnnlab run study.toml --executor ray --address auto --gpus-per-run 0.25   on a Ray cluster

Rerun the same command to continue: done runs are skipped, interrupted ones resume
from their last finished epoch. Changing a setting in the study file makes new runs
(the old results stay stored; the report shows the study file as it is now).
Results: <out>/study.sqlite; each run's files: <out>/runs/<variant>-s<seed>-<id>/.
Exit status 1 when a run failed (the others are kept and reported), 2 on bad input.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        "--until-decided",
        action="store_true",
        help="seeds until decided: start with the study's seeds, then give more seeds, at "
        "looks fixed in advance (3, 5, 8, 12), to the variants of each claim or comparison "
        "not yet decided (as seeds = { start = 3, max = 12 } in [study]; docs/sequential.md)",
    )
    p.add_argument(
        "--max-seeds",
        type=positive_int,
        metavar="N",
        help=f"with --until-decided: at most N seeds a variant (default {DEFAULT_MAX})",
    )
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
    p.add_argument(
        "--allow-device-change",
        action="store_true",
        help="resume interrupted runs although this machine resolves device/precision auto "
        "differently from their start (e.g. begun on a CPU, continued on a GPU)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="write TensorBoard event files into every run folder (as tensorboard = true in "
        "[defaults]); then: tensorboard --logdir <out>",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="train nothing: list the variants x seeds, which are done, and the wall time "
        "the rest will take here (a few steps of each variant timed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    scale = p.add_argument_group(
        "using the whole machine, or a cluster",
        "Runs train side by side in worker processes on this machine by default: one "
        "one-thread run per core (small CNNs use a second thread poorly: two one-thread runs "
        "at once finish a study about 1.5x sooner than one two-thread run after another on "
        "2 cores, benchmarks/study_throughput.py), or two runs per GPU. A run's numbers "
        "depend only on its settings and its thread count, not on the executor or the "
        "number of workers. Ray (pip install -e '.[ray]') takes runs to several machines; "
        "its study folder must be on a filesystem every node mounts at the same path.",
    )
    scale.add_argument(
        "--executor",
        choices=["local", "inprocess", "ray"],
        help="local (the default; one worker then trains in this process): worker "
        "processes on this machine; inprocess: one run after another in this process; ray: "
        "Ray workers, here or on a cluster",
    )
    scale.add_argument(
        "--workers",
        type=workers_count,
        metavar="N|auto",
        help="runs at once (default auto, or $CNNLAB_WORKERS: one per core at one thread "
        "each, two per GPU; with ray: what the cluster holds); 1: one after another here",
    )
    scale.add_argument(
        "--threads-per-run",
        "--cpus-per-run",
        dest="threads_per_run",
        type=positive_int,
        metavar="K",
        help="torch threads of each run (default: 1 with several workers, all cores with "
        "--workers 1); a run's last digits depend on it",
    )
    scale.add_argument(
        "--address",
        help="ray: join this cluster (e.g. auto, or HOST:6379 of `ray start --head`); "
        "default: start a local instance for this command",
    )
    scale.add_argument(
        "--gpus-per-run",
        type=float,
        default=0.0,
        metavar="F",
        help="ray: GPUs of each run; a fraction packs several runs on one GPU, e.g. 0.25 "
        "(default 0: Ray then hides the GPUs and runs train on the CPU)",
    )
    p.set_defaults(func=cmd_run)


def workers_count(text: str) -> int | None:
    """``--workers``: a positive number, or auto (None)."""
    if text.strip().lower() == "auto":
        return None
    return positive_int(text)


def choice_from_flags(args: argparse.Namespace) -> ExecutorChoice:
    """What the flags ask for (see :mod:`cnnlab.study.run.executor_choice`)."""
    from cnnlab.study.run.executor_choice import ExecutorChoice

    return ExecutorChoice(
        kind=args.executor, workers=args.workers, threads_per_run=args.threads_per_run,
        allow_device_change=args.allow_device_change, address=args.address,
        gpus_per_run=args.gpus_per_run,
    )  # fmt: skip


def make_executor(args: argparse.Namespace, uses_gpu: bool) -> Executor:
    from cnnlab.study.run.executor_choice import choose_executor

    return choose_executor(choice_from_flags(args), uses_gpu)


def _early_session(executor: Executor) -> AbstractContextManager[None]:
    from cnnlab.study.run.local_executor import LocalExecutor

    return executor.session() if isinstance(executor, LocalExecutor) else nullcontext()


def _layout_text(executor: Executor) -> str:
    from cnnlab.study.run.local_executor import LocalExecutor

    return f" ({executor.layout.describe()})" if isinstance(executor, LocalExecutor) else ""


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CnnlabError(f"--seeds '{text}' is not a list of integers; write e.g. 0,1,2") from None
    if not seeds:
        raise CnnlabError("--seeds is empty; write e.g. 0,1,2")
    return seeds


def _until_decided(args: argparse.Namespace) -> int | None:
    if args.max_seeds is not None and not args.until_decided:
        raise CnnlabError("--max-seeds goes with --until-decided; add it, or drop --max-seeds")
    return (args.max_seeds or DEFAULT_MAX) if args.until_decided else None


def _looks_text(study: Study) -> str:
    if study.design is None:
        return ""
    looks = ", ".join(str(n) for n in study.design.looks)
    return f" (until decided: looks at {looks} seeds)"


def cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.study.plan.study_file import load_study
    from cnnlab.study.run.executor_choice import start_workers_early
    from cnnlab.study.run.runner import check_unlocked, default_out_dir, run_study
    from cnnlab.study.run.study_progress import make_study_progress
    from cnnlab.study.store.sqlite_schema import DB_NAME

    if not args.dry_run:
        start_workers_early(choice_from_flags(args))
    study = load_study(
        args.study,
        dataset=args.dataset,
        seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
        epochs_scale=args.epochs_scale,
        data_dir=args.data_dir,
        variants=[v.strip() for v in args.variants.split(",") if v.strip()]
        if args.variants is not None
        else None,
        until_decided=_until_decided(args),
    )
    if args.tensorboard:  # not part of a run's identity: the same runs, also logged
        study = study.with_tensorboard()
    out = output_folder(Path(args.out or default_out_dir(study)))
    check_unlocked(out)  # refused before the header is printed
    executor = make_executor(args, any(c.device != "cpu" for c in study.configs.values()))
    if args.dry_run:
        from cnnlab.cli.cost_view import print_cost

        return print_cost(study, out, executor)
    # A local pool's workers start first: they import torch and load the data while this
    # process checks the study (Ray starts only when there is something to run).
    with _early_session(executor):
        if not (out / DB_NAME).exists():
            # A new study: a missing dataset or a model that cannot take the images is
            # refused before anything is printed (run_study checks again, from the cache).
            executor.check(study.plan(out.absolute()))
        if not args.quiet:
            console.print(
                escape(
                    f"study {study.name}: {counted(len(study.variants), 'variant')} x "
                    f"{counted(len(study.seeds), 'seed')}{_looks_text(study)} "
                    f"on {study.dataset} -> {out}{_layout_text(executor)}"
                ),
                highlight=False,
                soft_wrap=True,
            )
        outcome = run_study(
            study,
            out,
            retry_failed=args.retry_failed,
            executor=executor,
            progress=make_study_progress(args.quiet, console),
        )
    statuses = {r.run_id: r.status for r in outcome.results.runs}
    trained = sum(statuses.get(i) == "done" for i in outcome.executed)
    failed_now = sum(statuses.get(i) == "failed" for i in outcome.executed)
    skipped = []
    if outcome.skipped_done:
        skipped.append(f"{len(outcome.skipped_done)} done before")
    if outcome.skipped_failed:
        skipped.append(f"{len(outcome.skipped_failed)} failed before (--retry-failed reruns them)")
    console.print(
        f"{counted(trained, 'run')} trained now"
        + (f", {failed_now} failed" if failed_now else "")
        + (f"; skipped {', '.join(skipped)}" if skipped else ""),
        highlight=False,
        soft_wrap=True,
    )
    results = outcome.results
    for r in results.runs:
        if r.status == "failed":
            console.print(
                escape(f"failed: {r.variant} seed {r.seed}: {r.error}"),
                highlight=False,
                soft_wrap=True,
            )
    from cnnlab.analysis.study_analysis import analyze

    print_verdicts(analyze(results))
    if not args.no_report:
        from cnnlab.analysis.render import write_report

        paths = write_report(results, out)
        console.print(f"report: {paths[0]}", highlight=False, soft_wrap=True)
    console.print(f"results: {out / 'study.sqlite'}", highlight=False, soft_wrap=True)
    if results.trials:
        return _search_status(
            results.trials, failed=sum(r.status == "failed" for r in results.runs)
        )
    failed = sum(r.status == "failed" for r in results.runs)
    if failed:
        err_console.print(
            f"cnnlab: {failed} of {len(results.runs)} runs failed (see above); "
            "fix the cause and rerun with --retry-failed",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


def _search_status(trials: list[dict], failed: int) -> int:
    """A failed trial is a finding of the search (a learning rate that diverges), not a
    failure of the study: said, exit 0. Exit 1 when no trial finished (there was nothing
    to confirm) or a confirmation run failed."""
    broken = [t for t in trials if t["state"] == "failed"]
    if broken:
        numbers = ", ".join(str(t["number"]) for t in broken[:10])
        err_console.print(
            f"cnnlab: {len(broken)} of {len(trials)} search trials failed (trial "
            f"{numbers}{', ...' if len(broken) > 10 else ''}); the search counted them and went on",
            highlight=False,
            soft_wrap=True,
        )
    if not any(t["state"] == "complete" for t in trials):
        err_console.print(
            "cnnlab: no search trial finished, so nothing was confirmed; look at the failed "
            "trials' errors above and narrow the [search.space]",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    if failed > len(broken):
        err_console.print(
            f"cnnlab: {failed - len(broken)} confirmation runs failed (see above); fix the "
            "cause and rerun with --retry-failed",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0
