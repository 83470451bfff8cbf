"""A study's search phase: Optuna proposes, cnnlab trains, the best are confirmed.

Each trial is an ordinary run (its own run folder, rows in the study's store, the run
id of its settings) of the baseline variant's settings with the trial's values, on a
seed of its own (10000 + the sampler's seed) that no confirmation run uses. Optuna
only proposes and prunes: its RDB storage lives in the study folder
(``search.sqlite3``), so ``cnnlab run`` again after a kill continues where the search
stopped: finished trials are kept, a trial the kill cut short is asked again with the
same values (so its run resumes from its checkpoint), and the search ends at the
number of trials the file asks for. Each epoch's objective goes to the pruner, which
may stop a hopeless trial (status ``pruned``) before its last epoch.

Trials are a feed of runs (``SearchFeed``, ask-and-tell) that any executor drives: one
after another in process, several at once on Ray.

The winners (the ``top`` best trials by their final objective) become variants named
``search #1`` ... and are trained over the confirmation seeds beside the study's own
variants, like any study: the test set is looked at once, there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.config.identity import identity_hash, run_identity
from cnnlab.config.schema import TrainConfig
from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow
from cnnlab.study.plan.expand import format_value, scaled_config, scaled_epochs, set_dotted
from cnnlab.study.plan.search_table import Dimension, SearchSpec
from cnnlab.study.plan.study_plan import PlannedRun, Round, Study, Variant
from cnnlab.study.run.executor import Executor
from cnnlab.study.run.study_progress import StudyProgress
from cnnlab.study.store.database import Store

STORAGE = "search.sqlite3"
INSTALL_HINT = "pip install -e '.[search]' (or pip install optuna)"
ZERO = " is 0"  # the switch of a log_uniform dimension that may be exactly 0
TRIAL_SEED_BASE = 10_000
CUT = "cnnlab_cut_by_a_kill"  # user attribute of a trial a killed process left running


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise CnnlabError(f"a [search] needs the optuna package: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # cnnlab prints the progress
    return optuna


def distributions(space: tuple[Dimension, ...]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for d in space:
        if d.form == "choices":
            out[d.key] = CategoricalDistribution(list(d.choices))
        elif d.form == "int":
            out[d.key] = IntDistribution(int(d.low), int(d.high))
        else:
            out[d.key] = FloatDistribution(d.low, d.high, log=d.form == "log_uniform")
            if d.zero:
                out[d.key + ZERO] = CategoricalDistribution([False, True])
    return out


def setting_values(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's params -> the settings they stand for (a zero switch turned into 0)."""
    out = {k: v for k, v in params.items() if not k.endswith(ZERO)}
    for key, is_zero in params.items():
        if key.endswith(ZERO) and is_zero:
            out[key.removesuffix(ZERO)] = 0.0
    return out


def make_sampler(optuna: Any, spec: SearchSpec, trials_before: int = 0) -> Any:
    """The sampler, seeded by the [search] seed plus the number of trials already in the
    storage: an uninterrupted search is reproducible, and one resumed after a kill does
    not draw its first proposals again (a fresh generator with the same seed would)."""
    seed = spec.seed + trials_before
    if spec.sampler == "grid":
        grid = {d.key: list(d.choices) for d in spec.space}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna: Any, spec: SearchSpec, epochs: int) -> Any:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs))
    return optuna.pruners.NopPruner()


def prune_reason(trial: Any, objective: str, row: EpochRow, epochs: int) -> str | None:
    """Report ``row``'s objective to the trial; why its pruner stops it, or None. Never
    after the last epoch: a trial that ran to its end is complete, and its objective
    counts among the trials' (a pruner asked there would throw that result away)."""
    value = row.get(objective)
    if value is None:
        return None
    trial.report(float(value), row.epoch)
    if row.epoch < epochs and trial.should_prune():
        return f"pruned after epoch {row.epoch}: {objective} {value:.4f}"
    return None


@dataclass
class Trials:
    """What the search found: the finished trials (number, params, objective, state)."""

    finished: list[dict[str, Any]]

    def best(self, spec: SearchSpec, top: int) -> list[dict[str, Any]]:
        done = [t for t in self.finished if t["state"] == "complete" and t["objective"] is not None]
        done.sort(key=lambda t: t["objective"], reverse=spec.maximize)
        chosen: list[dict[str, Any]] = []
        for t in done:
            if all(t["params"] != c["params"] for c in chosen):
                chosen.append(t)
        return chosen[:top]


