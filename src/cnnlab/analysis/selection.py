"""Picking the best variant without fooling oneself.

Choosing the variant with the highest final TEST accuracy and then quoting that accuracy
reuses the test set for selection: the figure is optimistic. When every variant with
finished runs measured a validation split (``val_fraction > 0``), the best variant is the
one with the highest mean final validation accuracy, and its test accuracy stays an
honest estimate. Otherwise (the seed studies' protocol has no validation split) the
choice is made on the test set and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

VALIDATION = "validation"
TEST = "test"


def best_variant(
    test_means: Mapping[str, float | None], val_values: Mapping[str, Sequence[float | None]]
) -> tuple[str | None, str | None]:
    """(name, "validation" or "test") of the best variant; (None, None) with no runs."""
    ran = [v for v, mean in test_means.items() if mean is not None]
    if not ran:
        return None, None
    if all(val_values.get(v) and all(x is not None for x in val_values[v]) for v in ran):
        return max(ran, key=lambda v: float(np.mean(val_values[v]))), VALIDATION
    return max(ran, key=lambda v: test_means[v] or 0.0), TEST


def peeking_figures(chosen_by: str | None) -> list[str]:
    """The report's figures that were picked by looking at the test set."""
    out = ["the best-epoch test accuracy (its epoch is the one with the highest test accuracy)"]
    if chosen_by == TEST:
        out.append(
            "the best variant and the predictions shown for it (picked by final test accuracy: "
            "the study has no validation split)"
        )
    return out
