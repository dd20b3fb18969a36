"""Table-1-style formatting: a value with its bootstrap error in parentheses, e.g. 0.249(40)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def format_value(value: float, error: float, sig: int = 3, decimals: int | None = None) -> str:
    """Format ``value`` with ``error`` in units of its last shown digit: ``0.249(40)``.

    Args:
        value: the measured value.
        error: its (bootstrap) standard error, >= 0.
        sig: significant figures of ``value`` when ``decimals`` is None (the paper's BCD
            columns: 0.249(40), 1.37(50), 11.3(8)).
        decimals: fixed number of decimals instead (the paper's JSD columns use 4: 0.0036(4)).

    Non-finite values give ``"nan"``; a non-finite error gives the value alone.
    """
    if not math.isfinite(value):
        return "nan"
    if decimals is None:
        if value == 0:
            decimals = sig - 1
        else:
            decimals = max(0, sig - 1 - math.floor(math.log10(abs(value))))
        # rounding can add a digit (9.996 -> 10.0); recompute on the rounded value
        rounded = round(value, decimals)
        if rounded != 0:
            decimals = max(0, sig - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{value:.{decimals}f}"
    if error is None or not math.isfinite(error):
        return text
    if error < 0:
        raise ValueError(f"format_value: error must be >= 0, got {error}")
    return f"{text}({round(error * 10**decimals)})"


def format_table(
    rows: Mapping[str, Mapping[str, tuple[float, float] | Sequence[float]]],
    columns: Sequence[str],
    decimals: Mapping[str, int | None] | None = None,
    sig: int = 3,
    first_header: str = "model",
) -> str:
    """A markdown table like the paper's Table 1.

    Args:
        rows: ``{row name: {column: (value, error) or (observed, boot mean, boot std)}}``; a
            3-tuple is shown as observed(boot std).
        columns: column names in display order.
        decimals: optional fixed decimals per column (None = ``sig`` significant figures).
    """
    decimals = decimals or {}
    lines = [
        "| " + " | ".join([first_header, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, cells in rows.items():
        out = []
        for col in columns:
            cell = cells.get(col)
            if cell is None:
                out.append("")
                continue
            value, err = cell[0], cell[-1]
            out.append(format_value(value, err, sig=sig, decimals=decimals.get(col)))
        lines.append("| " + " | ".join([name, *out]) + " |")
    return "\n".join(lines)
