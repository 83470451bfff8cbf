"""One GPU check: everything a GPU machine should confirm about cnnlab, in one table.

On a machine with a CUDA GPU and this source tree (the torch already installed there is
used; cnnlab runs from ``src/`` without an install), in at most ``--budget`` seconds
(default 480): the device and its compute capability; the CUDA-only tests
(``pytest -m cuda``); the CIFAR-10 fast recipe (studies/cifar10-fast.toml, seed 0, its
short and its longer variant) with accuracy and seconds; ``benchmarks/all.py --quick``;
8 LeNet-5 runs packed on the GPU by the default local pool (``--workers 8``) and, when
Ray is installed, by Ray (``--gpus-per-run 0.125``), each against the same runs one at a
time (``--workers 1``). Each part runs as its own process with what is
left of the budget, so one that fails or overruns becomes a row saying so.

``--dry-run`` does the same on this CPU at small sizes (one recipe variant for 1 epoch,
2 packed runs without the one-at-a-time baseline, one benchmark), so the script is
exercised by the test suite and cannot rot:

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --device cpu --data-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKED_RUNS = 8


@dataclass
class Row:
    check: str
    result: str
    seconds: float = 0.0
    ok: bool = True


@dataclass
class Plan:
    device: str
    dry: bool
    data_dir: Path | None
    deadline: float
    work: Path

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), CNNLAB_HEARTBEAT_SECONDS="3600")
        if self.data_dir is not None:
            env["CNNLAB_DATA"] = str(self.data_dir)
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        return env

    def call(self, argv: list[str], cap: float) -> tuple[int | None, str, float]:
        """(exit status or None when it ran out of time, its output, seconds)."""
        limit = max(1.0, min(cap, self.left()))
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=limit
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            return None, out or "", time.monotonic() - started
        return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def cnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *args]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "(no output)"


def device_row(plan: Plan) -> Row:
    import torch

    from cnnlab.evaluation.precision import resolve_precision

    if plan.device == "cpu":
        auto = resolve_precision("auto", "cpu").label
        return Row("device", f"cpu (dry run), torch {torch.__version__}, auto = {auto}")
    if not torch.cuda.is_available():
        return Row("device", f"no CUDA GPU visible to torch {torch.__version__}", ok=False)
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    auto = resolve_precision("auto", "cuda").label
    return Row(
        "device",
        f"{torch.cuda.get_device_name(index)}, capability {major}.{minor}, "
        f"{torch.cuda.device_count()} GPU(s), torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, auto = {auto}",
    )


def tests_row(plan: Plan) -> Row:
    # The dry run collects only the CUDA tests' own file (collecting every test module
    # imports everything: half a minute on a small CPU).
    where = ["tests/test_cuda.py"] if plan.dry else ["tests"]
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *where]
    code, out, seconds = plan.call(argv, 150)
    counts = re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", out)
    summary = ", ".join(f"{n} {kind}" for n, kind in counts if kind != "deselected")
    if code is None:
        return Row("CUDA-only tests", f"ran out of time; {summary}", seconds, ok=False)
    if "No module named pytest" in out:
        return Row("CUDA-only tests", "needs pytest (pip install pytest)", seconds, ok=False)
    return Row("CUDA-only tests", summary or last_line(out), seconds, ok=code == 0)


def recipe_rows(plan: Plan) -> list[Row]:
    out_dir = plan.work / "cifar10-fast"
    argv = cnnlab(
        "run", "studies/cifar10-fast.toml", "--seeds", "0", "--out", str(out_dir),
        "--quiet", "--no-report",
    )  # fmt: skip
    if plan.dry:  # one variant, one epoch: the same code as both at full length
        argv += ["--epochs-scale", "0.01", "--variants", "fast"]
    code, out, seconds = plan.call(argv, 240)
    rows = []
    for summary_file in sorted(out_dir.glob("runs/*/summary.json")):
        summary = json.loads(summary_file.read_text())
        variant = summary_file.parent.name.rsplit("-s", 1)[0]
        final = summary["final"]
        rows.append(
            Row(
                f"CIFAR-10 fast recipe: {variant}",
                f"test accuracy {100 * final['test_acc']:.2f}% after {summary['epochs']} "
                f"epochs, {summary['precision']}, "
                f"{summary['images_per_s']:,.0f} img/s",
                float(summary["train_seconds"]),
            )
        )
    if code != 0 or not rows:
        why = "ran out of time" if code is None else f"exit {code}: {last_line(out)}"
        rows.append(Row("CIFAR-10 fast recipe", why, seconds, ok=False))
    return rows


def benchmark_rows(plan: Plan) -> list[Row]:
    report = plan.work / "benchmarks.json"
    argv = [sys.executable, "benchmarks/all.py", "--quick", "--device", plan.device]
    argv += ["--json", str(report)] + (["--only", "loader"] if plan.dry else [])
    if plan.data_dir is not None:
        argv += ["--data-dir", str(plan.data_dir)]
    code, out, seconds = plan.call(argv, 240)
    if code != 0 or not report.exists():
        why = "ran out of time" if code is None else f"exit {code}: {last_line(out)}"
        return [Row("benchmarks/all.py --quick", why, seconds, ok=False)]
    rows = []
    for r in json.loads(report.read_text())["results"]:
        ratio = "" if r["ratio"] is None else f", ratio {r['ratio']:.2f}"
        target = (
            ""
            if r["target"] is None
            else f" (target {r['target']}: {'met' if r['met'] else 'NOT met'})"
        )
        ours = "" if r["ours"] is None else f"{r['ours']:,.1f} {r['unit']}"
        result = f"{ours}{ratio}{target}" + (f"; {r['note']}" if r["note"] else "")
        rows.append(
            Row(
                f"bench {r['benchmark']}: {r['case']}", result.strip("; "), ok=r["met"] is not False
            )
        )
    rows[-1].seconds = seconds
    return rows


PACK_STUDY = """[study]
name = "gpu-packing"
description = "LeNet-5 runs packed on one GPU vs one at a time"
dataset = "mnist"
seeds = {seeds}
[defaults]
model = "lenet5"
epochs = 1
batch_size = 128
optimizer = {{ name = "adam", lr = 1e-3 }}
[[variant]]
name = "lenet5"
"""


def packing_rows(plan: Plan) -> list[Row]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return [Row("Ray packing", "skipped: Ray is not installed (pip install 'cnnlab[ray]')")]
    runs = 2 if plan.dry else PACKED_RUNS
    study = plan.work / "packing.toml"
    study.write_text(PACK_STUDY.format(seeds=list(range(runs))))
    common = ["run", str(study), "--quiet", "--no-report"]
    gpus = "0" if plan.device == "cpu" else f"{1 / runs:g}"
    ray_flags = ["--executor", "ray", "--workers", str(runs), "--gpus-per-run", gpus]
    code_2, out_2, packed = plan.call(
        cnnlab(*common, "--out", str(plan.work / "packed"), *ray_flags), 150
    )
    if plan.dry:  # the baseline is a plain `cnnlab run`, which the test suite runs often
        ok = code_2 == 0
        result = f"{packed:.1f} s packed (dry run: no one-at-a-time baseline)"
        check = f"Ray packing: {runs} LeNet-5 runs, --gpus-per-run {gpus}"
        return [Row(check, result if ok else f"failed: {last_line(out_2)}", packed, ok=ok)]
    one_at_a_time = cnnlab(*common, "--out", str(plan.work / "seq"), "--workers", "1")
    code_1, out_1, one_by_one = plan.call(one_at_a_time, 150)
    if code_1 != 0 or code_2 != 0:
        bad = out_1 if code_1 != 0 else out_2
        return [Row("Ray packing", f"failed: {last_line(bad)}", one_by_one + packed, ok=False)]
    return [
        Row(
            f"Ray packing: {runs} LeNet-5 runs, --gpus-per-run {gpus}",
            f"{one_by_one:.1f} s one at a time vs {packed:.1f} s packed: "
            f"{one_by_one / packed:.2f}x (Ray start-up included)",
            packed,
        )
    ]


def local_packing_rows(plan: Plan) -> list[Row]:
    """The default executor's GPU path: N local worker processes sharing the GPU (worker i
    sees GPU i % count), against the same runs one at a time in one process."""
    runs = 2 if plan.dry else PACKED_RUNS
    study = plan.work / "local-packing.toml"
    study.write_text(PACK_STUDY.format(seeds=list(range(runs))))
    common = ["run", str(study), "--quiet", "--no-report"]
    check = f"local pool packing: {runs} LeNet-5 runs, --workers {runs}"
    pool = cnnlab(*common, "--out", str(plan.work / "pool"), "--workers", str(runs))
    code_2, out_2, packed = plan.call(pool, 150)
    if code_2 != 0:
        return [Row(check, f"failed: {last_line(out_2)}", packed, ok=False)]
    if plan.dry:
        return [Row(check, f"{packed:.1f} s packed (dry run: no one-at-a-time baseline)", packed)]
    one_at_a_time = cnnlab(*common, "--out", str(plan.work / "pool-seq"), "--workers", "1")
    code_1, out_1, one_by_one = plan.call(one_at_a_time, 150)
    if code_1 != 0:
        return [Row(check, f"failed: {last_line(out_1)}", one_by_one + packed, ok=False)]
    result = (
        f"{one_by_one:.1f} s one at a time vs {packed:.1f} s packed: "
        f"{one_by_one / packed:.2f}x (start-up included)"
    )
    return [Row(check, result, packed)]


def table(rows: list[Row], title: str) -> str:
    lines = [f"### {title}", "", "| check | result | seconds |", "|---|---|---:|"]
    for r in rows:
        mark = "" if r.ok else "**FAILED** "
        lines.append(f"| {r.check} | {mark}{r.result.replace('|', '/')} | {r.seconds:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dry-run", action="store_true", help="small sizes (for the test suite)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default $CNNLAB_DATA")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cnnlab-gpu-check-") as work:
        plan = Plan(args.device, args.dry_run, args.data_dir, started + args.budget, Path(work))
        rows = [device_row(plan)]
        for part in (tests_row, recipe_rows, benchmark_rows, local_packing_rows, packing_rows):
            if plan.left() < 5:
                rows.append(
                    Row(part.__name__.removesuffix("_rows"), "skipped: budget spent", ok=False)
                )
                continue
            print(
                f"gpu_check: {part.__name__.removesuffix('_rows').removesuffix('_row')}...",
                flush=True,
            )
            found = part(plan)
            rows += found if isinstance(found, list) else [found]
    when = time.strftime("%Y-%m-%d")
    title = f"cnnlab GPU check, {when}{' (dry run)' if args.dry_run else ''}: {rows[0].result.split(',')[0]}"
    print(table(rows, title))
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
