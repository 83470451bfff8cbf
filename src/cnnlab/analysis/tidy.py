"""Tidy tables for pandas, R or a spreadsheet: one row per run, one column per setting,
metric, time and provenance field (``cnnlab report DIR --format csv``); and one row per
epoch of every run, long format (``--format epochs-csv``). The rows are
:mod:`cnnlab.study.store.run_table`'; this writes them as CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from cnnlab.study.store.results import StudyResults
from cnnlab.study.store.run_table import epoch_rows, run_rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return buf.getvalue()


def runs_csv(results: StudyResults) -> str:
    return _csv(*run_rows(results.runs))


def epochs_csv(results: StudyResults) -> str:
    return _csv(*epoch_rows(results.name, results.runs))
