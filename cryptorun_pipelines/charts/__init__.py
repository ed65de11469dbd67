"""Charts and badge tables attached to materialisations as metadata the Dagster UI renders.

* ``regime_weights``: :func:`regime_chart_metadata` — the three SPEC §6 indicators over the recent
  cycles with the vote bands shaded and each cycle's regime label.
* ``hot_signals``: :func:`hot_scan_chart_metadata` — the score of every evaluated symbol against the
  score gate (entries highlighted) and the gate-rejection breakdown, plus a badge table.
* every table asset: :func:`table_metadata` — the top rows as markdown with badges.

Rendering is cheap by construction (see ``render``): 640x300 px PNGs drawn directly with Pillow
(imported lazily, ≈ 20 ms; a chart takes a few ms); ``python -m cryptorun_pipelines.charts.measure``
measures it against real runs.
"""

from cryptorun_pipelines.charts.metadata import (
    EVALUATED_COLUMNS,
    PREMOVE_COLUMNS,
    SIGNAL_COLUMNS,
    WARM_COLUMNS,
    hot_scan_chart_metadata,
    regime_chart_metadata,
    table_metadata,
)
from cryptorun_pipelines.charts.tables import badge_table

__all__ = [
    "EVALUATED_COLUMNS",
    "PREMOVE_COLUMNS",
    "SIGNAL_COLUMNS",
    "WARM_COLUMNS",
    "badge_table",
    "hot_scan_chart_metadata",
    "regime_chart_metadata",
    "table_metadata",
]
