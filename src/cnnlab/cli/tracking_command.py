"""`cnnlab mlflow`: send a study's finished runs to an MLflow tracking store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.markup import escape

from cnnlab.cli.common import console
from cnnlab.errors import CnnlabError
from cnnlab.stats.formatting import counted

EPILOG = """\
examples:
  cnnlab mlflow runs/quick-fashion --tracking-uri sqlite:///mlflow.db
  mlflow ui --backend-store-uri sqlite:///mlflow.db     then browse the runs
  cnnlab mlflow runs/seed001 --tracking-uri http://127.0.0.1:5000 --experiment lenet-vs-mlp

Each finished run becomes one MLflow run: settings as params, every epoch's metrics
(step = epoch), summary figures, tags (study, variant, seed, cnnlab.run_id, provenance),
and curves.png, summary.json, metrics.csv, config.json as artifacts. Running it again
adds only runs not sent before (matched by cnnlab.run_id). MLflow's usage reporting is
turned off. For a local sqlite:/// store the artifacts go beside the database, in
mlartifacts/<experiment>.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mlflow",
        help="send a study's runs to MLflow (params, per-epoch metrics, tags, artifacts)",
        description="Log every finished run of a study (or of `cnnlab train` run folders) "
        "as an MLflow run. Needs mlflow: pip install -e '.[mlflow]'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "study_dir", type=Path, nargs="+", metavar="DIR",
        help="a study folder, a `cnnlab train` run folder, or a folder of them",
    )  # fmt: skip
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or None,
        metavar="URI",
        help="where MLflow keeps runs: sqlite:///path/mlflow.db, a folder, or http://host:port "
        "(default $MLFLOW_TRACKING_URI, as MLflow's own tools)",
    )
    p.add_argument("--experiment", help="MLflow experiment name (default: the study's name)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_mlflow)


def cmd_mlflow(args: argparse.Namespace) -> int:
    from cnnlab.analysis.mlflow_export import export_study
    from cnnlab.study.store.folders import load_any

    if not args.tracking_uri:
        raise CnnlabError(
            "where should the runs go? pass --tracking-uri (e.g. sqlite:///mlflow.db) or set "
            "$MLFLOW_TRACKING_URI"
        )
    results = load_any(args.study_dir)
    with console.status("sending runs to MLflow..."):
        done = export_study(results, args.tracking_uri, args.experiment)
    if not args.quiet:
        parts = [f"{counted(len(done.added) + len(done.redone), 'run')} sent"]
        if done.present:
            parts.append(f"{len(done.present)} already there")
        if done.redone:
            parts.append(f"{len(done.redone)} of them half-sent before, sent again")
        if done.not_done:
            parts.append(f"{len(done.not_done)} not finished, not sent")
        console.print(
            escape(
                f"{results.name}: {', '.join(parts)}; MLflow experiment '{done.experiment}' "
                f"(id {done.experiment_id}) at {args.tracking_uri}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    return 0
