"""[search]: Optuna proposes, every trial is a run, the winners are confirmed over seeds."""

from __future__ import annotations

import json
import sqlite3

import pytest

from cnnlab.cli.app import main
from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.runner import record_study
from cnnlab.study.store.database import Store, load_results

pytest.importorskip("optuna")

STUDY = """\
[study]
name = "search-demo"
dataset = "mnist"
seeds = [0]
baseline = "default"
[defaults]
data_dir = "{data_dir}"
model = "mlp"
epochs = 1
val_fraction = 0.2
optimizer = {{ name = "adam", lr = 1e-3 }}
[[variant]]
name = "default"
[search]
trials = {trials}
sampler = "random"
seed = 0
pruner = "none"
[search.space]
"optimizer.lr" = {{ log_uniform = [1e-4, 3e-2] }}
batch_size = {{ choices = [32, 64] }}
[search.confirm]
top = 1
seeds = [0, 1]
"""


def write(tmp_path, data_dir, trials=3, extra=""):
    path = tmp_path / "search.toml"
    path.write_text(STUDY.format(data_dir=data_dir, trials=trials) + extra)
    return path


def problems_of(tmp_path, data_dir, text):
    path = tmp_path / "bad.toml"
    path.write_text(text.format(data_dir=data_dir))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    return str(err.value)


def test_a_search_table_is_checked_key_by_key(tmp_path, data_dir):
    base = STUDY.split("[search]")[0].replace("val_fraction = 0.2\n", "")
    text = base.replace("{trials}", "3") + (
        '[search]\ntrials = 3\nobjective = "test_acc"\nsampler = "grid"\n'
        '[search.space]\n"optimizer.lrr" = {{ uniform = [0.1, 0.2] }}\n'
        '"optimizer.momentum" = {{ log_uniform = [0, 0.9] }}\n'
        "batch_size = {{ uniform = [32, 64], choices = [1] }}\n"
        "epochs = {{ int = [0, 3] }}\n"
        '"optimizer.weight_decay" = {{ uniform = [0, 0.01] }}\n'
    )
    message = problems_of(tmp_path, data_dir, text)
    assert "objective 'test_acc' would choose on the test set" in message
    assert "set val_fraction (e.g. 0.1)" in message
    assert "unknown setting 'optimizer.lrr' (did you mean 'optimizer.lr'?)" in message
    assert "'optimizer.momentum': log_uniform needs low > 0" in message
    assert "'batch_size' needs exactly one of log_uniform, uniform, int, choices" in message
    assert "'epochs' = 0: Input should be greater than or equal to 1" in message
    assert "sampler 'grid' needs choices" in message
    assert all(line.strip().startswith(str(tmp_path)) for line in message.splitlines()[1:])


