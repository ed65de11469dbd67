"""Security: loopback by default, no writes outside artifacts_dir, credentials never leak.

(Safe YAML loading is proven in test_config_faults.py::test_yaml_is_loaded_safely.)
"""

from __future__ import annotations

import base64
import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import ccxt
import dagster as dg
import pytest

from cryptorun_core.artifacts import safe_join
from cryptorun_core.config import packaged_config
from cryptorun_core.market.ccxt_live import CcxtMarket
from cryptorun_pipelines.cli.main import build_parser
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager

from .conftest import HOT_FOLDER, HOT_KEY, REGIME_KEY, SPEC_HOT, failure_text, make_pipeline

CANARY_KEY = "CANARY-KEY-7e1f0c9a42"
CANARY_SECRET = "CANARY-SECRET-b83d55e0a1"


def echo_forms(value: str) -> list[str]:
    """How a venue may echo a credential: verbatim, URL-encoded, re-cased, base64, a prefix."""
    b64 = base64.b64encode(value.encode()).decode()
    return [value, quote(value, safe=""), value.upper(), value.lower(), b64, b64.rstrip("="), value[:10]]


# ------------------------------------------------------------------------------------------
# loopback


def test_start_binds_the_web_server_to_loopback_by_default(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cryptorun_pipelines.cli import supervisor
    from cryptorun_pipelines.cli.commands import schedule_start

    args = build_parser().parse_args(["schedule", "start"])
    assert args.host == "127.0.0.1"
    calls = []

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            calls.append((cmd, kwargs))
            self.pid = 424242 + len(calls)

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setattr(supervisor.subprocess, "Popen", FakePopen)
    start = schedule_start.Start(SimpleNamespace(config_path=None), tmp_path, args.host, args.port,
                                 args.stop_timeout, read_only=False)
    start.spawn_code_server()
    start.spawn_servers()
    code, daemon, web = (c[0] for c in calls)
    assert code[code.index("-h") + 1] == "127.0.0.1"  # the code server is always loopback only
    assert Path(daemon[0]).name == "dagster-daemon" and "-h" not in daemon  # the daemon listens on nothing
    assert Path(web[0]).name == "dagster-webserver"
    assert web[web.index("-h") + 1] == "127.0.0.1"
    assert start.base_url == "http://127.0.0.1:3000"
    # only an explicit --host widens it
    assert build_parser().parse_args(["schedule", "start", "--host", "0.0.0.0"]).host == "0.0.0.0"


# ------------------------------------------------------------------------------------------
# paths


EVIL = ["..", "../x", "../../etc/passwd", "a/../../b", "/etc/passwd", "//etc", "a/\x00b", "", "x/../../..", "~/../../x"]
FINE = ["2026-11-20T12-00-00Z", "signals.csv", "..hidden-but-inside", "odd name ü;$`&|", "a/b/c", "./x", "a/../b"]


@pytest.mark.parametrize("part", EVIL, ids=repr)
def test_safe_join_refuses_anything_outside_the_root(tmp_path, part):
    root = tmp_path / "artifacts"
    root.mkdir()
    try:
        got = safe_join(root, part)
    except ValueError:
        return
    assert got == root.resolve() or root.resolve() in got.parents, got  # "~" is not expanded: inside


@pytest.mark.parametrize("part", FINE, ids=repr)
def test_safe_join_keeps_odd_but_harmless_names_inside(tmp_path, part):
    root = tmp_path / "artifacts"
    root.mkdir()
    got = safe_join(root, part)
    assert root.resolve() in got.parents


def test_safe_join_does_not_follow_a_symlink_out(tmp_path):
    root = tmp_path / "artifacts"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError):
        safe_join(root, "escape", "signals.csv")


@pytest.mark.parametrize("key", ["../../../etc", "/etc/passwd", "2026-11-20-11:45/../../x", "2026-11-20-11:45\x00", "..", "2026-13-40-99:99"])
def test_bad_partition_keys_never_write_anything(pipeline, key):
    before = sorted(p for p in pipeline.root.rglob("*"))
    with pytest.raises(Exception):
        pipeline.run("scan_hot", key, raise_on_error=True)
    assert sorted(p for p in pipeline.root.rglob("*")) == before


def test_io_manager_paths_stay_under_the_roots(tmp_path):
    from datetime import datetime, timezone

    from cryptorun_core.config import DEFAULT_CONFIG_PATH
    from cryptorun_pipelines.resources import CryptoRunConfigResource

    io = ArtifactIOManager(config=CryptoRunConfigResource(config_path=str(DEFAULT_CONFIG_PATH), artifacts_dir=str(tmp_path / "art")))

    for name in ("hot_signals", "hot_explain", "regime_weights", "hot_snapshot", "universe_ranking"):
        for when in (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2026, 11, 20, 12, tzinfo=timezone.utc),
                     datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc)):
            path = io.path_for(name, when)
            assert (tmp_path / "art").resolve() in path.parents


def test_a_run_writes_only_under_artifacts_dir(tmp_path):
    p = make_pipeline(tmp_path)
    outside_before = {q for q in tmp_path.rglob("*") if p.artifacts not in q.parents and q != p.artifacts}
    assert p.run("regime_refresh", REGIME_KEY).success and p.run("scan_hot", HOT_KEY).success
    outside_after = {q for q in tmp_path.rglob("*") if p.artifacts not in q.parents and q != p.artifacts}
    assert outside_after == outside_before
    assert set(q.name for q in (p.artifacts / HOT_FOLDER).iterdir()) == SPEC_HOT | {"regime.json", ".sets"}


