"""What every command gets: the loaded config, output streams, colour policy and the header."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from cryptorun_core.config import CONFIG_PATH_ENV, AppConfig, JobConfig, load_config, resolve_config_path
from cryptorun_pipelines.cli.errors import UsageError
from cryptorun_pipelines.cli.header import Header, build_header, render_header
from cryptorun_pipelines.cli.render import Style, colour_enabled

if TYPE_CHECKING:  # pragma: no cover
    from cryptorun_pipelines.partitions import Cadences


@dataclass
class Context:
    config: AppConfig
    config_path: str  # the file ``config`` was loaded from (absolute)
    json: bool = False
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    style: Style = field(default_factory=Style)
    cadences: "Cadences | None" = None  # partitions and jobs of ``config`` (built once, in create)
    _header: Header | None = None

    @classmethod
    def create(cls, config_path: str | None, *, json_output: bool = False, no_color: bool = False) -> "Context":
        path = resolve_config_path(config_path)
        if config_path:
            # the Dagster processes `schedule start` spawns load the code location themselves: the
            # exported path makes them read the same file
            os.environ[CONFIG_PATH_ENV] = str(path)
        config = load_config(path)
        # the checks only the definitions make (partitions_start on every schedule's tick, one scan
        # job per segment): a config the code location would refuse is a config error here too (exit 2)
        from cryptorun_pipelines.partitions import build_cadences

        cadences = build_cadences(config)
        style = Style(colour=(not no_color) and (not json_output) and colour_enabled(sys.stdout))
        return cls(config=config, config_path=str(path), json=json_output, style=style, cadences=cadences)

    @property
    def tty(self) -> bool:
        return colour_enabled(self.out, environ={}) if not self.json else False

    def job(self, name: str) -> JobConfig:
        try:
            return self.config.job(name)
        except KeyError:
            known = ", ".join(j.name for j in self.config.jobs)
            raise UsageError(f"unknown job '{name}' (known: {known})") from None

    def header(self, refresh: bool = False) -> Header:
        if self._header is None or refresh:
            self._header = build_header(self.config.global_.artifacts_dir, self.config.market.venues)
        return self._header

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def print_header(self, refresh: bool = False) -> None:
        for line in render_header(self.header(refresh), self.style):
            self.print(line)
        self.print()

    def emit_json(self, payload: dict[str, Any]) -> None:
        json.dump(payload, self.out, indent=2, sort_keys=True, default=str, ensure_ascii=False)
        self.out.write("\n")