@pytest.mark.slow
def test_trials_are_runs_and_the_winner_is_confirmed_over_seeds(tmp_path, data_dir, capsys):
    study = write(tmp_path, data_dir)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    with Store(out) as store:
        trials = store.trials()
    assert [t["state"] for t in trials] == ["complete"] * 3
    assert {t["params"]["batch_size"] for t in trials} <= {32, 64}
    assert all(0 <= t["objective"] <= 1 for t in trials)
    results = load_results(out)
    assert results.variants == ["default", "search #1"]
    assert sorted((r.variant, r.seed) for r in results.runs) == [
        ("default", 0), ("default", 1), ("search #1", 0), ("search #1", 1)
    ]  # fmt: skip
    best = max(trials, key=lambda t: t["objective"])
    winner = next(r for r in results.runs if r.variant == "search #1")
    assert winner.config["optimizer"]["lr"] == pytest.approx(best["params"]["optimizer.lr"])
    md = (out / "report.md").read_text()
    assert "## Search" in md and "over 2 seeds" in md
    assert "search found " in md and "optimizer.lr=" in md
    assert "3 of 3 trials: 3 complete, 0 pruned, 0 failed" in md
    html = (out / "report.html").read_text()
    assert 'id="search"' in html
    # Optuna's own figures, in the Search section (before the variants), inside the HTML.
    for name, title in (("history", "optimisation history"), ("slice", "against each setting")):
        assert (out / f"report-search-{name}.png").stat().st_size > 5000
        assert title in html.split('id="variants"')[0]
        assert f"report-search-{name}.png" in md.split("## Variants")[0]
    assert html.count("data:image/png;base64,") >= 3
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0  # all done: nothing new
    with sqlite3.connect(out / "search.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 3


@pytest.mark.slow
def test_a_killed_search_continues_to_the_number_of_trials_asked(tmp_path, data_dir, monkeypatch):
    from cnnlab.study.run.executor import InProcessExecutor

    study = write(tmp_path, data_dir, trials=3)
    out = tmp_path / "out"
    real = InProcessExecutor.run_one
    calls = []

    def killed_on_the_second(self, run, store, progress):
        calls.append(run.run_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill mid-trial leaves it: running in Optuna
        return real(self, run, store, progress)

    monkeypatch.setattr(InProcessExecutor, "run_one", killed_on_the_second)
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 130
    monkeypatch.setattr(InProcessExecutor, "run_one", real)
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    with Store(out) as store:
        done = [t for t in store.trials() if t["state"] == "complete"]
    assert len(done) == 3
    assert calls[1] in {t["run_id"] for t in done}  # the cut trial was asked again


class Hopeless:
    """A trial whose pruner stops it whenever it is asked."""

    def __init__(self) -> None:
        self.reported: list[tuple[float, int]] = []

    def report(self, value, step):
        self.reported.append((value, step))

    def should_prune(self):
        return True


def trial_with_pruner(tmp_path, data_dir, trial, epochs: int) -> tuple[str, str | None]:
    """One search trial of ``epochs`` epochs, its pruner ``trial``: (status, error)."""
    from cnnlab.study.run.events import ListFeed
    from cnnlab.study.run.executor import InProcessExecutor
    from cnnlab.study.run.search import prune_reason, trial_run
    from cnnlab.study.run.study_progress import QuietStudyProgress

    class Judged(ListFeed):  # the run's epochs go to ``trial``'s pruner, as a search's do
        def judges(self, run):
            return True

        def judge(self, run_id, row):
            return prune_reason(trial, "val_acc", row, epochs)

    study = load_study(write(tmp_path, data_dir))
    out = tmp_path / "out"
    base = {**study.variants[0].settings, "epochs": epochs}
    run = trial_run(study, base, {"optimizer.lr": 1e-3, "batch_size": 32}, 0, out)
    with Store(out) as store:
        record_study(store, study, study.plan(out), [run])
        InProcessExecutor().run_feed(Judged([run]), store, QuietStudyProgress())
        return store.conn.execute(
            "SELECT status, error FROM runs WHERE run_id = ?", (run.run_id,)
        ).fetchone()


def test_a_pruned_trial_is_recorded_as_pruned(tmp_path, data_dir):
    status, error = trial_with_pruner(tmp_path, data_dir, Hopeless(), epochs=2)
    assert status == "pruned" and error.startswith("pruned after epoch 1: val_acc")


def test_a_trial_that_reached_its_last_epoch_is_complete_whatever_its_pruner_says(
    tmp_path, data_dir
):
    trial = Hopeless()
    status, _ = trial_with_pruner(tmp_path, data_dir, trial, epochs=1)
    assert status == "done" and [step for _, step in trial.reported] == [1]


def test_without_optuna_a_search_is_one_line(tmp_path, data_dir, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)
    study = write(tmp_path, data_dir)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs the optuna package: pip install -e '.[search]'" in err


def test_a_search_whose_trials_all_fail_stops_at_the_number_asked(tmp_path, data_dir, capsys):
    study = write(tmp_path, data_dir, trials=2)
    # Batches larger than the 480 training images: every trial fails when it starts.
    study.write_text(study.read_text().replace("choices = [32, 64]", "choices = [5000, 6000]"))
    code = main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--no-report"])
    with Store(tmp_path / "out") as store:
        states = [t["state"] for t in store.trials()]
    assert states == ["failed", "failed"]  # without counting failures it would never end
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1  # nothing finished, so nothing was confirmed: scripts must see it
    assert "2 of 2 search trials failed (trial 0, 1)" in err
    assert "no search trial finished, so nothing was confirmed" in err


def test_some_failed_trials_are_said_and_the_search_still_confirms(tmp_path, data_dir, capsys):
    study = write(tmp_path, data_dir, trials=2)
    text = study.read_text().replace('sampler = "random"', 'sampler = "grid"')
    text = text.replace('"optimizer.lr" = { log_uniform = [1e-4, 3e-2] }\n', "")
    study.write_text(text.replace("choices = [32, 64]", "choices = [32, 5000]"))  # 5000 fails
    code = main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--no-report"])
    with Store(tmp_path / "out") as store:
        states = sorted(t["state"] for t in store.trials())
    assert states == ["complete", "failed"]
    err = " ".join(capsys.readouterr().err.split())
    assert "1 of 2 search trials failed" in err and "the search counted them and went on" in err
    assert code == 0  # a diverging or impossible setting is a finding of the search


@pytest.mark.slow
def test_a_search_killed_by_sigkill_ends_with_exactly_the_trials_asked(tmp_path, data_dir):
    from test_kill_points import killed_at

    study = write(tmp_path, data_dir, trials=3)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--quiet", "--no-report"]
    # Killed at the second trial's checkpoint: Optuna holds it as running, the store too.
    assert killed_at("checkpoint@2", args, tmp_path / "killed.log") == -9
    with Store(out) as store:
        assert [t["state"] for t in store.trials()] == ["complete", "running"]
    assert main(args) == 0
    with Store(out) as store:
        trials = store.trials()
        statuses = store.statuses()
    # The cut trial is asked again as a new one with its settings, whose run resumes.
    assert [t["state"] for t in trials] == ["complete", "cut", "complete", "complete"]
    done = [t for t in trials if t["state"] == "complete"]
    assert len({t["run_id"] for t in done}) == 3  # none lost, none twice
    assert trials[1]["run_id"] in {t["run_id"] for t in done}
    assert all(statuses[t["run_id"]] == "done" for t in done)
    with sqlite3.connect(out / "search.sqlite3") as conn:
        states = [s for (s,) in conn.execute("SELECT state FROM trials ORDER BY number")]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1  # the cut one, not counted


@pytest.mark.parametrize(("keys", "importance"), [(("lr",), False), (("lr", "wd"), True)])
def test_parameter_importances_are_drawn_only_when_there_is_a_choice(tmp_path, keys, importance):
    optuna = pytest.importorskip("optuna")
    from cnnlab.analysis.search_figures import FIG_IMPORTANCE, search_figures
    from cnnlab.study.run.search import STORAGE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / STORAGE}"
    search = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    space = {k: optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True) for k in keys}
    for i in range(6):
        trial = search.ask(space)
        search.tell(trial, sum(trial.params.values()) + i * 1e-3)
    drawn = [f.file for f in search_figures(tmp_path, "s", "val_acc", tmp_path)]
    assert (FIG_IMPORTANCE in drawn) is importance
    assert len(drawn) == 2 + importance  # the history and the slice plot, always


