"""The search's figures, drawn by Optuna's own matplotlib visualisations from the Optuna
storage in the study folder: the optimisation history, the parameters' importances and
a slice plot (the objective against each parameter)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.analysis.figures import Figure
from cnnlab.errors import CnnlabError

SEARCH_PREFIX = "report-search-"
FIG_HISTORY = SEARCH_PREFIX + "history.png"
FIG_IMPORTANCE = SEARCH_PREFIX + "importance.png"
FIG_SLICE = SEARCH_PREFIX + "slice.png"

_log = logging.getLogger(__name__)


def search_figures(study_dir: Path, name: str, objective: str, out_dir: Path) -> list[Figure]:
    """The figures of the search stored in ``study_dir`` (none without one, or without
    optuna); one that cannot be drawn (too few finished trials) is left out and logged."""
    from cnnlab.study.run.search import STORAGE, import_optuna

    storage = Path(study_dir) / STORAGE
    if not storage.is_file():
        return []
    try:
        optuna = import_optuna()
    except CnnlabError:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    from optuna.visualization import matplotlib as vis

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage.absolute()}")
    drawn = []
    searched = {key for trial in study.get_trials(deepcopy=False) for key in trial.params}
    for file, title, caption, draw in _FIGURES:
        if file == FIG_IMPORTANCE and len(searched) < 2:
            continue  # one setting explains all of the variation, by construction: no news
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks these as experimental
                axes = draw(vis, study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            _log.info("search figure %s left out: %s", file, exc)
            continue
        figure = _figure_of(axes)
        for ax in figure.axes[:-1] if file == FIG_SLICE else figure.axes:  # not the colour bar
            ax.tick_params(axis="x", labelrotation=30)
            if ax.get_xscale() == "log":  # decades only: minor labels run into each other
                ax.xaxis.set_minor_formatter(NullFormatter())
        # Not tight_layout: it cannot place the slice plot's colour bar.
        figure.savefig(out_dir / file, dpi=110, bbox_inches="tight")
        plt.close(figure)
        png = (out_dir / file).read_bytes()
        drawn.append(Figure(file, title, caption.format(objective=objective), png))
    return drawn


def _figure_of(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


_FIGURES: list[tuple[str, str, str, Callable[[Any, Any], Any]]] = [
    (
        FIG_HISTORY,
        "Search: optimisation history",
        "Each finished trial's {objective} on the validation split in the order Optuna "
        "proposed them, and the best so far (Optuna's plot_optimization_history).",
        lambda vis, study: vis.plot_optimization_history(study),
    ),
    (
        FIG_IMPORTANCE,
        "Search: parameter importances",
        "How much of the variation in {objective} across trials each searched setting "
        "explains (fANOVA, Optuna's plot_param_importances): where to search next, not a "
        "test of any setting.",
        lambda vis, study: vis.plot_param_importances(study),
    ),
    (
        FIG_SLICE,
        "Search: the objective against each setting",
        "Every finished trial's {objective} against the value it tried for each searched "
        "setting, coloured by trial number (Optuna's plot_slice).",
        lambda vis, study: vis.plot_slice(study),
    ),
]
