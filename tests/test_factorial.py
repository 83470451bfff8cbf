"""Factorial questions: the analysis of variance of a grid, main-effect claims, grid-only
studies and their names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps
from study_helpers import flat, write_study

from cnnlab.claims.claim import Claim
from cnnlab.claims.verdicts import judge_claims
from cnnlab.cli.app import main
from cnnlab.errors import ConfigError
from cnnlab.stats.factorial import anova, contrast
from cnnlab.study.plan.study_file import load_study

# A 3 x 2 design, 4 replicates a cell, and what statsmodels 0.15 says of it
# (anova_lm(ols("y ~ C(A, Sum) * C(B, Sum)"), typ=2)).
Y = [0.12573, -0.132105, 0.640423, 0.1049, -0.235669, 0.661595, 1.604, 1.247081, -0.203735,
     -0.765421, -0.123274, 0.541326, -1.525031, 0.581208, -0.445911, 0.067733, -0.544259,
     -0.3163, 0.411631, 1.042513, 0.971465, 2.466463, 0.434805, 1.45151]  # fmt: skip
STATSMODELS = {"A": (4.124866, 2, 3.972643, 0.037233), "B": (1.759236, 1, 3.388627, 0.082193),
               "A x B": (1.917658, 2, 1.846889, 0.186396)}  # fmt: skip
LEVELS = {"A": ["x", "y", "z"], "B": ["p", "q"]}


def _cells() -> dict:
    cells: dict = {}
    for i, y in enumerate(Y):
        cells.setdefault(("xyz"[i // 8], "pq"[(i // 4) % 2]), []).append(y)
    return cells


def test_the_analysis_of_variance_is_statsmodels_on_balanced_data():
    table = anova(_cells(), ["A", "B"], LEVELS)
    assert table is not None and table.residual_df == 18 and table.replicates == 4
    for effect in table.effects:
        ss, df, f, p = STATSMODELS[effect.name]
        assert (effect.df, round(effect.ss, 5), round(effect.f, 5), round(effect.p, 5)) == (
            df, round(ss, 5), round(f, 5), round(p, 5),
        )  # fmt: skip
    total = sum((y - np.mean(Y)) ** 2 for y in Y)
    parts = sum(e.ss for e in table.effects) + table.residual_ms * table.residual_df
    assert parts == pytest.approx(total)


def test_a_one_df_main_effect_is_the_contrast_squared_and_one_factor_is_f_oneway():
    table = anova(_cells(), ["A", "B"], LEVELS)
    b = next(e for e in table.effects if e.name == "B")
    c = contrast(_cells(), 1, "q", "p")
    assert c.t**2 == pytest.approx(b.f) and c.p == pytest.approx(b.p)
    one = {(a,): [y for (a2, _), ys in _cells().items() if a2 == a for y in ys] for a in "xyz"}
    (effect,) = anova(one, ["A"], {"A": ["x", "y", "z"]}).effects
    reference = sps.f_oneway(*one.values())
    assert effect.f == pytest.approx(reference.statistic) and effect.p == pytest.approx(
        reference.pvalue
    )


def test_unequal_cells_give_no_table():
    cells = _cells()
    cells[("x", "p")] = cells[("x", "p")][:3]
    assert anova(cells, ["A", "B"], LEVELS) is None


def test_a_main_effect_claims_false_positive_rate_stays_at_alpha():
    """2,000 null 2 x 2 grids (variant "ab": factor f at a, the other at b), 3 seeds a cell,
    the other factor with a large effect:
    rejections of "level b beats level a" <= alpha + 3 Monte-Carlo standard errors."""
    rng = np.random.default_rng(4)
    claim = Claim(says="b helps", form="better", variants=("ab", "bb", "aa", "ba"),
                  factor="f", levels=("b", "a"), at=("a", "b", "a", "b"))  # fmt: skip
    rejected = 0
    for _ in range(2000):
        finals = {
            v: list(rng.normal(0, 1, 3) + (5.0 if v[1] == "b" else 0.0)) for v in claim.variants
        }
        (verdict,) = judge_claims([claim], finals)
        rejected += verdict.p_holm < 0.05
    assert rejected / 2000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)


GRID = """
[defaults]
epochs = 1
batch_size = 50
precision = "fp32"
device = "cpu"
model = "lenet5"

