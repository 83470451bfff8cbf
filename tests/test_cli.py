"""End to end: the real `cnnlab` command on small generated data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakedata import make_tar, write_image_folder
from fresh import run_cnnlab


def cnnlab(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The command in a process of its own (tests/fresh.py), its output not a terminal."""
    return run_cnnlab(list(args), env={"COLUMNS": "200", **(env or {})}, cwd=cwd)


def entry_point(*args: str) -> subprocess.CompletedProcess:
    """`python -m cnnlab ARGS`: the real entry point in a new interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, timeout=300
    )


def test_help_teaches_the_commands():
    result = entry_point("--help")
    assert result.returncode == 0
    for command in ("data", "models", "train", "evaluate"):
        assert command in result.stdout
    train_help = cnnlab("train", "--help").stdout
    assert "--augment" in train_help and "rotate=20" in train_help


def test_data_list_and_show(data_dir, tmp_path):
    listing = cnnlab("data", "list", "--data-dir", str(data_dir))
    assert listing.returncode == 0
    assert "mnist" in listing.stdout and "yes" in listing.stdout
    out = tmp_path / "grid.png"
    shown = cnnlab("data", "show", "mnist", "--data-dir", str(data_dir), "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "600 train / 200 test" in shown.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_show_reads_a_tarred_image_folder(tmp_path):
    write_image_folder(tmp_path / "pets", classes=("cat", "dog"), n_per_class=3, size=(12, 12))
    make_tar(tmp_path / "pets", tmp_path / "pets.tar.gz")
    result = cnnlab(
        "data", "show", f"folder:{tmp_path / 'pets.tar.gz'}", "--out", str(tmp_path / "g.png")
    )
    assert result.returncode == 0, result.stderr
    assert "cat" in result.stdout and "dog" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "show", "mnist", "--data-dir", "{empty}"), "mnist: dataset not found. Expected"),
        (("data", "show", "imagenet"), "unknown dataset 'imagenet'"),
        (("data", "show", "folder:{empty}/nothing"), "nothing"),
        (("models", "show", "lenet6"), "lenet6"),
        (("models", "show", "lenet5", "--input", "1x32"), "not a shape"),
        (("train", "--model", "lenet5", "--epochs", "0"), "epochs = 0"),
        (("evaluate", "{empty}/missing.pt"), "no such checkpoint"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cnnlab(*(a.replace("{empty}", str(empty)) for a in args))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in " ".join(result.stderr.split())
    assert result.stderr.strip().startswith("cnnlab: error:")


def test_models_list_and_show():
    listing = cnnlab("models", "list")
    assert listing.returncode == 0 and "lenet5" in listing.stdout and "resnet18" in listing.stdout
    shown = cnnlab("models", "show", "lenet5", "--input", "1x32x32")
    assert shown.returncode == 0 and "61,706" in shown.stdout


@pytest.mark.slow
def test_train_then_evaluate(data_dir, tmp_path):
    run = tmp_path / "run"
    result = cnnlab(
        "train", "--dataset", "mnist", "--model", "lenet5", "--epochs", "2", "--batch-size", "50",
        "--optimizer", "adam", "--lr", "3e-3", "--augment", "rotate=5,translate=0.05",
        "--precision", "fp32", "--data-dir", str(data_dir), "--out", str(run),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Not a terminal: one line per epoch.
    assert "epoch 1/2" in result.stdout and "epoch 2/2" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["test_acc"] > 0.8
    again = cnnlab(
        "train",
        "--dataset",
        "mnist",
        "--epochs",
        "2",
        "--data-dir",
        str(data_dir),
        "--out",
        str(run),
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    # Resuming a finished run: says so and touches nothing.
    stamps = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    resumed = cnnlab("train", "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "already finished: test accuracy" in resumed.stdout and "training" not in resumed.stdout
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == stamps
    (run / "curves.png").unlink()  # a kill before the last file: the resume writes it
    assert cnnlab("train", "--out", str(run), "--resume").returncode == 0
    assert (run / "curves.png").is_file()

    evaluated = cnnlab("evaluate", str(run / "checkpoint.pt"), "--data-dir", str(data_dir))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"{100 * summary['final']['test_acc']:.2f}%" in evaluated.stdout
    assert (run / "confusion-mnist.png").is_file()


def test_train_from_config_file(data_dir, tmp_path):
    config = tmp_path / "mlp.toml"
    config.write_text(
        f'dataset = "mnist"\nmodel = "mlp"\nepochs = 1\nbatch_size = 100\ndata_dir = "{data_dir}"\n'
        '[optimizer]\nname = "sgd"\nlr = 0.05\nnesterov = true\n'
    )
    result = cnnlab(
        "train", "--config", str(config), "--quiet", "--seed", "2", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["model"] == "mlp" and saved["seed"] == 2 and saved["optimizer"]["nesterov"] is True


def test_train_help_names_every_augment_op():
    from cnnlab.cli.train_command import TRAIN_EPILOG
    from cnnlab.data.augment import augment_op_names

    missing = [op for op in augment_op_names() if op not in TRAIN_EPILOG]
    assert not missing


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models", "list"],
        ["data", "list"],
        ["report", "{study}", "--format", "json"],
        ["report", "{study}", "--no-predictions"],
        ["compare", "{study}", "{study}"],
    ],
)
def test_commands_that_need_no_torch_do_not_import_it(args, tmp_path):
    import shutil

    study = tmp_path / "study"
    shutil.copytree(Path(__file__).parent / "data" / "study-v1", study)
    argv = [a.replace("{study}", str(study)) for a in args]
    code = (
        "import sys\nfrom cnnlab.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_train_flags_are_the_schema():
    import argparse

    from cnnlab.cli.train_flags import add_setting_flags, flag_of, setting_overrides
    from cnnlab.config.schema import make_config, setting_keys

    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings}
    assert {flag_of(k) for k in setting_keys() if k != "model_args"} <= flags
    args = parser.parse_args(
        [
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--nesterov",
            "--betas",
            "0.8",
            "0.9",
            "--no-drop-last",
            "--schedule",
            "step",
            "--step-every",
            "3",
            "--epochs",
            "4",
            "--tta",
            "flip",
        ]
    )
    cfg = make_config(setting_overrides(args))
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.nesterov) == ("sgd", 0.1, True)
    assert cfg.optimizer.betas == (0.8, 0.9) and cfg.drop_last is False
    assert (cfg.schedule.name, cfg.schedule.step_every, cfg.epochs, cfg.tta) == (
        "step",
        3,
        4,
        "flip",
    )
    assert setting_overrides(parser.parse_args([])) == {}  # unset flags leave the file's values


def test_error_text_is_printed_literally_not_as_markup(tmp_path, capsys):
    from cnnlab.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[study]\nname = "x"\ndataset = "mnist"\nseeds = [0]\n[[variant]]\nname = "a"\n[grd]\n'
    )
    assert main(["run", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown table [grd] (did you mean 'grid'?)" in err
    assert "allowed: [study], [defaults], [[variant]], [grid]" in err
    assert not (tmp_path / "runs").exists()


def test_out_naming_a_file_is_one_error_line(tmp_path, capsys):
    from cnnlab.cli import main

    taken = tmp_path / "taken"
    taken.write_text("mine")
    for args in (["run", "studies/quick-fashion.toml"], ["train", "--epochs", "1"]):
        assert main([*args, "--out", str(taken / "x")]) == 2
        err = capsys.readouterr().err
        assert f"{taken} is a file, not a folder" in " ".join(err.split())
        assert "Traceback" not in err
    assert taken.read_text() == "mine"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_any_data_is_read(
    tmp_path, capsys
):
    from cnnlab.cli import main

    args = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "no-data-here")]
    assert main([*args, "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert "no CUDA GPU is available; use --device cpu" in captured.err
    assert "training" not in captured.out and not (tmp_path / "run").exists()


def test_init_writes_a_starter_study_that_runs_as_it_is(data_dir, tmp_path, monkeypatch, capsys):
    from cnnlab.cli import main
    from cnnlab.study.plan.study_file import load_study

    monkeypatch.chdir(tmp_path)
    assert main(["init", "first.toml"]) == 0
    study = load_study(tmp_path / "first.toml")
    assert (study.name, study.baseline, len(study.claims)) == ("first", "LeNet-5", 1)
    assert "# Every key of [defaults]" in (tmp_path / "first.toml").read_text()
    args = ["run", "first.toml", "--dataset", "mnist", "--data-dir", str(data_dir)]
    assert main([*args, "--epochs-scale", "0.34", "--seeds", "0,1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["init", "first.toml"]) == 2  # never overwrites
    assert "exists already" in capsys.readouterr().err
    assert main(["init", "notes.txt"]) == 2


def test_a_flags_default_is_said_once(capsys):
    from cnnlab.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default $CNNLAB_DATA)" in text and "$CNNLAB_DATA) (default" not in text
