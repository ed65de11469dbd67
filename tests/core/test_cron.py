"""Strict cron fields: what croniter accepts but changes the cadence is refused, naming the field."""

from __future__ import annotations

import copy

import pytest
import yaml
from croniter import croniter

from cryptorun_core.config import DEFAULT_CONFIG_PATH, ConfigError, parse_config
from cryptorun_core.cron import check_cron

VALID = [
    "*/15 * * * *", "0 */2 * * *", "0 */4 * * *", "0,30 * * * *", "10-50/10 * * * *", "0-59/59 * * * *",
    "0 9 * jan-mar mon-fri", "0 0 * * 7", "0 0 * * SUN", "5 4 31 1,3 *", "0 0 29 2 *", "0 0 30 2 1",
    "*/30 8-18 * * 1-5", "0 0 1 */3 *",
]
INVALID = [
    # (expression, words in the message); croniter.is_valid accepts every one of them
    ("*/61 * * * *", "minute step 61"),
    ("*/60 * * * *", "minute step 60"),
    ("0 */24 * * *", "hour step 24"),
    ("0-59/60 * * * *", "minute step 60"),
    ("0 0 1-31/32 * *", "day of month step 32"),
    ("30-10 * * * *", "must run upward"),
    ("5/10 * * * *", "needs '*' or a range"),
    ("0 0 L * *", "day of month 'L' is not a number"),
    ("0 0 1W * *", "day of month '1W' is not a number"),
    ("0 0 * * 1#2", "day of week item '1#2'"),
    ("0 0 ? * *", "day of month item '?'"),
    ("0 0 31 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
    ("*/15 * * * * 0", "6 fields"),
]
CRONITER_ALSO_REFUSES = [
    ("60 * * * *", "minute 60 is outside 0-59"),
    ("0 24 * * *", "hour 24 is outside 0-23"),
    ("0 0 0 * *", "day of month 0 is outside 1-31"),
    ("0 0 * 13 *", "month 13 is outside 1-12"),
    ("0 0 * * 8", "day of week 8 is outside 0-7"),
    ("*/0 * * * *", "minute step 0"),
    ("1,,2 * * * *", "minute item ''"),
    ("0 0 * foo *", "month 'foo' is not a number"),
    ("@hourly", "1 fields"),
]


@pytest.mark.parametrize("expression", VALID)
def test_portable_expressions_are_accepted(expression):
    check_cron(expression)
    assert croniter.is_valid(expression)


@pytest.mark.parametrize("expression,words", INVALID, ids=[i[0] for i in INVALID])
def test_croniter_leniencies_are_refused(expression, words):
    assert croniter.is_valid(expression)  # what the old check let through
    with pytest.raises(ValueError) as err:
        check_cron(expression)
    assert words in str(err.value)


@pytest.mark.parametrize("expression,words", CRONITER_ALSO_REFUSES, ids=[i[0] for i in CRONITER_ALSO_REFUSES])
def test_out_of_range_fields_name_the_field(expression, words):
    with pytest.raises(ValueError) as err:
        check_cron(expression)
    assert words in str(err.value)


@pytest.mark.parametrize("expression", ["*/61 * * * *", "30-10 * * * *", "0 0 31 2 *"])
def test_a_job_schedule_is_checked_strictly(expression):
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()))
    raw["jobs"][0]["schedule"] = expression
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == "jobs[scan.hot].schedule" and f"'{expression}' is not a valid 5-field cron expression" in str(err.value)
