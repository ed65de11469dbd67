"""UTC time-window partitions of the three cadences and the point-in-time mappings between them.

A partition's key is its window START (Dagster's convention, ``%Y-%m-%d-%H:%M``); its as-of time T
is the window END (SPEC §1): the 15-minute partition ``2026-11-27-11:45`` is the cycle at 12:00.

Each cadence comes from its job's cron string in ``config/scheduler.yaml`` (``*/15 * * * *``,
``0 */2 * * *``, ``0 */4 * * *``), so the schedule and the partitions can never disagree.

No lookahead. A scan cycle at T may only read a regime/universe partition whose own as-of time is
at or before T (SPEC §1), and it reads the *latest* such one. With the regime cadence U and the
scan cadence d (U a multiple of d, every regime tick also a scan tick), the latest upstream
window closed at T is the one containing ``T − U``. The downstream window ``[S, S + d)`` (T = S + d)
shifted by ``k = 1 − U/d`` downstream partitions is ``[T − U, T − U + d)``, which lies inside
exactly that upstream window, so ``TimeWindowPartitionMapping(start_offset=k, end_offset=k)``:

* 15 min ← 4 h: ``k = −15``. Cycle 11:30 (T 11:45) → regime 04:00 (T 08:00);
  cycle 11:45 (T 12:00) → regime 08:00 (T 12:00, closed exactly at T); cycle 12:00 (T 12:15) → 08:00.
* 2 h ← 4 h: ``k = −1``. Cycle 10:00 (T 12:00) → 08:00; cycle 08:00 (T 10:00) → 04:00.

(``k = −U/d`` — i.e. −16 / −2 — would be "one full window back": never lookahead either, but at
the cycle that lands exactly on a regime boundary it reads a regime 4 h older than the one that
closed at T.) Dagster's default overlap mapping (``k = 0``) reads the window still open at T.
``tests/pipelines/test_partitions.py`` checks all of this against Dagster's own mapping code.

Scan partitions start at the first cycle for which a closed regime window exists
(``partitions_start + U − d``), so every scan partition has an upstream.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping

import dagster as dg
from croniter import croniter

from cryptorun_core.config import AppConfig, ConfigError, JobConfig
from cryptorun_core.timefmt import UTC, iso_minutes

PARTITION_FMT = "%Y-%m-%d-%H:%M"
#: the key formats of this project's partitions, as a user writes them: the cadences' and the
#: daily evaluation's (``DailyPartitionsDefinition``)
KEY_FORMS = {PARTITION_FMT: "YYYY-MM-DD-HH:MM", "%Y-%m-%d": "YYYY-MM-DD"}


def cadence_of(job: JobConfig) -> timedelta:
    """The fixed interval of a job's cron string (:func:`cron_interval`), or ConfigError when the
    ticks are irregular: ``*/15 * * * *`` → 15 min, ``0 */4 * * *`` → 4 h; ``*/7 * * * *`` (…, :49,
    :56, :00) is refused because a time window partition needs a constant width here."""
    try:
        return cron_interval(job.schedule)
    except ValueError as exc:
        raise ConfigError(f"jobs[{job.name}].schedule", str(exc)) from None


@functools.lru_cache(maxsize=None)
def cron_interval(schedule: str) -> timedelta:
    """The constant interval between consecutive ticks of ``schedule``; ValueError when it has none.

    Memoised on the string (a pure function of it; walking the ticks costs ~8 ms for
    ``*/15 * * * *`` and definitions, CLI commands and every partition's as-of time need it). With
    day-of-month and month ``*`` the tick pattern repeats every day (every week when day-of-week is
    set), so checking two days (eight) of ticks, boundaries included, proves the interval constant;
    a day-of-month, month or n-th-weekday-of-the-month field (``5#3``, ``L5``) makes the width vary
    with the month and is refused.
    """
    cron = croniter(schedule)
    fields = cron.expanded
    if fields[2] != ["*"] or fields[3] != ["*"] or cron.nth_weekday_of_month:
        raise ValueError(
            f"'{schedule}' sets the day of month, the month or an n-th weekday of the month, so its windows "
            "vary in width; partitions need fixed-width windows"
        )
    base = datetime(2026, 1, 1, tzinfo=UTC)
    it = croniter(schedule, base)
    ticks = [it.get_next(datetime) for _ in range(2)]
    step = ticks[1] - ticks[0]
    it = croniter(schedule, base)
    horizon = base + timedelta(days=2 if fields[4] == ["*"] else 8)
    prev = it.get_next(datetime)
    while prev < horizon:
        nxt = it.get_next(datetime)
        if nxt - prev != step:
            raise ValueError(
                f"'{schedule}' does not tick at a constant interval ({prev:%H:%M} → {nxt:%H:%M} vs {step}); "
                "partitions need fixed-width windows"
            )
        prev = nxt
    return step


@dataclass(frozen=True)
class Cadences:
    """The three jobs of a config (regime refresh, hot scan, warm scan) and their partitions."""

    regime_job: JobConfig
    hot_job: JobConfig | None
    warm_job: JobConfig | None
    regime: dg.TimeWindowPartitionsDefinition
    hot: dg.TimeWindowPartitionsDefinition | None
    warm: dg.TimeWindowPartitionsDefinition | None
    regime_step: timedelta
    hot_step: timedelta | None
    warm_step: timedelta | None

    def scan_offset(self, segment: str) -> int:
        """The start/end offset (in scan partitions) of the mapping scan → regime/universe."""
        step = self.hot_step if segment == "hot" else self.warm_step
        assert step is not None
        return 1 - int(self.regime_step / step)

    def scan_mapping(self, segment: str) -> dg.TimeWindowPartitionMapping:
        k = self.scan_offset(segment)
        return dg.TimeWindowPartitionMapping(start_offset=k, end_offset=k)

    def partitions_for_job(self, job_name: str) -> dg.TimeWindowPartitionsDefinition:
        for job, pdef in ((self.regime_job, self.regime), (self.hot_job, self.hot), (self.warm_job, self.warm)):
            if job is not None and job_name in (job.name, job.dagster_name):
                assert pdef is not None
                return pdef
        raise KeyError(f"no partitioned job named '{job_name}'")


def segment_sizes(cadences: Cadences) -> tuple[int, int]:
    """(hot, warm) segment sizes of the ranking: each scan job's ``max_sample`` (0 without that job)."""
    hot = cadences.hot_job.config.max_sample if cadences.hot_job else 0
    warm = cadences.warm_job.config.max_sample if cadences.warm_job else 0
    return hot, warm


def find_jobs(config: AppConfig) -> tuple[JobConfig, JobConfig | None, JobConfig | None]:
    """(regime job, hot scan job, warm scan job) of the config; exactly one regime job is required."""
    regimes = [j for j in config.jobs if j.type == "regime"]
    if len(regimes) != 1:
        raise ConfigError("jobs", f"exactly one job of type 'regime' is required (found {len(regimes)})")
    scans: dict[str, JobConfig] = {}
    for job in config.jobs:
        if job.type != "scan":
            continue
        seg = job.config.universe
        if seg not in ("hot", "warm"):
            raise ConfigError(f"jobs[{job.name}].config.universe", "a scan job scans the 'hot' or the 'warm' segment")
        if seg in scans:
            raise ConfigError(f"jobs[{job.name}].config.universe", f"two scan jobs scan the '{seg}' segment")
        scans[seg] = job
    return regimes[0], scans.get("hot"), scans.get("warm")


def build_cadences(config: AppConfig) -> Cadences:
    regime_job, hot_job, warm_job = find_jobs(config)
    start = config.global_.partitions_start
    regime_step = cadence_of(regime_job)
    regime = dg.TimeWindowPartitionsDefinition(
        cron_schedule=regime_job.schedule, start=start, fmt=PARTITION_FMT, timezone="UTC"
    )
    if not croniter.match(regime_job.schedule, start):
        raise ConfigError("global.partitions_start", f"{start:%Y-%m-%d %H:%M} is not a tick of jobs[{regime_job.name}].schedule")

    def scan(job: JobConfig | None) -> tuple[dg.TimeWindowPartitionsDefinition | None, timedelta | None]:
        if job is None:
            return None, None
        step = cadence_of(job)
        if regime_step % step or step > regime_step:
            raise ConfigError(
                f"jobs[{job.name}].schedule",
                f"its interval {step} must divide the regime interval {regime_step} (jobs[{regime_job.name}].schedule)",
            )
        if not croniter.match(job.schedule, start):
            raise ConfigError(f"jobs[{job.name}].schedule", f"does not tick at global.partitions_start {start:%Y-%m-%d %H:%M}")
        first = start + regime_step - step  # first cycle whose T has a closed regime window
        pdef = dg.TimeWindowPartitionsDefinition(cron_schedule=job.schedule, start=first, fmt=PARTITION_FMT, timezone="UTC")
        return pdef, step

    hot, hot_step = scan(hot_job)
    warm, warm_step = scan(warm_job)
    return Cadences(regime_job, hot_job, warm_job, regime, hot, warm, regime_step, hot_step, warm_step)


# ------------------------------------------------------------------------------------------
# key <-> time helpers (pure; the tests check them against Dagster's mapping)
# ------------------------------------------------------------------------------------------


def parse_key(partition_key: str, fmt: str = PARTITION_FMT) -> datetime:
    """A partition key's window start (UTC); ValueError when it is not a ``fmt`` key."""
    return datetime.strptime(partition_key, fmt).replace(tzinfo=UTC)


def format_key(start: datetime, fmt: str = PARTITION_FMT) -> str:
    return start.astimezone(UTC).strftime(fmt)


def partition_interval(partitions_def: dg.TimeWindowPartitionsDefinition) -> timedelta:
    """The width of every window of a partitions definition of this project (UTC, keys in one of
    :data:`KEY_FORMS`, a fixed-interval cron — :func:`build_cadences` and the evaluation make only those)."""
    if partitions_def.fmt not in KEY_FORMS or str(partitions_def.timezone) != "UTC":
        raise ValueError(f"expected UTC partitions keyed {' or '.join(map(repr, KEY_FORMS))}, "
                         f"got {partitions_def.timezone} / {partitions_def.fmt!r}")
    return cron_interval(partitions_def.cron_schedule)


def as_of_for_key(partitions_def: dg.TimeWindowPartitionsDefinition, partition_key: str) -> datetime:
    """T of a partition = its window end (SPEC §1) = key time + the fixed interval.

    Arithmetic rather than Dagster's ``time_window_for_partition_key`` (~2 ms: it walks the cron):
    the IO manager and the assets ask for every partition of a backfill."""
    return parse_key(partition_key) + partition_interval(partitions_def)


def is_partition_key(partitions_def: dg.TimeWindowPartitionsDefinition, partition_key: str, last_key: str) -> bool:
    """``partition_key`` is a key of ``partitions_def`` no later than ``last_key`` (itself a key):
    canonically formatted, on a tick (a whole number of intervals after the first partition), not
    before the first partition. Arithmetic for Dagster's ``has_partition_key`` (~3 ms a call)."""
    try:
        start = parse_key(partition_key)
    except ValueError:
        return False
    first = partitions_def.start.astimezone(UTC)
    return (
        format_key(start) == partition_key
        and first <= start <= parse_key(last_key)
        and (start - first) % partition_interval(partitions_def) == timedelta(0)
    )


def latest_closed_key(partitions_def: dg.TimeWindowPartitionsDefinition, now: datetime | None = None) -> str | None:
    """The partition whose window ended most recently at or before ``now`` (default: the current time)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = croniter(partitions_def.cron_schedule, now + timedelta(seconds=1)).get_prev(datetime)
    start = croniter(partitions_def.cron_schedule, end).get_prev(datetime)
    if start < partitions_def.start.astimezone(UTC):
        return None
    return format_key(start, partitions_def.fmt)


def upstream_key(cadences: Cadences, segment: str, scan_key: str) -> str:
    """The regime/universe partition a scan partition reads: the latest one closed at the scan's T."""
    pdef = cadences.hot if segment == "hot" else cadences.warm
    assert pdef is not None
    t = as_of_for_key(pdef, scan_key)
    key = latest_closed_key(cadences.regime, t)
    if key is None:
        raise ValueError(f"no regime partition has closed by {t:%Y-%m-%d %H:%M} (scan partition {scan_key})")
    return key


# ------------------------------------------------------------------------------------------
# which keys a run may fill (Dagster runs any tag it is given: the project checks)
# ------------------------------------------------------------------------------------------

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partition_key_problem(
    partitions_def: dg.TimeWindowPartitionsDefinition, partition_key: str, now: datetime, *, job: str = "this job",
    settle: timedelta = timedelta(0),
) -> str | None:
    """Why ``partition_key`` is not a closed partition of ``partitions_def`` at ``now`` (one
    sentence naming the key and the nearest valid keys), or None when it is one.

    Refused: a malformed key, a key off the cron's ticks, before the first partition, and a window
    that has not closed by ``now`` (its as-of time T, the window end, is in the future: the run
    would read data that does not exist yet). ``settle``: how long after its window a partition
    still reads new data (the evaluation's forward returns); it is closed only once that is past."""
    step, fmt = partition_interval(partitions_def), partitions_def.fmt
    first = partitions_def.start.astimezone(UTC)
    latest = latest_closed_key(partitions_def, now - settle)
    example = latest or format_key(first, fmt)
    try:
        start = parse_key(partition_key, fmt)
    except (TypeError, ValueError):
        return f"'{partition_key}' is not a partition key of {job}: keys are window starts written {KEY_FORMS[fmt]} (UTC), e.g. {example}"
    if format_key(start, fmt) != partition_key:
        return f"'{partition_key}' is not a partition key of {job}: write it {format_key(start, fmt)}"
    if start < first:
        return f"'{partition_key}' is before the first partition of {job}, {format_key(first, fmt)}"
    offset = (start - first) % step
    if offset:
        before = start - offset
        return (f"'{partition_key}' is not a partition of {job} (one every {_interval(step)} from {format_key(first, fmt)}): "
                f"the nearest are {format_key(before, fmt)} and {format_key(before + step, fmt)}")
    end = start + step
    now = now.astimezone(UTC)
    latest_text = f"; the latest closed partition is {latest}" if latest else ""
    if end > now:
        state = "is still open" if start <= now else "is in the future"
        return (f"partition {partition_key} of {job} {state} (its window ends {iso_minutes(end)}, "
                f"now {iso_minutes(now)}){latest_text}")
    if end + settle > now:
        return (f"partition {partition_key} of {job} is not final yet: it reads data up to {_interval(settle)} after its "
                f"window, which ends {iso_minutes(end)}, so it can run from {iso_minutes(end + settle)} "
                f"(now {iso_minutes(now)}){latest_text}")
    return None


def _interval(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def run_partition_problem(
    partitions_def: dg.TimeWindowPartitionsDefinition, tags: Mapping[str, str], now: datetime, *, job: str = "this job",
    settle: timedelta = timedelta(0),
) -> str | None:
    """Why the partition tags of a run of a job partitioned by ``partitions_def`` are not a valid
    request at ``now`` (one sentence), or None: exactly one key (``dagster/partition``) or one
    range (both ``dagster/asset_partition_range_start`` and ``…_end``), every key a closed
    partition (:func:`partition_key_problem`, with ``settle``), a range not inverted."""
    key, start, end = tags.get(PARTITION_TAG), tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if key is not None and (start is not None or end is not None):
        return f"a run of {job} fills one partition ({PARTITION_TAG}) or one range ({RANGE_START_TAG}/_end), not both"
    if key is not None:
        return partition_key_problem(partitions_def, key, now, job=job, settle=settle)
    if start is None and end is None:
        latest = latest_closed_key(partitions_def, now - settle)
        return (f"{job} is partitioned: give the partition it fills with the tag {PARTITION_TAG}"
                + (f" (e.g. {latest}, the latest closed one)" if latest else ""))
    if start is None or end is None:
        return f"a partition range of {job} needs both {RANGE_START_TAG} and {RANGE_END_TAG}"
    for edge in (start, end):
        problem = partition_key_problem(partitions_def, edge, now, job=job, settle=settle)
        if problem:
            return "range: " + problem
    if parse_key(start, partitions_def.fmt) > parse_key(end, partitions_def.fmt):
        return f"the range of {job} is inverted: start {start} is after end {end}"
    return None
