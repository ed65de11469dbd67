"""Loading config files (cryptorun_core.config.load_config): their text, YAML without duplicate
keys, ``extends:`` overlays, the environment overrides, validation into the models, and which file
(or environment variable) each key came from, so every error names both. Nothing here writes.

A file that starts with ``extends: <file>`` is an overlay: ``<file>`` (relative to the overlay's
folder, or absolute) is loaded first, then the overlay's keys are merged onto it. Chains are
allowed (an overlay may extend an overlay); a cycle is refused naming its files. Merging:

- mappings merge key by key, at any depth;
- ``jobs`` merge by ``name``: an entry with the name of an inherited job changes only the keys it
  gives (its ``config`` block merges too), an entry with a new name adds a job (complete, like
  any job), and ``{name: scan.warm, remove: true}`` removes an inherited job (``enabled: false``
  keeps it defined but unscheduled, which is usually what you want);
- every other value, lists included, replaces the inherited one.

A file without ``extends`` is complete: it sets every key (the models carry no defaults). A
relative path is relative to the project root of the file that set it (:func:`project_root`).
"""

from __future__ import annotations

import codecs
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import ValidationError

from cryptorun_core.config import (
    ARTIFACTS_DIR_ENV,
    DEFAULT_CONFIG_PATH,
    MARKET_SOURCE_ENV,
    AppConfig,
    ConfigError,
    InvalidAt,
)

EXTENDS = "extends"
REMOVE = "remove"
MAX_BYTES = 1 << 20  # configs are a few KB; a bigger "config" is some other file
MAX_VALUES = 100_000  # YAML values after aliases are expanded (nested aliases can explode)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Layer:
    """One source of settings, applied in order: a config file or an environment variable."""

    name: str  # the file's path, or "$VARIABLE"
    data: dict[str, Any]
    root: Path  # relative paths set here resolve against this folder


def project_root(folder: Path) -> Path:
    """Relative paths in a file are relative to the project root: the parent of a ``config``
    folder, else the file's own folder."""
    return folder.parent if folder.name == "config" else folder


# -- one file -------------------------------------------------------------------------------------


def _kind(mode: int) -> str | None:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "special file"


def _reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror[:1].lower() + strerror[1:] if strerror else str(exc)


