"""SPEC §3: the microstructure and market code cannot import an aggregator client (static check)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "cryptorun_core"
BANNED = ("pycoingecko", "coingecko", "coinmarketcap", "cryptocompare", "messari", "coinpaprika", "nomics", "coinapi",
          "dexscreener")
# the ban *checkers* of cryptorun_core.config may be imported: they refuse aggregators
ALLOWED = {"cryptorun_core.config.is_aggregator", "cryptorun_core.config.AGGREGATOR_IDS", "cryptorun_core.config.AGGREGATOR_FRAGMENTS"}
FILES = [ROOT / "microstructure.py", *sorted((ROOT / "market").glob("*.py"))]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names.append(mod)
            names.extend(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("__import__", "import_module"):
            names.extend(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_aggregator_client_imported(path):
    for name in _imports(path):
        if name in ALLOWED:
            continue
        low = name.lower()
        assert not any(b in low for b in BANNED), f"{path.name} imports aggregator client {name!r}"
        assert "aggregat" not in low, f"{path.name} imports {name!r}"


def test_microstructure_imports_only_numpy_pandas_stdlib_config_and_timefmt():
    import sys

    allowed_third = {"numpy", "pandas"}
    for name in _imports(ROOT / "microstructure.py"):
        top = name.split(".")[0]
        if top == "cryptorun_core":
            # config, and the time module (a leaf: it imports nothing of CryptoRun)
            assert name.startswith(("cryptorun_core.config", "cryptorun_core.timefmt")), name
        elif top == "__future__":
            continue
        else:
            assert top in allowed_third or top in sys.stdlib_module_names, name


def test_checker_catches_a_banned_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pycoingecko import CoinGeckoAPI\nimport my_aggregator_client\n")
    names = _imports(bad)
    assert any("pycoingecko" in n for n in names) and any("aggregat" in n for n in names)