@pytest.mark.slow
def test_a_kill_between_a_rounds_record_and_its_first_run_resumes_the_same_runs(
    tmp_path, data_dir, monkeypatch
):
    """The search's winners are a round of the plan: stored with the study before any of
    their runs starts, so a rerun after a kill there plans the same runs without searching
    again, and ends with the numbers of an uninterrupted study."""
    from fresh import run_cnnlab

    study = write(tmp_path, data_dir)
    out, whole = tmp_path / "out", tmp_path / "whole"
    killed = run_cnnlab(
        ["run", str(study), "--out", str(out), "--quiet"], env={"CNNLAB_KILL_AT": "round-recorded"}
    )
    assert killed.returncode == -9, killed.stderr
    with sqlite3.connect(out / "study.sqlite") as conn:
        (plan_json,) = conn.execute("SELECT plan_json FROM studies ORDER BY id DESC").fetchone()
        started = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE variant = 'search #1' AND status != 'pending'"
        ).fetchone()[0]
    (round_,) = json.loads(plan_json)["rounds"]
    assert round_["kind"] == "search" and [v["name"] for v in round_["variants"]] == ["search #1"]
    assert started == 0  # recorded, none of its runs begun

    assert main(["run", str(study), "--out", str(whole), "--quiet"]) == 0
    from cnnlab.study.run import search

    monkeypatch.setattr(search, "run_search", lambda *a, **k: pytest.fail("searched again"))
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0  # the stored round
    resumed, uninterrupted = load_results(out), load_results(whole)
    assert resumed.variants == uninterrupted.variants == ["default", "search #1"]
    assert resumed.options["search"] == uninterrupted.options["search"]
    finals = {r.run_id: r.final_test_acc for r in uninterrupted.runs}
    assert {r.run_id: r.final_test_acc for r in resumed.runs} == finals
    assert all(r.status == "done" for r in resumed.runs)