[grid]
"optimizer.name" = ["sgd", "adam"]
"model_args.batch_norm" = [false, true]
"""
CLAIM = """
[[claim]]
says = "batch norm helps, across optimizers"
factor = "{factor}"
better = "{better}"
than = "false"
"""
HEADER = '[study]\nname = "grid"\ndataset = "mnist"\nseeds = [0, 1, 2]\n'


def test_a_grid_alone_is_a_study_whose_points_are_named_by_their_settings(tmp_path, data_dir):
    body = GRID + CLAIM.format(factor="batch_norm", better="true")
    study = load_study(write_study(tmp_path, body, header=HEADER), data_dir=data_dir)
    assert study.variant_names == [
        "optimizer=sgd batch_norm=false", "optimizer=sgd batch_norm=true",
        "optimizer=adam batch_norm=false", "optimizer=adam batch_norm=true",
    ]  # fmt: skip
    (claim,) = study.claims
    assert claim.at == ("false", "true", "false", "true") and claim.levels == ("true", "false")
    factors = study.factors()
    assert factors["names"] == ["optimizer", "batch_norm"]
    assert factors["levels"] == {"optimizer": ["sgd", "adam"], "batch_norm": ["false", "true"]}


@pytest.mark.parametrize(
    ("factor", "better", "fragment"),
    [
        (
            "batchnorm",
            "true",
            "factor 'batchnorm' is not a [grid] key (did you mean 'batch_norm'?)",
        ),
        ("batch_norm", "yes", "'batch_norm' has no value 'yes'; its values: false, true"),
    ],
)
def test_a_main_effect_claim_off_the_grid_is_one_line(tmp_path, data_dir, factor, better, fragment):
    body = GRID + CLAIM.format(factor=factor, better=better)
    with pytest.raises(ConfigError) as caught:
        load_study(write_study(tmp_path, body, header=HEADER), data_dir=data_dir)
    assert fragment in str(caught.value)


@pytest.mark.slow
def test_a_factorial_study_reports_its_effects_and_its_main_effect_claim(
    tmp_path, data_dir, capsys
):
    body = GRID + CLAIM.format(factor="batch_norm", better="true")
    study = write_study(tmp_path, body, header=HEADER)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--workers", "1"]
    assert main(args) == 0
    printed = flat(capsys.readouterr().out)
    assert "analysis of variance: optimizer x batch_norm" in printed
    assert "optimizer x batch_norm" in printed and "residual (seeds)" in printed
    numbers = json.loads((out / "report.json").read_text())
    effects = {e["name"]: e for e in numbers["factorial"]["anova"]["effects"]}
    assert set(effects) == {"optimizer", "batch_norm", "optimizer x batch_norm"}
    (claim,) = numbers["claims"]
    assert claim["test"].startswith("main effect of batch_norm")
    assert "## Factorial analysis" in (out / "report.md").read_text()


def test_a_grid_names_its_points_by_a_template_claims_can_use(tmp_path, data_dir):
    named = GRID.replace("[grid]\n", '[grid]\nname = "{optimizer}+bn={batch_norm}"\n')
    study = load_study(write_study(tmp_path, named, header=HEADER), data_dir=data_dir)
    assert study.variant_names == ["sgd+bn=false", "sgd+bn=true", "adam+bn=false", "adam+bn=true"]
    bad = GRID.replace("[grid]\n", '[grid]\nname = "{opt}+{batch_norm}"\n')
    with pytest.raises(ConfigError) as caught:
        load_study(write_study(tmp_path / "bad", bad, header=HEADER), data_dir=data_dir)
    assert str(caught.value).count("\n") == 0  # one line, though every point met it
    assert "no field 'opt'; use {variant}, {optimizer}, {batch_norm}" in str(caught.value)
