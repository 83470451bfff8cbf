"""Studies: study files, expansion and run ids, the SQLite store, the executor and `cnnlab run`.

Training here is tiny (the conftest's 600-image MNIST, MLPs and LeNet-5, 1-3 epochs,
fp32 on the CPU so that results are bit-for-bit reproducible).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from fresh import run_cnnlab

from cnnlab.cli import main
from cnnlab.errors import CnnlabError, ConfigError, DataError
from cnnlab.records import EPOCH_COLUMNS, EpochRow, summarize_history
from cnnlab.study.progress import QuietStudyProgress
from cnnlab.study.runner import run_study, study_lock
from cnnlab.study.spec import load_study
from cnnlab.study.store import Store, load_results
from cnnlab.training.progress import QuietReporter

STUDIES = Path(__file__).resolve().parent.parent / "studies"
TINY_DEFAULTS = """
[defaults]
epochs = 1
batch_size = 50
eval_batch_size = 200
precision = "fp32"
device = "cpu"
optimizer = { name = "adam", lr = 1e-3 }
"""


def write_study(
    folder: Path, body: str, name: str = "study.toml", header: str | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = header or '[study]\nname = "tiny"\ndataset = "mnist"\nseeds = [0, 1]\n'
    path = folder / name
    path.write_text(header + textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, two torch threads that wait for each
    other make these tiny models tens of times slower. Subprocesses get OMP_NUM_THREADS=1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_curve_plots(monkeypatch):
    """In this process, train() skips curves.png (matplotlib costs ~1 s a run on a busy
    machine); the `cnnlab run` subprocesses still write it (checked end to end)."""
    import cnnlab.plots

    monkeypatch.setattr(cnnlab.plots, "plot_run_curves", lambda *args, **kwargs: None)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def cnnlab_process(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def cnnlab(*args: str) -> subprocess.CompletedProcess:
    """The command in a process of its own (tests/fresh.py)."""
    return run_cnnlab(list(args), env={"COLUMNS": "200", "OMP_NUM_THREADS": "1"})


def db_rows(study_dir: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(study_dir / "study.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Study files: validation and expansion


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_study_validates_and_expands(path, tmp_path):
    study = load_study(path)
    runs = study.plan(tmp_path)
    assert len(runs) == len(study.variants) * len(study.seeds) > 0
    assert len({r.run_id for r in runs}) == len(runs)
    assert study.baseline in study.variant_names
    for run in runs:
        assert run.run_dir.parent == tmp_path.absolute() / "runs"
        if run.config.model.endswith(".toml"):
            assert Path(run.config.model).is_absolute() and Path(run.config.model).is_file()


def test_shipped_seed_studies_have_the_seeds_settings():
    s1 = load_study(STUDIES / "seed001-mnist-lenet-vs-mlp.toml")
    assert s1.variant_names == ["LeNet-5", "MLP", "LeNet-5 + BN + augmentation"]
    bn = s1.configs[("LeNet-5 + BN + augmentation", 0)]
    assert (bn.epochs, bn.batch_size, bn.optimizer.name, bn.optimizer.lr) == (15, 64, "adam", 1e-3)
    assert bn.model_args == {"batch_norm": True} and "rotate=20" in bn.augment
    s4 = load_study(STUDIES / "seed004-cifar10-17.toml")
    assert len(s4.variants) == 13 and s4.baseline == "7-layer"
    cfg = s4.configs[("VGG-like + augmentation", 0)]
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer.lr) == (300, 512, 1e-3)
    s3 = load_study(STUDIES / "seed003-cifar10-heads.toml")
    c3 = s3.configs[("dense head", 0)]
    assert (c3.batch_size, c3.optimizer.weight_decay) == (64, 1e-6)


GOOD_VARIANTS = """
[[variant]]
name = "a"
model = "mlp"

