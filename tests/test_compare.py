"""`cnnlab compare` and `report` on what users have: studies and plain `cnnlab train` runs.

Comparisons that cannot mislead: different data is refused, variants are paired by
their settings, a run present on both sides counts once.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from conftest import write_learnable_mnist
from test_report import fake_study

from cnnlab.analysis.compare import compare_studies
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.study.store.folders import load_any


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnlab: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """`cnnlab train` run folders: mlp seeds 0-2 on mnist, lenet5 seed 0 on mnist, mlp seeds
    0-1 on fashion-mnist (the same images under another name: only the name differs)."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    write_learnable_mnist(data / "mnist")
    write_learnable_mnist(data / "fashion-mnist")
    base = ["train", "--epochs", "1", "--data-dir", str(data), "--quiet"]
    jobs = [("mlp", "mnist", s, root / "mnist-mlp" / f"s{s}") for s in (0, 1, 2)]
    jobs.append(("lenet5", "mnist", 0, root / "mnist-lenet5" / "s0"))
    jobs += [("mlp", "fashion-mnist", s, root / "fashion-mlp" / f"s{s}") for s in (0, 1)]
    for model, dataset, seed, out in jobs:
        args = [*base, "--model", model, "--dataset", dataset, "--seed", str(seed)]
        assert main([*args, "--out", str(out)]) == 0
    return {"root": root}


def test_compare_refuses_two_datasets_with_one_line_and_exit_2(trained, capsys):
    root = trained["root"]
    code = main(["compare", str(root / "mnist-mlp"), str(root / "fashion-mlp")])
    assert code == 2
    line = one_line_error(capsys)
    assert "not comparable: A is on mnist, B on fashion-mnist" in line
    assert "--allow-different-data" in line

    args = ["compare", str(root / "mnist-mlp"), str(root / "fashion-mlp"), "--format", "json"]
    assert main([*args, "--allow-different-data"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["different_data"] == ["A is on mnist, B on fashion-mnist"]
    assert result["notes"][0] == "A is on mnist, B on fashion-mnist"


def test_a_copy_made_before_more_seeds_finished_counts_shared_runs_once(trained, tmp_path, capsys):
    root = trained["root"]
    early = tmp_path / "early"
    for seed in (0, 1):  # the copy: seeds 0 and 1 only
        shutil.copytree(root / "mnist-mlp" / f"s{seed}", early / f"s{seed}")
    assert main(["compare", str(early), str(root / "mnist-mlp"), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["variants"]
    assert row["matched_by"] == "settings" and row["shared_runs"] == 2
    assert (row["a"]["n"], row["b"]["n"]) == (2, 1)  # B keeps only its own seed 2
    assert "mlp': 2 runs are in both studies (same run id): counted once, in A" in " ".join(
        result["notes"]
    )
    assert main(["compare", str(early), str(root / "mnist-mlp")]) == 0
    assert "counted once, in A" in " ".join(capsys.readouterr().out.split())


def test_run_folders_form_an_ad_hoc_study_grouped_by_settings(trained, tmp_path, capsys):
    root = trained["root"]
    folders = [root / "mnist-mlp" / f"s{s}" for s in (0, 1, 2)] + [root / "mnist-lenet5" / "s0"]
    results = load_any(folders)
    assert results.variants == ["model=mlp", "model=lenet5"] and results.baseline == "model=mlp"
    assert [r.seed for r in results.runs_of("model=mlp")] == [0, 1, 2]
    assert all(r.summary.run_id == r.run_id and r.provenance for r in results.runs)

    assert main(["report", *map(str, folders), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in numbers["variants"]] == ["model=mlp", "model=lenet5"]
    assert numbers["variants"][0]["runs"]["done"] == 3

    assert main(["report", *map(str, folders)]) == 2
    assert "--out" in one_line_error(capsys)
    out = tmp_path / "report"
    assert main(["report", *map(str, folders), "--out", str(out), "--no-predictions"]) == 0
    assert (out / "report.html").is_file() and "model=lenet5" in (out / "report.md").read_text()


def test_a_folder_that_is_neither_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no study results and no run folders here" in one_line_error(capsys)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "bad"), str(tmp_path / "empty")]) == 2
    assert "config.json: not readable JSON" in one_line_error(capsys)


def with_settings(results, settings_of):
    for run in results.runs:
        run.identity = {"identity": 1, "settings": {**settings_of[run.variant], "seed": run.seed}}
    return results


def test_variants_pair_by_settings_and_a_name_with_other_settings_is_named(tmp_path):
    plain = {"model": {"builtin": "lenet5", "args": {}}, "optimizer": {"lr": 0.01}}
    bn = {"model": {"builtin": "lenet5", "args": {"batch_norm": True}}, "optimizer": {"lr": 0.01}}
    a = with_settings(
        fake_study(tmp_path / "a", {"base": [0.90, 0.91, 0.92], "bn": [0.93, 0.94, 0.95]}),
        {"base": plain, "bn": bn},
    )
    renamed = {"plain": [0.90, 0.91, 0.90], "bn": [0.95, 0.96, 0.97]}
    b_bn = {**bn, "optimizer": {"lr": 0.1}}
    b = with_settings(fake_study(tmp_path / "b", renamed), {"plain": plain, "bn": b_bn})
    result = compare_studies(a, b)
    rows = {r["variant"]: r for r in result["variants"]}
    assert list(rows) == ["base = plain", "bn"]
    assert rows["base = plain"]["matched_by"] == "settings"
    assert rows["bn"]["matched_by"] == "name"
    assert rows["bn"]["settings_differ"] == [{"key": "optimizer.lr", "a": 0.01, "b": 0.1}]
    notes = " | ".join(result["notes"])
    assert "A's 'base' and B's 'plain' have the same settings: paired" in notes
    assert "'bn' has different settings in A and B: optimizer.lr 0.01 -> 0.1" in notes


def test_a_different_way_of_measuring_is_refused_too(tmp_path):
    a = fake_study(tmp_path / "a", {"base": [0.90, 0.91]})
    b = fake_study(tmp_path / "b", {"base": [0.90, 0.91]})
    for run in b.runs:
        run.config = {**run.config, "tta": "flip"}
    with pytest.raises(ConfigError, match=r"B final test accuracy .* with test-time augmentation"):
        compare_studies(a, b)
    for run in b.runs:  # other classes: another test split under the same name
        run.config = dict(a.runs[0].config)
        run.summary = dataclasses.replace(run.summary, classes=["a", "b"])
    with pytest.raises(ConfigError, match="the test splits differ"):
        compare_studies(a, b)


def test_run_folders_of_earlier_versions_are_grouped_from_their_config(trained, tmp_path):
    """Summaries written before cnnlab 0.6 carry no run id or identity: both come from
    config.json, and the seeds of one setting still form one variant."""
    for seed in (0, 1):
        copy = tmp_path / "old" / f"s{seed}"
        shutil.copytree(trained["root"] / "mnist-mlp" / f"s{seed}", copy)
        summary = json.loads((copy / "summary.json").read_text())
        for key in ("run_id", "identity", "provenance"):
            del summary[key]
        (copy / "summary.json").write_text(json.dumps(summary))
    results = load_any([tmp_path / "old"])
    assert results.variants == ["mlp"] and [r.seed for r in results.runs] == [0, 1]
    ids = [r.run_id for r in results.runs]
    assert len(set(ids)) == 2 and all(len(i) == 16 for i in ids)
    assert all(r.provenance is None for r in results.runs)
