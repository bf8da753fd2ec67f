"""Sizes in bytes as people read them: one rule for the whole app (Models page, picker, CLI,
fit estimates, download messages)."""

from __future__ import annotations


def human_size(size: float) -> str:
    """Powers of 1000, as disks and the Hub count: 812 B, 45 kB, 253 MB, 4.9 GB, 1.2 TB.

    Whole numbers below a gigabyte; one decimal from there, where quantizations of one model
    differ by a few hundred megabytes.
    """
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if abs(value) < 1000:
            return f"{value:.0f} {unit}"
        value /= 1000
    if abs(value) < 1000:
        return f"{value:.1f} GB"
    return f"{value / 1000:.1f} TB"