def read_text(path: Path) -> str:
    """The text of the config file at ``path``; ConfigError at ``<file>`` naming it and what is
    wrong (missing, unreadable, not a regular file, too big, not UTF-8 text)."""
    unreadable = f"cannot read config file {path}"
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError("<file>", f"config file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError("<file>", f"{unreadable}: {_reason(exc)}") from None
    kind = _kind(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise ConfigError("<file>", f"{unreadable}: it is a {kind}, not a regular file")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise ConfigError("<file>", f"{unreadable}: {_reason(exc)}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError("<file>", f"{unreadable}: it is larger than {MAX_BYTES // 1024} KiB, too big for a config file")
    return _decode(data, unreadable)


def _decode(data: bytes, unreadable: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError("<file>", f"{unreadable}: it is UTF-16 (or UTF-32) text; save it as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError("<file>", f"{unreadable}: it holds a NUL byte at offset {nul} (binary, or UTF-16 text); "
                          "a config is UTF-8 text")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark (some Windows editors) is fine
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("<file>", f"{unreadable}: it is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})") from None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _item_label(node: yaml.Node, index: int) -> str:
    """A sequence item is named by its ``name`` (jobs, tiers), else by its index."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
                return value.value
    return str(index)


def _check_keys(root: yaml.Node, name: str) -> None:
    """Refuse a key given twice in one mapping (YAML would keep the last silently) and documents
    whose aliases expand beyond MAX_VALUES."""
    budget = MAX_VALUES
    queue: deque[tuple[yaml.Node, str]] = deque([(root, "")])  # breadth first: outer keys are reported first
    while queue:
        node, path = queue.popleft()
        budget -= 1
        if budget < 0:
            raise ConfigError("<yaml>", f"{name} expands to more than {MAX_VALUES} values (nested aliases?)")
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG:  # `<<: *anchor` merges on purpose
                    queue.append((value, path))
                    continue
                child = path
                if isinstance(key, yaml.ScalarNode):
                    child = _join(path, key.value)
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in lines:
                        first = lines[(key.tag, key.value)]
                        raise ConfigError(child, f"duplicate key: set on line {first} and again on line {line}; "
                                          f"keep one (in {name})")
                    lines[(key.tag, key.value)] = line
                queue.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                queue.append((item, f"{path}[{_item_label(item, index)}]"))


def parse_yaml(text: str, name: str) -> Any:
    """The YAML document of ``text`` (safe tags only, no duplicate keys); ConfigError otherwise."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("<yaml>", f"{name}:{where} is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise ConfigError("<yaml>", f"{name} is nested too deeply to be a config") from None
    finally:
        loader.dispose()


# -- the chain of files ---------------------------------------------------------------------------


def read_layers(path: Path) -> list[Layer]:
    """The file at ``path`` and the files it extends, base first."""
    layers: list[Layer] = []
    seen: list[Path] = []
    current, extended_by = path, None
    while True:
        real = Path(os.path.realpath(current))
        if real in seen:
            cycle = " → ".join(str(p) for p in [*seen[seen.index(real):], real])
            raise ConfigError(EXTENDS, f"files extend each other in a cycle: {cycle} (in {extended_by})")
        seen.append(real)
        try:
            data = parse_yaml(read_text(current), str(current))
        except ConfigError as exc:
            if extended_by is None or exc.key != "<file>":
                raise
            raise ConfigError(EXTENDS, f"{exc.message} (in {extended_by})") from None
        if not isinstance(data, dict):
            raise ConfigError("<root>", f"{current} must contain a mapping at the top level")
        data = dict(data)
        overlay = EXTENDS in data
        base = data.pop(EXTENDS, None)
        layers.append(Layer(str(current), data, project_root(current.parent)))
        if not overlay:
            return layers[::-1]
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(EXTENDS, f"must be the path of the file this one extends (got {base!r}) (in {current})")
        target = Path(base).expanduser()
        current, extended_by = (target if target.is_absolute() else current.parent / target), current


# -- merging --------------------------------------------------------------------------------------


def merge_mapping(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        inherited = out.get(key)
        out[key] = merge_mapping(inherited, value) if isinstance(value, dict) and isinstance(inherited, dict) else value
    return out


def _merge_jobs(base: Any, overlay: Any, layer: str) -> Any:
    if not isinstance(overlay, list):
        raise ConfigError("jobs", f"must be a list of job entries (in {layer})")
    if not isinstance(base, list):
        return overlay
    jobs = list(base)
    position = {job.get("name"): i for i, job in enumerate(jobs) if isinstance(job, dict)}
    names = []
    for index, entry in enumerate(overlay):
        if not isinstance(entry, dict):
            raise ConfigError(f"jobs[{index}]", f"a job entry must be a mapping (in {layer})")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"jobs[{index}].name", f"required key is missing: an overlay's job entry names the job "
                              f"it changes, adds or removes (in {layer})")
        names.append(name)
        if REMOVE in entry:
            if entry[REMOVE] is not True or set(entry) != {"name", REMOVE}:
                raise ConfigError(f"jobs[{name}].{REMOVE}", f"a removed job is written {{name: {name}, remove: true}} "
                                  f"and nothing else (in {layer})")
            if name not in position:
                raise ConfigError(f"jobs[{name}].{REMOVE}", f"there is no inherited job named '{name}' to remove (in {layer})")
            jobs[position[name]] = None
        elif name in position:
            jobs[position[name]] = merge_mapping(jobs[position[name]], entry)
        else:
            position[name] = len(jobs)
            jobs.append(entry)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError("jobs", f"duplicate job names: {dupes} (in {layer})")
    return [job for job in jobs if job is not None]


def _paths(data: Any, path: str = "") -> list[str]:
    """Key paths set by ``data``: every mapping key at any depth, job entries by name; other lists
    are one value (they replace)."""
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = _join(path, key)
            out.append(child)
            if child == "jobs" and isinstance(value, list):
                for index, entry in enumerate(value):
                    label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else index
                    out.append(f"jobs[{label}]")
                    out.extend(_paths(entry, f"jobs[{label}]"))
            else:
                out.extend(_paths(value, child))
    return out


class Origins:
    """Which layer set each key: errors name that file, relative paths resolve against its root."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers
        self._origin: dict[str, int] = {}
        for index, layer in enumerate(layers):
            paths = _paths(layer.data)
            if layer.name.startswith("$"):  # a variable sets one key, not the sections around it
                paths = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
            for path in paths:
                self._origin[path] = index

    @property
    def overlaid(self) -> bool:
        return len(self.layers) > 1

    def layer_of(self, key: str) -> Layer:
        """The last layer that set ``key`` or a key under it; else the one that set its nearest
        parent; else the file that was asked for."""
        probe = key
        while probe:
            hits = [i for p, i in self._origin.items() if p == probe or p.startswith((probe + ".", probe + "["))]
            if hits:
                return self.layers[max(hits)]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        files = [layer for layer in self.layers if not layer.name.startswith("$")]
        return files[-1] if files else self.layers[-1]

    def source_of(self, key: str) -> str:
        return self.layer_of(key).name


def merge_layers(layers: list[Layer]) -> tuple[dict[str, Any], Origins]:
    """The effective settings of ``layers`` (base first) and where each key came from."""
    merged: dict[str, Any] = dict(layers[0].data)
    for layer in layers[1:]:
        overlay = dict(layer.data)
        if "jobs" in overlay:
            merged["jobs"] = _merge_jobs(merged.get("jobs"), overlay.pop("jobs"), layer.name)
        merged = merge_mapping(merged, overlay)
    return merged, Origins(layers)


# -- validation -----------------------------------------------------------------------------------


def _format_loc(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """Turn a pydantic location into a readable key path, naming jobs by their name."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and 0 <= item < len(node):
                child = node[item]
                if isinstance(child, dict) and isinstance(child.get("name"), str):
                    label = child["name"]
                node = child
            else:
                node = None
            if parts:
                parts[-1] = f"{parts[-1]}[{label}]"
            else:
                parts.append(f"[{label}]")
            continue
        item = str(item)
        if item in ("function-after", "function-before", "function-wrap") or item.startswith(("list[", "tuple[", "dict[")):
            continue
        parts.append(item)
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "<root>"


def validate(raw: Any, source_of: Callable[[str], str], hint_missing: str = "") -> AppConfig:
    """``raw`` as an AppConfig, or ConfigError naming the first bad key and ``source_of`` it."""
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"{source_of('<root>')} must contain a mapping at the top level")
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_loc(tuple(err["loc"]), raw)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidAt):
            key = f"{key}{cause.subkey}" if cause.subkey.startswith("[") else f"{key}.{cause.subkey}"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing" + hint_missing
        msg = msg.removeprefix("Value error, ")
        raise ConfigError(key, f"{msg} (in {source_of(key)})") from None


def load(cfg_path: Path, environ: Mapping[str, str], check_artifacts_dir: bool) -> AppConfig:
    """cryptorun_core.config.load_config: the files, the environment overrides, then the checks."""
    layers = read_layers(cfg_path)
    root = project_root(cfg_path.parent)
    for env, key in ((ARTIFACTS_DIR_ENV, ("global", "artifacts_dir")), (MARKET_SOURCE_ENV, ("market", "source"))):
        if environ.get(env):
            layers.append(Layer(f"${env}", {key[0]: {key[1]: environ[env]}}, root))
    raw, origins = merge_layers(layers)
    hint = "" if origins.overlaid or cfg_path == DEFAULT_CONFIG_PATH else (
        f"; a config without 'extends:' sets every key (extend {DEFAULT_CONFIG_PATH} to inherit them)")
    config = _resolve_paths(validate(raw, origins.source_of, hint), origins)
    _check_replay_folder(config, origins)
    if check_artifacts_dir:
        problem = writable_dir_problem(config.global_.artifacts_dir)
        if problem:
            raise ConfigError("global.artifacts_dir", f"{problem} (in {origins.source_of('global.artifacts_dir')})")
    return config


def _resolve_paths(config: AppConfig, origins: Origins) -> AppConfig:
    """A relative path is relative to the project root of the file that set it (the config
    folder's parent, see config_files.project_root)."""

    def resolve(p: str, key: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else (origins.layer_of(key).root / path).resolve())

    glob = config.global_.model_copy(update={"artifacts_dir": resolve(config.global_.artifacts_dir, "global.artifacts_dir")})
    replay = config.market.replay.model_copy(update={"path": resolve(config.market.replay.path, "market.replay.path")})
    ccxt_cfg = config.market.ccxt.model_copy(
        update={"ohlcv_cache_dir": resolve(config.market.ccxt.ohlcv_cache_dir, "market.ccxt.ohlcv_cache_dir")}
    )
    record = config.market.record.model_copy(update={"folder": resolve(config.market.record.folder, "market.record.folder")})
    market = config.market.model_copy(update={"replay": replay, "ccxt": ccxt_cfg, "record": record})
    return config.model_copy(update={"global_": glob, "market": market})


def _check_replay_folder(config: AppConfig, origins: Origins) -> None:
    """With the replay source selected (by a file or $CRYPTORUN_MARKET_SOURCE), its folder must be
    a readable folder now, not at the first run."""
    if config.market.source != "replay":
        return
    folder = Path(config.market.replay.path)
    if not folder.is_dir():
        problem = f"replay folder {folder} " + ("is not a folder" if folder.exists() else "does not exist")
    elif not os.access(folder, os.R_OK | os.X_OK):
        problem = f"replay folder {folder} is not readable"
    else:
        return
    selected = origins.source_of("market.source")
    why = f"market.source is replay, set by {selected}" if selected.startswith("$") else "market.source is replay"
    raise ConfigError("market.replay.path", f"{problem} ({why}) (in {origins.source_of('market.replay.path')})")


def writable_dir_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the directory ``path`` could not be created or written, or None; creates nothing (the
    nearest existing ancestor must be a writable directory)."""
    target = Path(path)
    probe = target
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if probe == target:
        if not target.is_dir():
            return f"{target} is not a directory"
        if not os.access(target, os.W_OK | os.X_OK):
            return f"directory {target} is not writable"
        return None
    if not probe.is_dir():
        return f"cannot create directory {target}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot create directory {target}: {probe} is not writable"
    return None