def test_a_round_makes_a_new_plan_and_leaves_the_old_one_as_it_was(tmp_path, data_dir):
    from cnnlab.study.plan.study_file import Round, Variant, add_round

    study = load_study(write(tmp_path, data_dir))
    base = study.variants[0]
    wider = Variant(
        "wider", base.name, {**base.settings, "batch_size": 16}, frozenset({"batch_size"})
    )
    grown = add_round(study, Round("search", "one better setting", (wider,), {"trials": 3}))
    assert study.variant_names == ["default"] and study.rounds == ()  # unchanged
    assert grown.variant_names == ["default", "wider"] and grown.options["search"] == {"trials": 3}
    assert [r.variant for r in grown.plan(tmp_path)] == ["default"] * 2 + ["wider"] * 2
    assert grown.configs[("wider", 1)].batch_size == 16
    assert grown.stored()["rounds"][0]["variants"][0]["name"] == "wider"
    with pytest.raises(ConfigError, match="adds 'wider' twice"):
        add_round(grown, Round("search", "again", (wider,)))
    same = Variant("same", base.name, dict(base.settings))
    with pytest.raises(ConfigError, match="exactly the same settings"):
        add_round(study, Round("search", "the baseline found again", (same,)))


def search_with_trial_1_pruned(executor, data_dir, tmp_path, monkeypatch):
    """A 4-trial search of 2 epochs on ``executor``, its pruner told to stop trial 1 after
    its first epoch: (the study folder, trials by number, epochs stored per run id)."""
    from cnnlab.study.run.runner import run_study
    from cnnlab.study.run.search import SearchFeed

    path = tmp_path / "search.toml"
    path.write_text(STUDY.format(data_dir=data_dir, trials=4).replace("epochs = 1", "epochs = 2"))
    judged = SearchFeed.judge

    def judge(self, run_id, row):
        verdict = judged(self, run_id, row)
        return "pruned by the test" if self.running[run_id][0].number == 1 else verdict

    monkeypatch.setattr(SearchFeed, "judge", judge)
    out = tmp_path / "out"
    run_study(load_study(path), out, executor=executor)
    with Store(out) as store:
        trials = {t["number"]: t for t in store.trials()}
        epochs = dict(store.conn.execute("SELECT run_id, COUNT(*) FROM epochs GROUP BY run_id"))
    return out, trials, epochs
