"""Studies: study files, expansion and run ids, the SQLite store, the executor and `cnnlab run`.

Training here is tiny (the conftest's 600-image MNIST, MLPs and LeNet-5, 1-3 epochs,
fp32 on the CPU so that results are bit-for-bit reproducible).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from study_helpers import (  # noqa: F401 (autouse fixtures)
    GOOD_VARIANTS,
    STUDIES,
    TINY_DEFAULTS,
    _no_curve_plots,
    _one_thread,
    cnnlab,
    write_study,
)

from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study

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
        (None, "", "no [[variant]] tables and no [grid]"),
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


def test_settings_by_their_flags_names_are_the_same_runs(tmp_path):
    """``lr = 0.05`` and ``optimizer = "sgd"`` mean what the flags --lr and --optimizer do,
    in study files as in config files: the same settings, so the same run ids."""
    header = '[study]\nname = "s"\ndataset = "mnist"\nseeds = [0]\n'
    nested = (
        '[defaults]\noptimizer = { name = "sgd", lr = 0.05, momentum = 0.8 }\n'
        'schedule = { name = "step", step_every = 2 }\n'
        '[[variant]]\nname = "a"\nmodel = "mlp"\n'
        '[[variant]]\nname = "b"\nmodel = "mlp"\noptimizer = { lr = 0.1 }\n'
    )
    short = (
        '[defaults]\noptimizer = "sgd"\nlr = 0.05\nmomentum = 0.8\nschedule = "step"\n'
        "step_every = 2\n"
        '[[variant]]\nname = "a"\nmodel = "mlp"\n'
        '[[variant]]\nname = "b"\nmodel = "mlp"\nlr = 0.1\n'
    )
    (tmp_path / "n").mkdir()
    (tmp_path / "s").mkdir()
    a = load_study(write_study(tmp_path / "n", nested, header=header)).plan(tmp_path / "o")
    b = load_study(write_study(tmp_path / "s", short, header=header)).plan(tmp_path / "o")
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert b[1].config.optimizer.lr == 0.1 and b[1].config.optimizer.name == "sgd"
    with pytest.raises(ConfigError, match="unknown setting 'lrr' \\(did you mean 'lr'\\?\\)"):
        load_study(
            write_study(tmp_path / "s", short.replace("lr = 0.1", "lrr = 0.1"), header=header)
        )


def test_a_config_file_takes_the_flags_names_too(tmp_path):
    from cnnlab.config.files import load_config_file

    path = tmp_path / "c.toml"
    path.write_text('optimizer = "sgd"\nlr = 0.05\nwarmup_epochs = 1.0\n')
    cfg = load_config_file(path)
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.schedule.warmup_epochs) == ("sgd", 0.05, 1.0)