[[variant]]
name = "+dropout"
model = "lenet5"
"""


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        (
            '[study]\nnmae = "x"\nname = "x"\ndataset = "mnist"\nseeds = [0]\n',
            GOOD_VARIANTS,
            "[study]: unknown key 'nmae' (did you mean 'name'?); allowed: name, dataset, seeds,",
        ),
        (
            None,
            GOOD_VARIANTS + 'augmnt = "flip"\n',
            "variant '+dropout': unknown setting 'augmnt' (did you mean 'augment'?); allowed: name,",
        ),
        (
            None,
            GOOD_VARIANTS + "optimizer = { lrr = 1 }\n",
            "variant '+dropout': unknown setting 'optimizer.lrr' (did you mean 'lr'?); allowed:",
        ),
        (None, GOOD_VARIANTS + 'epochs = "ten"\n', "variant '+dropout': epochs = 'ten'"),
        (
            None,
            GOOD_VARIANTS + "optimizer = { lr = -1 }\n",
            "variant '+dropout': optimizer.lr = -1",
        ),
        (None, GOOD_VARIANTS + 'augment = "rotat=3"\n', "variant '+dropout': augment"),
        (None, GOOD_VARIANTS + "seed = 3\n", "variant '+dropout': seeds come from [study] seeds"),
        (None, GOOD_VARIANTS + 'dataset = "cifar10"\n', "set the dataset once, in [study] dataset"),
        (
            None,
            '[defaults]\ndataset = "mnist"\n' + GOOD_VARIANTS,
            "[defaults]: set the dataset once",
        ),
        (
            '[study]\nname = "x"\ndataset = "digits-wild"\nseeds = [0]\n',
            GOOD_VARIANTS + 'dataset = "digits-wild:size=28"\n',
            "has another size than [study] dataset 'digits-wild'; variants share one test split",
        ),
        (
            None,
            GOOD_VARIANTS.replace('"lenet5"', '"../models/nothere.toml"'),
            "variant '+dropout': model file not found:",
        ),
        (
            None,
            GOOD_VARIANTS.replace('"lenet5"', '"lenet6"'),
            "variant '+dropout': unknown model 'lenet6'",
        ),
        (
            None,
            GOOD_VARIANTS + "model_args = { batch_nrom = true }\n",
            "variant '+dropout': model 'lenet5': unknown argument 'batch_nrom'",
        ),
        (None, GOOD_VARIANTS.replace('"+dropout"', '"a"'), "variant name 'a' is used twice"),
        (
            None,
            GOOD_VARIANTS.replace('"lenet5"', '"mlp"'),
            "variants 'a' and '+dropout' have exactly the same settings",
        ),
        ('[study]\nname = "x"\ndataset = "mnist"\nseeds = []\n', GOOD_VARIANTS, "seeds is empty"),
        (
            '[study]\nname = "x"\ndataset = "mnist"\nseeds = "0"\n',
            GOOD_VARIANTS,
            "[study]: seeds = '0'",
        ),
        ('[study]\nname = "x"\ndataset = "mnist"\n', GOOD_VARIANTS, "[study]: missing key 'seeds'"),
        (
            '[study]\nname = "x"\ndataset = "mnist"\nseeds = [0]\nbaseline = "zzz"\n',
            GOOD_VARIANTS,
            "baseline 'zzz' is not a variant; variants: a, +dropout",
        ),
        (None, "", "missing [[variant]] tables"),
        (None, '[variant]\nname = "a"\n', "write each variant as a [[variant]] table"),
        (None, '[[variant]]\nmodel = "mlp"\n', "variant #1 needs a name"),
        (None, GOOD_VARIANTS + "[defualts]\nepochs = 2\n", "unknown table [defualts]"),
        (
            None,
            "[defaults]\nepoch = 2\n" + GOOD_VARIANTS,
            "[defaults]: unknown setting 'epoch' (did you mean 'epochs'?); allowed: model,",
        ),
        (
            None,
            GOOD_VARIANTS + '[grid]\n"optimizer.lrr" = [1]\n',
            "[grid]: unknown setting 'optimizer.lrr'",
        ),
        (None, GOOD_VARIANTS + '[grid]\n"seed" = [1, 2]\n', "[grid]: 'seed' cannot be a grid key"),
        (
            None,
            GOOD_VARIANTS + '[grid]\n"optimizer.lr" = []\n',
            "[grid]: 'optimizer.lr' has no values",
        ),
        (
            None,
            GOOD_VARIANTS + '[grid]\n"optimizer.lr" = 0.1\n',
            "[grid]: optimizer.lr: must be a list",
        ),
        (None, GOOD_VARIANTS + "[grid\n", "not valid TOML"),
    ],
)
def test_bad_study_files_give_one_clear_line(header, body, message, tmp_path):
    path = write_study(tmp_path / "studies", body, header=header)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path)), text
    assert message in text, text


def test_a_variant_may_change_only_the_training_options_of_digits_wild(tmp_path):
    header = '[study]\nname = "x"\ndataset = "digits-wild"\nseeds = [0]\n'
    body = GOOD_VARIANTS + 'dataset = "digits-wild:styles=basic,svhn=0"\n'
    runs = load_study(write_study(tmp_path, body, header=header)).plan(tmp_path / "out")
    assert {r.variant: r.config.dataset for r in runs} == {
        "a": "digits-wild",
        "+dropout": "digits-wild:styles=basic,svhn=0",
    }


def test_a_bad_study_file_reports_every_problem_at_once_with_its_line(tmp_path):
    body = (
        "[defaults]\nepoch = 2\n"
        + GOOD_VARIANTS
        + 'optimizer = { lr = -1 }\naugment = "rotat=3"\n'
        + '\n[[variant]]\nname = "c"\nearly_stopping = 2\n'
        + '\n[[variant]]\nname = "d"\nmodel = "lenet6"\n'
    )
    path = write_study(tmp_path / "studies", body)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 5 problems:"
    text = path.read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(n for n, line in enumerate(text, start=1) if fragment in line)

    expected = [
        (line_of("epoch = 2"), "[defaults]: unknown setting 'epoch' (did you mean 'epochs'?)"),
        (line_of("lr = -1"), "variant '+dropout': optimizer.lr = -1"),
        (line_of("rotat=3"), "variant '+dropout': augment = 'rotat=3': augment: unknown op"),
        (line_of('name = "c"') - 1, "variant 'c': early_stopping needs a validation split"),
    ]
    for number, message in expected:
        assert any(f"(line {number}): {message}" in line for line in lines[1:]), (message, lines)
    assert any("variant 'd'" in line and "unknown model 'lenet6'" in line for line in lines)


def test_bad_overrides_are_clear(tmp_path):
    path = write_study(tmp_path, GOOD_VARIANTS)
    with pytest.raises(ConfigError, match=r"--epochs-scale 0\.0: must be a positive number"):
        load_study(path, epochs_scale=0.0)
    with pytest.raises(ConfigError, match="seed 1 is listed twice"):
        load_study(path, seeds=[1, 2, 1])
    with pytest.raises(ConfigError, match="--seeds is empty"):
        load_study(path, seeds=[])


def test_grid_expands_names_and_settings(tmp_path):
    path = write_study(
        tmp_path,
        TINY_DEFAULTS
        + GOOD_VARIANTS
        + """
        [grid]
        "optimizer.lr" = [1e-1, 1e-3]
        batch_size = [32, 64]
        """,
    )
    study = load_study(path)
    assert study.variant_names == [
        "a lr=0.1 batch_size=32",
        "a lr=0.1 batch_size=64",
        "a lr=0.001 batch_size=32",
        "a lr=0.001 batch_size=64",
        "+dropout lr=0.1 batch_size=32",
        "+dropout lr=0.1 batch_size=64",
        "+dropout lr=0.001 batch_size=32",
        "+dropout lr=0.001 batch_size=64",
    ]
    cfg = study.configs[("+dropout lr=0.1 batch_size=64", 1)]
    assert (cfg.optimizer.lr, cfg.optimizer.name, cfg.batch_size, cfg.seed) == (0.1, "adam", 64, 1)
    assert study.baseline == "a lr=0.1 batch_size=32"  # default: the first variant
    runs = study.plan(tmp_path / "out")
    assert len(runs) == 16 and len({r.run_id for r in runs}) == 16
    assert runs[0].run_dir.name == f"a-lr-0.1-batch_size-32-s0-{runs[0].run_id[:8]}"

    # The same settings written out without a grid give the same run ids.
    plain = write_study(
        tmp_path / "other",
        TINY_DEFAULTS + '[[variant]]\nname = "x"\nmodel = "lenet5"\nbatch_size = 64\n'
        "optimizer = { lr = 0.1 }\n",
    )
    other = load_study(plain).plan(tmp_path / "out2")
    by_key = {(r.variant, r.seed): r.run_id for r in runs}
    assert other[1].run_id == by_key[("+dropout lr=0.1 batch_size=64", 1)]

    with_baseline = write_study(
        tmp_path / "b",
        TINY_DEFAULTS + GOOD_VARIANTS + '[grid]\n"optimizer.lr" = [0.1, 0.01]\n',
        header='[study]\nname = "t"\ndataset = "mnist"\nseeds = [0]\nbaseline = "+dropout"\n',
    )
    assert load_study(with_baseline).baseline == "+dropout lr=0.1"


def test_run_ids_follow_settings_not_locations(tmp_path):
    model = (STUDIES.parent / "models" / "cnn4-1.toml").read_text()
    a = tmp_path / "a"
    (a / "models").mkdir(parents=True)
    (a / "models" / "m.toml").write_text(model)
    body = TINY_DEFAULTS + '[[variant]]\nname = "file"\nmodel = "models/m.toml"\n' + GOOD_VARIANTS
    first = load_study(write_study(a, body)).plan(tmp_path / "o1")
    again = load_study(write_study(a, body)).plan(tmp_path / "o2")
    assert [r.run_id for r in first] == [r.run_id for r in again]
    assert first[0].config.model == str((a / "models" / "m.toml").resolve())

    # Moved study + model folder, another data_dir: the same ids.
    shutil.copytree(a, tmp_path / "b")
    moved = load_study(tmp_path / "b" / "study.toml", data_dir=tmp_path).plan(tmp_path / "o3")
    assert [r.run_id for r in moved] == [r.run_id for r in first]
    assert moved[0].config.data_dir == str(tmp_path.resolve())

    # A renamed variant keeps its ids; a changed setting changes only that variant's ids.
    renamed = load_study(write_study(a, body.replace('name = "a"', 'name = "A"'))).plan(
        tmp_path / "o"
    )
    assert [r.run_id for r in renamed] == [r.run_id for r in first]
    changed = load_study(
        write_study(a, body.replace('model = "mlp"', 'model = "mlp"\nlabel_smoothing = 0.1'))
    ).plan(tmp_path / "o")
    assert [r.run_id == f.run_id for r, f in zip(changed, first, strict=True)] == [
        True, True, False, False, True, True,
    ]  # fmt: skip

    # Editing the model file is a new run; its default builtin arguments are not.
    (a / "models" / "m.toml").write_text(model.replace("filters = 32", "filters = 16", 1))
    edited = load_study(write_study(a, body)).plan(tmp_path / "o")
    assert edited[0].run_id != first[0].run_id and edited[2].run_id == first[2].run_id
    explicit = load_study(
        write_study(
            a,
            body.replace(
                'model = "lenet5"', 'model = "LeNet5"\nmodel_args = { batch_norm = false }'
            ),
        )
    ).plan(tmp_path / "o")
    assert explicit[4].run_id == first[4].run_id


def test_epochs_scale_and_seeds_override(tmp_path):
    path = write_study(
        tmp_path,
        """
        [defaults]
        epochs = 30
        schedule = { name = "step", warmup_epochs = 3, step_every = 10 }

        [[variant]]
        name = "a"
        model = "mlp"

        [[variant]]
        name = "short"
        model = "lenet5"
        epochs = 3
        """,
    )
    study = load_study(path, epochs_scale=0.2, seeds=[5, 7])
    assert study.seeds == [5, 7]
    a = study.configs[("a", 7)]
    assert (a.epochs, a.schedule.warmup_epochs, a.schedule.step_every, a.seed) == (6, 0.6, 2, 7)
    assert study.configs[("short", 5)].epochs == 1  # round(0.6) = 1; never below 1
    tiny = load_study(path, epochs_scale=0.001)
    assert tiny.configs[("a", 0)].epochs == 1
    assert tiny.configs[("a", 0)].schedule.step_every == 1
    plain = load_study(path).plan(tmp_path / "o")
    scaled = load_study(path, epochs_scale=0.2).plan(tmp_path / "o")
    assert not {r.run_id for r in plain} & {r.run_id for r in scaled}
    assert [r.seed for r in study.plan(tmp_path / "o")] == [5, 7, 5, 7]


# ---------------------------------------------------------------------------------------------
# The store


def test_store_epochs_table_has_the_record_columns(tmp_path):
    with Store(tmp_path) as store:
        columns = [r["name"] for r in store.conn.execute("PRAGMA table_info(epochs)")]
    assert columns == ["run_id", *EPOCH_COLUMNS]


def summary_of(history: list[EpochRow]):
    return summarize_history(
        history, model="lenet5", dataset="mnist", seed=0, stopped_early=False, params=1,
        macs_per_image=1, input_shape=[1, 28, 28], classes=["0", "1"], precision="fp32",
        train_seconds=1.0, step_seconds=0.5, eval_seconds=0.1,
    )  # fmt: skip


def test_store_round_trip(tmp_path):
    path = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    study = load_study(path)
    out = tmp_path / "out"
    runs = study.plan(out)
    values = {c: float(i) / 10 for i, c in enumerate(EPOCH_COLUMNS)}
    row = values | {"val_loss": None, "val_acc": None}

    def epoch(**changes) -> EpochRow:
        return EpochRow.from_dict(row | changes)

    with Store(out) as store:
        store.record_study(
            name=study.name, file_path=path, file_text=study.text, dataset=study.dataset,
            baseline=study.baseline, description="d", variants=study.variant_names,
            options=study.options, runs=runs,
        )  # fmt: skip
        assert set(store.statuses().values()) == {"pending"}
        store.start_run(runs[0].run_id, "cpu fp32 NCHW")
        store.add_epoch(runs[0].run_id, epoch(epoch=1))
        store.add_epoch(runs[0].run_id, epoch(epoch=1, test_acc=0.5))  # overwritten
        store.add_epoch(runs[0].run_id, epoch(epoch=2))
        history = [epoch(epoch=1), epoch(epoch=2, test_acc=0.75)]
        summary = summary_of(history)
        store.finish_run(runs[0].run_id, summary, history, {"metrics": runs[0].run_dir / "m.csv"})
        store.start_run(runs[1].run_id, "cpu")
        store.fail_run(runs[1].run_id, "training diverged")

    results = load_results(out)
    assert (results.name, results.dataset, results.baseline) == ("tiny", "mnist", "a")
    assert results.variants == ["a", "+dropout"] and results.study_dir == out.absolute()
    assert [(r.variant, r.seed, r.status) for r in results.runs] == [
        ("a", 0, "done"), ("a", 1, "failed"), ("+dropout", 0, "pending"), ("+dropout", 1, "pending"),
    ]  # fmt: skip
    done = results.runs[0]
    assert done.history == history and done.history[1].test_acc == 0.75
    assert done.history[0].val_acc is None and isinstance(done.history[0].epoch, int)
    assert done.summary == summary and done.final_test_acc == 0.75
    assert done.config == runs[0].config.model_dump(mode="json")
    assert done.run_dir == runs[0].run_dir and done.device == "cpu fp32 NCHW"
    assert done.started_at <= done.ended_at and done.attempts == 1
    assert results.runs[1].error == "training diverged" and results.runs[1].summary is None
    assert [r.run_id for r in load_results(out, only=[runs[2].run_id]).runs] == [runs[2].run_id]

    # A changed setting: the new expansion is what results show; old runs stay stored.
    changed = load_study(
        write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS + "label_smoothing = 0.1\n")
    )
    new_runs = changed.plan(out)
    with Store(out) as store:
        store.record_study(
            name=changed.name, file_path=path, file_text=changed.text, dataset=changed.dataset,
            baseline=changed.baseline, description="", variants=changed.variant_names,
            options=changed.options, runs=new_runs,
        )  # fmt: skip
    current = load_results(out)
    assert [r.run_id for r in current.runs] == [r.run_id for r in new_runs]
    assert current.runs[0].status == "done"  # variant 'a' did not change
    everything = load_results(out, all_runs=True)
    assert len(everything.runs) == 6 and everything.variants == ["a", "+dropout"]

    # The folder moves: paths are stored relative to it.
    shutil.move(out, tmp_path / "moved")
    assert load_results(tmp_path / "moved").runs[0].run_dir == tmp_path / "moved" / runs[
        0
    ].run_dir.relative_to(out)
    with pytest.raises(CnnlabError, match="no study results here"):
        load_results(tmp_path / "nothing")
    with (
        Store(tmp_path / "moved") as store,
        pytest.raises(CnnlabError, match="holds results of study 'tiny'"),
    ):
        store.record_study(
            name="other", file_path=path, file_text="", dataset="mnist", baseline=None,
            description="", variants=[], options={}, runs=[],
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Running studies


def mlp_study(
    folder: Path, data_dir: Path, extra: str = "", seeds: str = "[0]", first: str = ""
) -> Path:
    return write_study(
        folder,
        TINY_DEFAULTS.replace("[defaults]", f'[defaults]\ndata_dir = "{data_dir}"')
        + first
        + '[[variant]]\nname = "mlp"\nmodel = "mlp"\n'
        + extra,
        header=f'[study]\nname = "tiny"\ndataset = "mnist"\nseeds = {seeds}\n',
    )


def test_variants_option_keeps_the_named_variants_and_their_run_ids(tmp_path):
    body = TINY_DEFAULTS + GOOD_VARIANTS + '\n[grid]\n"optimizer.lr" = [1e-1, 1e-3]\n'
    path = write_study(tmp_path, body)
    full = load_study(path)
    only = load_study(path, variants=["+dropout"])  # a [[variant]] name: all its grid points
    assert only.variant_names == ["+dropout lr=0.1", "+dropout lr=0.001"]
    assert only.baseline == "+dropout lr=0.1"  # the study's baseline ("a ...") was left out
    assert only.options["variants"] == ["+dropout"]
    ids = {(r.variant, r.seed): r.run_id for r in full.plan(tmp_path / "out")}
    for run in only.plan(tmp_path / "out"):
        assert ids[(run.variant, run.seed)] == run.run_id  # the same runs as in the full study
    one = load_study(path, variants=["a lr=0.001", "a lr=0.1"])
    assert one.variant_names == ["a lr=0.1", "a lr=0.001"]  # file order
    assert one.baseline == "a lr=0.1" == full.baseline
    with pytest.raises(ConfigError, match=r"no variant 'b'; variants: a, \+dropout$"):
        load_study(path, variants=["a", "b"])
    with pytest.raises(ConfigError, match="--variants is empty"):
        load_study(path, variants=[])


def test_tiny_study_end_to_end_through_the_cli(data_dir, tmp_path, capsys):
    study = write_study(
        tmp_path,
        TINY_DEFAULTS
        + """
        [[variant]]
        name = "LeNet-5"
        model = "lenet5"

        [[variant]]
        name = "MLP"
        model = "mlp"
        """,
    )
    out = tmp_path / "out"
    result = cnnlab(
        "run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-report"
    )
    assert result.returncode == 0, result.stderr
    assert "run 4/4" in result.stdout and "LeNet-5 seed 1: test acc" in result.stdout
    assert "LeNet-5 (baseline)" in result.stdout and "2/2" in result.stdout
    results = load_results(out)
    assert [(r.variant, r.seed, r.status, len(r.history)) for r in results.runs] == [
        ("LeNet-5", 0, "done", 1), ("LeNet-5", 1, "done", 1), ("MLP", 0, "done", 1), ("MLP", 1, "done", 1),
    ]  # fmt: skip
    for r in results.runs:
        assert r.final_test_acc == r.history[-1].test_acc > 0.3
        assert (r.run_dir / "summary.json").is_file() and (r.run_dir / "checkpoint.pt").is_file()
        assert r.run_dir.name.endswith(r.run_id[:8])
    assert db_rows(out, "SELECT COUNT(*) FROM artifacts WHERE kind = 'curves'") == [(4,)]

    # Rerunning skips every done run: no training, nothing rewritten.
    mtimes = [(r.run_dir / "summary.json").stat().st_mtime_ns for r in results.runs]
    capsys.readouterr()
    assert (
        main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-report"])
        == 0
    )
    assert "0 runs trained now; skipped 4 done before" in flat(capsys.readouterr().out)
    again = load_results(out)
    assert [(r.attempts, r.started_at) for r in again.runs] == [
        (1, r.started_at) for r in results.runs
    ]
    assert [(r.run_dir / "summary.json").stat().st_mtime_ns for r in again.runs] == mtimes

    # The report, end to end from the real store: written by `run`, read back by `report`.
    assert main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    html = (out / "report.html").read_text()
    assert "LeNet-5" in html and "MLP" in html and "data:image/png;base64," in html
    capsys.readouterr()
    assert main(["report", str(out), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert json.dumps(numbers).count("MLP") >= 1
    assert main(["report", str(out), "--format", "md"]) == 0
    assert "LeNet-5" in (out / "report.md").read_text()


def test_failed_run_is_recorded_the_study_goes_on_and_retry_reruns_it(data_dir, tmp_path, capsys):
    study = mlp_study(
        tmp_path,
        data_dir,
        first='[[variant]]\nname = "diverges"\nmodel = "mlp"\n'
        'optimizer = { name = "sgd", lr = 1e6, momentum = 0.9 }\n',
    )
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--no-report", "--quiet"]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert "failed: diverges seed 0: training diverged" in flat(printed.out)
    assert "1 runs trained now, 1 failed" in flat(printed.out)  # only finished runs count
    assert "1 of 2 runs failed" in flat(printed.err)  # and exit status 1 for scripts
    by_variant = {r.variant: r for r in load_results(out).runs}
    assert by_variant["mlp"].status == "done"  # the run after the failed one
    failed = by_variant["diverges"]
    assert failed.status == "failed" and "diverged" in failed.error and failed.summary is None

    assert main(args) == 1
    assert "skipped 1 done before, 1 failed before (--retry-failed reruns them)" in flat(
        capsys.readouterr().out
    )
    assert {r.variant: r.attempts for r in load_results(out).runs} == {"mlp": 1, "diverges": 1}

    assert main([*args, "--retry-failed"]) == 1
    again = {r.variant: r for r in load_results(out).runs}
    assert {v: r.attempts for v, r in again.items()} == {"mlp": 1, "diverges": 2}
    assert again["diverges"].status == "failed" and again["diverges"].started_at > failed.started_at


def test_crash_is_recorded_and_interrupt_stops_the_study_resumably(data_dir, tmp_path, monkeypatch):
    from cnnlab.training import loop

    study = load_study(mlp_study(tmp_path, data_dir, seeds="[0, 1, 2]"))
    out = tmp_path / "out"
    real_train = loop.train
    calls = []

    def flaky_train(cfg, out_dir, **kwargs):
        calls.append(cfg.seed)
        if cfg.seed == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
        if cfg.seed == 1 and len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(cfg, out_dir, **kwargs)

    monkeypatch.setattr(loop, "train", flaky_train)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out)
    runs = load_results(out).runs
    assert [r.status for r in runs] == ["failed", "interrupted", "pending"]
    assert runs[0].error == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "Traceback" in (runs[0].run_dir / "error.txt").read_text()

    outcome = run_study(study, out)  # resumes the interrupted run, skips the failed one
    assert outcome.skipped_failed == [runs[0].run_id] and calls == [0, 1, 1, 2]
    assert [(r.status, r.attempts) for r in outcome.results.runs] == [
        ("failed", 1),
        ("done", 2),
        ("done", 1),
    ]


def test_a_moved_study_folder_resumes_its_runs(data_dir, tmp_path):
    """A run interrupted after epoch 1, then the study (file, model file, results) moves."""
    a = tmp_path / "a"
    (a / "models").mkdir(parents=True)
    (a / "models" / "tiny.toml").write_text('layer = [{ type = "flatten" }, { type = "dense" }]\n')
    body = TINY_DEFAULTS.replace("epochs = 1", "epochs = 2")
    body += '[[variant]]\nname = "linear"\nmodel = "models/tiny.toml"\n'
    study_file = write_study(
        a, body, header='[study]\nname = "m"\ndataset = "mnist"\nseeds = [0]\n'
    )

    class Stop(QuietReporter):
        def end_epoch(self, row):
            raise KeyboardInterrupt  # after the checkpoint and the epoch row are written

    class StopAfterFirstEpoch(QuietStudyProgress):
        def run_started(self, run, epochs_done):
            return Stop()

    with pytest.raises(KeyboardInterrupt):
        run_study(
            load_study(study_file, data_dir=data_dir), a / "out", progress=StopAfterFirstEpoch()
        )
    assert [len(r.history) for r in load_results(a / "out").runs] == [1]

    shutil.move(a, tmp_path / "b")
    moved = load_study(tmp_path / "b" / "study.toml", data_dir=data_dir)
    outcome = run_study(moved, tmp_path / "b" / "out")
    (run,) = outcome.results.runs
    assert (run.status, run.attempts, len(run.history)) == ("done", 2, 2), run.error
    assert run.config["model"] == str(tmp_path / "b" / "models" / "tiny.toml")

    reference = run_study(moved, tmp_path / "ref").results.runs[0]
    assert reference.run_id == run.run_id
    assert [h.test_loss for h in reference.history] == [h.test_loss for h in run.history]


def test_one_runner_per_study_folder(data_dir, tmp_path):
    study = load_study(mlp_study(tmp_path, data_dir))
    with study_lock(tmp_path / "out"), pytest.raises(CnnlabError, match="another `cnnlab run`"):
        run_study(study, tmp_path / "out")


def test_a_run_refused_by_the_lock_prints_nothing_but_the_error(data_dir, tmp_path, capsys):
    path = mlp_study(tmp_path, data_dir)
    with study_lock(tmp_path / "out"):
        assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "another `cnnlab run` is working" in flat(captured.err)


def test_preflight_rejects_a_model_that_cannot_take_the_images(data_dir, tmp_path):
    (tmp_path / "big.toml").write_text(
        'layer = [{ type = "conv", filters = 2, kernel = 40 }, { type = "flatten" }, { type = "dense" }]\n'
    )
    study = load_study(
        mlp_study(
            tmp_path,
            data_dir,
            '[[variant]]\nname = "too big"\nmodel = "big.toml"\n',
        )
    )
    with pytest.raises(
        ConfigError, match=r"variant 'too big': .*cannot take an input of shape 1x28x28"
    ):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_preflight_rejects_a_batch_larger_than_the_training_split(data_dir, tmp_path):
    # 600 training images, 20% held out for validation: 480 are left to train on.
    variant = '[[variant]]\nname = "huge"\nmodel = "mlp"\nbatch_size = 500\nval_fraction = 0.2\n'
    study = load_study(mlp_study(tmp_path, data_dir, variant))
    with pytest.raises(ConfigError, match=r"variant 'huge': batch_size 500 is larger than the 480"):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = write_study(tmp_path, GOOD_VARIANTS + 'augmnt = "flip"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error:") and "unknown setting 'augmnt'" in flat(err)
    assert main(["run", str(bad), "--seeds", "0,x"]) == 2
    assert "--seeds '0,x' is not a list of integers" in flat(capsys.readouterr().err)
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in flat(capsys.readouterr().err)


def test_run_help_teaches_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs-scale", "--seeds", "--retry-failed", "--no-report", "examples:"):
        assert flag in text


# ---------------------------------------------------------------------------------------------
# The kill test


def test_a_killed_study_resumes_to_the_results_of_an_uninterrupted_one(data_dir, tmp_path, capsys):
    """SIGKILL `cnnlab run` mid-study; the rerun must end exactly where an
    uninterrupted run of the same study ends: the same (run, epoch) rows, none twice,
    the same numbers."""
    study = write_study(
        tmp_path,
        f"""
        [defaults]
        data_dir = "{data_dir}"
        epochs = 3
        batch_size = 30
        eval_batch_size = 200
        precision = "fp32"
        device = "cpu"

        [[variant]]
        name = "mlp"
        model = "mlp"

        [[variant]]
        name = "wide mlp"
        model = "mlp"
        model_args = {{ hidden = [128, 64] }}
        augment = "translate=0.1"
        """,
    )
    killed = tmp_path / "killed"
    args = ("run", str(study), "--out", str(killed), "--no-report")

    def epochs_stored() -> int:
        try:
            return db_rows(killed, "SELECT COUNT(*) FROM epochs")[0][0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    proc = cnnlab_process(*args)
    deadline = time.monotonic() + 120
    while epochs_stored() < 4:  # the first run done, the second one in its epoch 2
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    statuses = [s for (s,) in db_rows(killed, "SELECT status FROM runs ORDER BY rowid")]
    assert statuses == ["done", "running", "pending", "pending"]
    # The database still says running (nothing could write after SIGKILL); with no
    # `cnnlab run` holding the folder, readers are told the truth.
    assert [r.status for r in load_results(killed).runs] == [
        "done", "interrupted", "pending", "pending"
    ]  # fmt: skip

    # Start again (in this process, through the same CLI entry point) and let it finish.
    assert main([*args, "--quiet"]) == 0
    assert "3 runs trained now; skipped 1 done before" in flat(capsys.readouterr().out)

    reference = tmp_path / "reference"
    run_study(load_study(study), reference)

    def numbers(study_dir: Path):
        epochs = db_rows(
            study_dir,
            "SELECT run_id, epoch, lr, train_loss, train_acc, test_loss, test_acc FROM epochs "
            "ORDER BY run_id, epoch",
        )
        finals = {
            run_id: json.loads(text)["final"]
            for run_id, text in db_rows(study_dir, "SELECT run_id, summary_json FROM finals")
        }
        return epochs, finals

    resumed_epochs, resumed_finals = numbers(killed)
    ref_epochs, ref_finals = numbers(reference)
    assert len(ref_epochs) == 4 * 3
    assert [(r, e) for r, e, *_ in resumed_epochs] == [(r, e) for r, e, *_ in ref_epochs]
    assert resumed_epochs == ref_epochs  # every number, exactly
    assert resumed_finals == ref_finals
    runs = load_results(killed).runs
    assert [(r.status, r.attempts) for r in runs] == [
        ("done", 1),
        ("done", 2),
        ("done", 1),
        ("done", 1),
    ]


def test_settings_added_later_keep_old_run_ids_at_their_defaults():
    from cnnlab.config.schema import config_dict, make_config
    from cnnlab.study.spec import SETTINGS_ADDED_SINCE_V1, run_identity

    spec = {"name": "lenet5", "args": {}}
    plain = run_identity(config_dict(make_config({})), spec)["settings"]
    assert not set(SETTINGS_ADDED_SINCE_V1) & set(plain)
    averaged = run_identity(config_dict(make_config({"ema_decay": 0.99, "tta": "flip"})), spec)
    assert averaged["settings"]["ema_decay"] == 0.99 and averaged["settings"]["tta"] == "flip"


def test_a_bad_default_is_reported_once_as_the_defaults_own(tmp_path):
    body = "[defaults]\noptimizer = { lr = -1 }\n" + GOOD_VARIANTS
    path = write_study(tmp_path / "studies", body)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text and "[defaults]: optimizer.lr = -1" in text and "(line 6)" in text


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('[study]\nname = "x"\ndataset = "mnist"\nseeds = [-1]\n', "[study]: seeds.0 = -1"),
        ('[study]\nname = "x"\ndataset = "mnist"\nseeds = [4294967296]\n', "[study]: seeds.0"),
    ],
)
def test_seeds_are_small_non_negative_integers(header, message, tmp_path):
    path = write_study(tmp_path / "studies", GOOD_VARIANTS, header=header)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_study(path)


def test_a_new_study_that_cannot_start_creates_nothing(tmp_path):
    path = write_study(tmp_path / "studies", TINY_DEFAULTS + GOOD_VARIANTS)
    study = load_study(path, data_dir=tmp_path / "no-data")
    with pytest.raises(DataError, match="mnist: dataset not found"):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # no lock, no empty database


def test_reading_a_database_without_cnnlab_tables_changes_nothing(tmp_path):
    import sqlite3

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "study.sqlite").write_bytes(b"")
    with pytest.raises(CnnlabError, match="not a cnnlab study database"):
        load_results(tmp_path / "empty")
    assert (tmp_path / "empty" / "study.sqlite").read_bytes() == b""  # no schema written
    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / "study.sqlite") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(CnnlabError, match="not a cnnlab study database"):
        load_results(tmp_path / "other")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "study.sqlite").write_text("hello, not a database" * 100)
    with pytest.raises(CnnlabError, match="not a readable study database"):
        load_results(tmp_path / "text")