def trial_seed(study: Study) -> int:
    """The seed every trial trains with: one that no confirmation run uses, so that the
    winners are confirmed on fresh draws (the lucky draw that made a trial win does not
    count again in its favour)."""
    assert study.search is not None
    seed = TRIAL_SEED_BASE + study.search.seed
    if seed in study.seeds:
        raise CnnlabError(
            f"{study.path}: seed {seed} is the search trials' own (10000 + [search] seed); "
            "confirm on other seeds"
        )
    return seed


def trial_run(
    study: Study, base: dict[str, Any], params: dict[str, Any], number: int, out_dir: Path
) -> PlannedRun:
    from cnnlab.config.identity import slugify
    from cnnlab.models.registry import resolve_model

    settings = base
    for key, value in setting_values(params).items():
        settings = set_dotted(settings, key, value)
    seed = trial_seed(study)
    cfg = TrainConfig.model_validate(dict(settings, dataset=study.dataset, seed=seed))
    scale = study.options.get("epochs_scale")
    if scale is not None:
        cfg = scaled_config(cfg, scale)
    identity = run_identity(
        cfg.model_dump(mode="json"),
        resolve_model(cfg.model, cfg.model_args).model_dump(mode="json"),
    )
    digest = identity_hash(identity)
    name = f"trial {number}"
    return PlannedRun(
        run_id=digest[:16], config_hash=digest, variant=name, seed=seed, config=cfg,
        run_dir=out_dir / "runs" / f"{slugify(name)}-s{seed}-{digest[:8]}", identity=identity,
    )  # fmt: skip


def run_search(
    study: Study,
    out_dir: Path,
    store: Store,
    executor: Executor,
    progress: StudyProgress,
    record: Any,
) -> Trials:
    """Train the trials not done yet (``record(extra_runs)`` registers a trial's run with
    the store); return every finished trial."""
    spec = study.search
    assert spec is not None
    optuna = import_optuna()
    base = next(v.settings for v in study.variants if v.name == study.baseline)
    epochs = int(base.get("epochs") or TrainConfig.model_fields["epochs"].default)
    storage = optuna.storages.RDBStorage(f"sqlite:///{Path(out_dir).absolute() / STORAGE}")
    search = optuna.create_study(
        storage=storage, study_name=study.name, load_if_exists=True,
        sampler=make_sampler(optuna, spec), pruner=make_pruner(optuna, spec, epochs),
        direction="maximize" if spec.maximize else "minimize",
    )  # fmt: skip
    search.sampler = make_sampler(optuna, spec, len(search.get_trials(deepcopy=False)))
    states = optuna.trial.TrialState
    recorded = {t["number"]: t for t in store.trials()}
    for cut in search.get_trials(deepcopy=False, states=(states.RUNNING,)):
        storage.set_trial_user_attr(cut._trial_id, CUT, True)  # killed mid-trial: not counted
        storage.set_trial_state_values(cut._trial_id, states.FAIL)
        search.enqueue_trial(cut.params, skip_if_exists=False)  # asked again: it resumes
        if (entry := recorded.get(cut.number)) is not None:  # same settings, same run
            store.record_trial(cut.number, entry["run_id"], entry["params"], "cut", None)
    limit = spec.trials
    if spec.sampler == "grid":
        limit = min(limit, _grid_size(spec))
    source = TrialSource(search, study, base, out_dir, store, record, limit)
    scale = study.options.get("epochs_scale")
    trial_epochs = epochs if scale is None else scaled_epochs(epochs, scale)
    # At most this many epochs: the pruner's stops shorten it as they happen.
    progress.begin(limit, source.ended(), (limit - source.ended()) * trial_epochs)
    executor.run_feed(SearchFeed(source), store, progress)  # as many at once as it has workers
    return Trials([t for t in store.trials() if t["state"] not in ("running", "cut")])