def test_a_pipeline_folder_linked_outside_artifacts_dir_is_refused(tmp_path):
    """`.pipeline` as a symlink to another folder: nothing is written through it (as for an as_of folder)."""
    p = make_pipeline(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    p.artifacts.mkdir(parents=True, exist_ok=True)
    (p.artifacts / ".pipeline").symlink_to(outside, target_is_directory=True)
    result = p.run("regime_refresh", REGIME_KEY)
    assert not result.success
    assert "resolves outside" in failure_text(result)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("symbol", ["../../evil/USD", "..", "/etc/passwd", "a\x00b/USD", "ÜBER;rm -rf/USD", ".hidden/USD"])
def test_venue_supplied_symbols_cannot_escape_the_bar_cache(tmp_path, symbol):
    market = CcxtMarket(("kraken",), packaged_config().market, ohlcv_cache_dir=tmp_path / "bars")
    try:
        market.exchange("kraken").timeout_on_exit = 0
        path = market._bars.path("kraken", symbol, "1h")
        assert (tmp_path / "bars").resolve() in path.parents and not path.name.startswith(".")
    finally:
        market.close()


# ------------------------------------------------------------------------------------------
# credentials: a canary end to end through a Dagster run with the ccxt source on fake venues


def test_credentials_canary_never_appears_in_logs_metadata_or_artifacts(tmp_path, monkeypatch, ccxt_fakes, caplog, capfd):
    """Values read with a trailing newline (``export X="$(cat file)"``), and venue errors that echo
    them in every form: no form reaches a log line, the event log, stderr or any written file."""
    import cryptorun_core.market.factory as factory

    for var, value in (("CR_CANARY_KRAKEN_KEY", CANARY_KEY), ("CR_CANARY_KRAKEN_SECRET", CANARY_SECRET),
                       ("CR_CANARY_OKX_KEY", CANARY_KEY), ("CR_CANARY_OKX_SECRET", CANARY_SECRET),
                       ("CR_CANARY_OKX_PASS", CANARY_SECRET)):
        monkeypatch.setenv(var, value + "\n")
    echoes = " ".join(echo_forms(CANARY_KEY) + echo_forms(CANARY_SECRET))

    def mutate(raw: dict) -> None:
        raw["market"]["source"] = "ccxt"
        raw["market"]["ccxt"]["api_key_env"] = {
            "kraken": "CR_CANARY_KRAKEN_KEY", "kraken.secret": "CR_CANARY_KRAKEN_SECRET",
            "okx": "CR_CANARY_OKX_KEY", "okx.secret": "CR_CANARY_OKX_SECRET", "okx.password": "CR_CANARY_OKX_PASS",
        }

    p = make_pipeline(tmp_path, mutate)
    now = ccxt_fakes.AS_OF + timedelta(seconds=30)
    built: list[CcxtMarket] = []

    def build(config, job=None):
        clock = ccxt_fakes.FakeClock()
        market = CcxtMarket.from_config(config, job, clock=clock, sleep=clock.sleep, now=lambda: now)
        for venue in market.venues:
            api = ccxt_fakes.FakeVenueAPI(venue, now)
            if venue == "okx":  # okx is down and its errors echo the key and secret
                api.fail("", lambda: ccxt.ExchangeNotAvailable(f"okx 50113 Invalid Sign for {echoes}"))
            if venue == "kraken":  # kraken's books fail with the key in the message
                api.fail("/Depth", lambda: ccxt.AuthenticationError(f"EAPI:Invalid key {echoes}"))
            market.exchange(venue).fetch = api.fetch
            market.exchange(venue).timeout_on_exit = 0
        built.append(market)
        return market

    monkeypatch.setattr(factory, "build_market_source", build)
    caplog.set_level(logging.DEBUG)
    instance = dg.DagsterInstance.ephemeral()
    results = [p.run("regime_refresh", REGIME_KEY, instance=instance), p.run("scan_hot", HOT_KEY, instance=instance)]
    for result in results:
        assert result.success, failure_text(result)
    assert built and built[0].exchange("kraken").apiKey == CANARY_KEY  # the keys did reach ccxt

    explain = json.loads((p.artifacts / HOT_FOLDER / "explain.json").read_text())
    assert explain["venue_health"]["okx"]["status"] == "down"
    assert "***" in explain["venue_health"]["okx"]["last_error"]  # the error is reported, redacted

    texts = [caplog.text, *capfd.readouterr()]
    for result in results:
        for record in instance.all_logs(result.run_id):
            texts.append(repr(record))
            if record.dagster_event is not None:
                texts.append(repr(record.dagster_event.event_specific_data))
    blob = "\n".join(texts)
    forms = echo_forms(CANARY_KEY) + echo_forms(CANARY_SECRET)
    assert blob and [f for f in forms if f in blob] == []
    for path in tmp_path.rglob("*"):  # artifacts, pipeline tables, snapshots, the bar cache, the config
        if path.is_file():
            data = path.read_bytes()
            assert [f for f in forms if f.encode() in data] == [], path
