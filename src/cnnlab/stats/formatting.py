"""How numbers read in reports and tables: percentages, points, p-values, counts, times."""

from __future__ import annotations

from cnnlab import stats


def fmt_pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def fmt_pts(x: float | None, digits: int = 2) -> str:
    """A difference of accuracies in percentage points, signed."""
    return "—" if x is None else f"{100 * x:+.{digits}f}"


def fmt_p(p: float | None, alpha: float = stats.ALPHA) -> str:
    """Three significant digits, more when rounding would cross ``alpha`` (0.04996 -> 0.04996)."""
    if p is None:
        return "—"
    if p < 1e-4:
        return "<0.0001"
    text = f"{p:.3g}"
    if (float(text) < alpha) != (p < alpha):
        text = f"{p:.8g}"
    return text


def p_phrase(p: float | None) -> str:
    """ "p = 0.0123" or "p < 0.0001", for sentences."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "—"
    n = float(n)
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def counted(n: int, word: str) -> str:
    """ "1 epoch", "2 epochs": a count with its noun (regular plurals only)."""
    return f"{n} {word}{'' if n == 1 else 's'}"