class TrialSource:
    """Asks Optuna for trials, as ordinary runs, and tells it how each one ended."""

    def __init__(
        self, search: Any, study: Study, base: dict[str, Any], out_dir: Path, store: Store,
        record: Any, limit: int,
    ) -> None:  # fmt: skip
        assert study.search is not None
        self.search, self.study, self.spec = search, study, study.search
        self.base, self.out_dir, self.store, self.record = base, out_dir, store, record
        self.limit, self.space = limit, distributions(self.spec.space)
        self.states = import_optuna().trial.TrialState

    def ended(self) -> int:
        """Trials that count towards the number asked: a failed one counts (or a search
        whose every trial fails would never stop), one cut by a kill does not."""
        done = (self.states.COMPLETE, self.states.PRUNED, self.states.FAIL)
        trials = self.search.get_trials(deepcopy=False, states=done)
        return sum(not t.user_attrs.get(CUT) for t in trials)

    def ask(self) -> tuple[Any, PlannedRun, dict[str, Any]]:
        trial = self.search.ask(self.space)
        run = trial_run(self.study, self.base, trial.params, trial.number, self.out_dir)
        self.record([run])
        values = setting_values(trial.params)
        self.store.record_trial(trial.number, run.run_id, values, "running", None)
        return trial, run, values

    def conclude(self, trial: Any, run: PlannedRun, values: dict[str, Any]) -> None:
        store, states = self.store, self.states
        status = store.statuses().get(run.run_id)
        value = _final_objective(store, run.run_id, self.spec.objective)
        if status == "done" and value is not None:
            _tell(self.search, trial, values=value)
            store.record_trial(trial.number, run.run_id, values, "complete", value)
        elif status == "pruned":
            _tell(self.search, trial, state=states.PRUNED)
            store.record_trial(trial.number, run.run_id, values, "pruned", value)
        else:  # failed, or done without the objective
            _tell(self.search, trial, state=states.FAIL)
            store.record_trial(trial.number, run.run_id, values, "failed", None)


class SearchFeed:
    """The trials as a Ray driver's feed: a new trial whenever a worker is free and the
    trials asked are not all running or ended; each epoch judged by the trial's pruner.
    With several trials at once, what the sampler proposes and the pruner compares
    depend on which trials have ended by then, as in any parallel Optuna search."""

    def __init__(self, source: TrialSource) -> None:
        self.source = source
        self.running: dict[str, tuple[Any, PlannedRun, dict[str, Any]]] = {}
        self.retry: list[PlannedRun] = []

    def size(self) -> int:
        return max(0, self.source.limit - self.source.ended())

    def next_run(self) -> PlannedRun | None:
        if self.retry:
            return self.retry.pop(0)
        if self.source.ended() + len(self.running) >= self.source.limit:
            return None
        trial, run, values = self.source.ask()
        self.running[run.run_id] = (trial, run, values)
        return run

    def again(self, run: PlannedRun) -> None:
        self.retry.append(run)

    def judges(self, run: PlannedRun) -> bool:
        return run.run_id in self.running

    def judge(self, run_id: str, row: EpochRow) -> str | None:
        trial, run, _ = self.running[run_id]
        return prune_reason(trial, self.source.spec.objective, row, run.config.epochs)

    def ended(self, run: PlannedRun) -> None:
        trial, _, values = self.running.pop(run.run_id)
        self.source.conclude(trial, run, values)


def _tell(search: Any, trial: Any, **outcome: Any) -> None:
    """``search.tell``, where the grid sampler's request to stop is not an error: once its
    grid is used up it calls ``Study.stop``, which works only inside ``optimize``. The
    trial is told all the same (optuna writes its state in a ``finally``), and the loop
    here ends by its own count."""
    try:
        search.tell(trial, **outcome)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _grid_size(spec: SearchSpec) -> int:
    size = 1
    for d in spec.space:
        size *= len(d.choices)
    return size


def _final_objective(store: Store, run_id: str, objective: str) -> float | None:
    row = store.conn.execute(
        f"SELECT {objective} FROM epochs WHERE run_id = ? ORDER BY epoch DESC LIMIT 1", (run_id,)
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def winners_round(study: Study, trials: Trials) -> Round:
    """The round a finished search grows the plan by: its best trials as variants
    "search #1" ... over the study's seeds (any whose settings are a variant's already, the
    baseline found again, is left out), with what the report tells of the search."""
    spec = study.search
    assert spec is not None
    base = next(v.settings for v in study.variants if v.name == study.baseline)
    variants: list[Variant] = []
    described: dict[str, str] = {}
    for t in trials.best(spec, spec.confirm_top):
        settings = base
        for key, value in t["params"].items():
            settings = set_dotted(settings, key, value)
        if any(v.settings == settings for v in [*study.variants, *variants]):
            continue
        name = f"search #{len(described) + 1}"
        own = frozenset(k.split(".")[0] for k in t["params"])
        variants.append(Variant(name=name, base=study.baseline, settings=settings, own=own))
        values = ", ".join(f"{k}={format_value(v)}" for k, v in t["params"].items())
        described[name] = f"trial {t['number']}: {values}"
    facts = {
        "objective": spec.objective, "sampler": spec.sampler, "pruner": spec.pruner,
        "trials": spec.trials, "winners": described,
    }  # fmt: skip
    reason = f"the {len(variants)} best of {spec.trials} search trials by {spec.objective}"
    return Round(kind="search", reason=reason, variants=tuple(variants), facts=facts)
