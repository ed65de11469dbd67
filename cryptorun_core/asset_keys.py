"""Every asset's key, declared once (the registry in :mod:`cryptorun_core.artifacts`, the Dagster
assets, checks, jobs and the CLI all import them from here).

Dagster labels a lineage node with the key's last part and cuts it in the middle (``hot_mark…_snapshot``)
beyond :data:`NODE_LABEL_MAX` characters when the graph is zoomed out to fit (31 zoomed in), so every
name here is at most that long and unique on its own, without a key prefix: a prefix would give the hot
and warm nodes the same label.
"""

UNIVERSE_RANKING = "universe_ranking"
REGIME_INDICATORS = "regime_indicators"
REGIME_WEIGHTS = "regime_weights"
HOT_SNAPSHOT = "hot_snapshot"
HOT_SIGNALS = "hot_signals"
HOT_PREMOVE = "hot_premove"
HOT_EXPLAIN = "hot_explain"
WARM_SNAPSHOT = "warm_snapshot"
WARM_SIGNALS = "warm_signals"

#: the market snapshot asset of each scan segment
SNAPSHOT = {"hot": HOT_SNAPSHOT, "warm": WARM_SNAPSHOT}
#: the longest label Dagster's zoomed-out lineage node shows whole
NODE_LABEL_MAX = 18

#: signal evaluation (issue #17): uses data after T, read by no scan asset
SIGNAL_EVALUATION = "signal_evaluation"
