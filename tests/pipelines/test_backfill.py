"""A 30-day single-run regime backfill (180 partitions, one run) writes regime.json files identical,
byte for byte, to 180 separate runs — on replayed real daily history (../shared/data/real)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from .conftest import REPO, failure_text, make_pipeline

pytestmark = pytest.mark.usefixtures("clean_env")

REAL_DAILY = REPO.parent / "shared" / "data" / "real" / "daily"
SYMBOLS = ("BTC", "ETH", "XRP", "LTC", "ADA", "DOGE")
START, END = "2021-03-01-00:00", "2021-03-30-20:00"  # 30 days x 6 = 180 partitions

# Runs a list of partitions, one Dagster run each, on its own ephemeral instance.
SEPARATE_RUNS = textwrap.dedent(
    """
    import sys, dagster as dg
    from cryptorun_core.config import load_config
    from cryptorun_pipelines.build import build_definitions
    path, keys = sys.argv[1], sys.argv[2:]
    job = build_definitions(load_config(path), config_path=path).resolve_job_def("regime_refresh")
    instance = dg.DagsterInstance.ephemeral()
    for key in keys:
        assert job.execute_in_process(partition_key=key, instance=instance).success, key
    """
)


def replay_pipeline(root: Path, name: str):
    data = root / "replay"
    if not data.exists():
        data.mkdir(parents=True)
        for base in SYMBOLS:
            frame = pd.read_csv(REAL_DAILY / f"{base}-USD.csv")
            frame[(frame["timestamp"] >= "2020-12-01") & (frame["timestamp"] < "2021-04-01")].to_csv(data / f"{base}-USD.csv", index=False)

    def replay(raw):
        raw["global"]["partitions_start"] = "2021-01-01T00:00:00Z"
        raw["market"]["source"] = "replay"
        raw["market"]["replay"] = {"path": str(data), "resolution": "1d", "venue": "kraken"}
        raw["market"]["venues"] = ["kraken"]
        raw["market"]["microstructure_sources"] = ["kraken"]
        for job in raw["jobs"]:
            job["config"]["venues"] = ["kraken"]

    return make_pipeline(root / name, replay)


@pytest.fixture
def fast_tmp(tmp_path):
    """A tmpfs folder when there is one: 360 runs x 3 atomic (fsync'ed) writes are I/O bound on disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="cryptorun-backfill-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not REAL_DAILY.is_dir(), reason="../shared/data/real/daily not available")
def test_single_run_backfill_equals_separate_runs(fast_tmp):
    tmp_path = fast_tmp
    single = replay_pipeline(tmp_path, "single")
    keys = single.defs.resolve_job_def("regime_refresh").partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(START, END))
    assert len(keys) == 180

    # separate runs: two worker processes (one run per partition each), started first
    separate = replay_pipeline(tmp_path, "separate")
    script = tmp_path / "separate_runs.py"
    script.write_text(SEPARATE_RUNS)
    workers = [
        subprocess.Popen([sys.executable, str(script), str(separate.config_path), *keys[i::2]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(2)
    ]

    # the single-run backfill: one run over the whole range (BackfillPolicy.single_run)
    result = single.defs.resolve_job_def("regime_refresh").execute_in_process(
        instance=single.instance,
        tags={"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END},
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    runs = single.instance.get_runs()
    assert len(runs) == 1
    assert single.instance.get_materialized_partitions(dg.AssetKey("regime_weights")) == set(keys)
    # each partition's materialisation carries its own numbers, not the last partition's
    records = single.instance.fetch_materializations(dg.AssetKey("regime_weights"), limit=1000).records
    meta = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert set(meta) == set(keys)

    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err.decode()[-3000:]

    a = sorted(single.artifacts.glob("*/regime.json"))
    b = sorted(separate.artifacts.glob("*/regime.json"))
    assert len(a) == len(b) == 180
    assert [p.parent.name for p in a] == [p.parent.name for p in b]
    different = [p.parent.name for p, q in zip(a, b) if p.read_bytes() != q.read_bytes()]
    assert different == []
    labels = {pd.read_json(p, typ="series")["regime"] for p in a}
    assert labels <= {"calm", "normal", "volatile"}
    for path in a:
        regime = json.loads(path.read_text())
        own = meta[regime["partition_key"]]
        assert own["regime"].value == regime["regime"] and own["regime_confidence"].value == regime["confidence"]
        assert own["realized_vol_7d"].value == regime["indicators"]["realized_vol_7d"]
        assert own["regime_partition"].value == regime["partition_key"]
        assert "duration_s" not in own  # the run's time is the run's, not a partition's
        # the chart of the cycles up to it, on the newest partition only
        assert ("regime_chart" in own) == (regime["partition_key"] == max(keys)), regime["partition_key"]
    assert len({m["regime_confidence"].value for m in meta.values()}) > 1
