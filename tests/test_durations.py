"""Durations, times of day, absolute times and time zones as users write them (SPEC §2.3)."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.definitions.durations import (
    WEEKDAYS,
    format_duration,
    parse_duration,
    parse_instant,
    parse_time_of_day,
    parse_timezone,
)
from sluice.engine.timing import visitor_zone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("P2D", timedelta(days=2)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P1W", timedelta(weeks=1)),
        ("PT1H30M15S", timedelta(hours=1, minutes=30, seconds=15)),
        ("-3d", timedelta(days=-3)),
        ("-PT2H", timedelta(hours=-2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_durations_in_every_documented_form_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 days", "invalid duration '2 days' (use 2d)"),
        ("3 Hours", "invalid duration '3 Hours' (use 3h)"),
        ("2D", "invalid duration '2D' (use 2d)"),
        ("1.5h", "invalid duration '1.5h' (use 1h30m)"),
        ("5", "invalid duration '5' (add a unit: 5s, 5m, 5h, 5d or 5w)"),
        ("P1M", "invalid duration 'P1M' (months and years vary in length; use days or weeks)"),
        ("soon", "invalid duration 'soon' (use e.g. 30s, 15m, 2h, 3d, 1w or ISO 8601 such as P2D)"),
    ],
)
def test_an_invalid_duration_says_how_to_write_it(text, message):
    with pytest.raises(ValueError) as excinfo:
        parse_duration(text)
    assert str(excinfo.value) == message


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "d", "1x"])
def test_malformed_or_absurd_durations_are_rejected(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=2), "2d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=14), "14d"),
        (timedelta(days=-3), "-3d"),
        (timedelta(0), "0s"),
        (timedelta(days=1, seconds=5), "1d5s"),
    ],
)
def test_format_duration_is_compact(delta, text):
    assert format_duration(delta) == text


_compact = st.builds(
    lambda sign, n, unit: f"{sign}{n}{unit}",
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=500),  # 500w is within the 10-year limit
    st.sampled_from("smhdw"),
)
_iso = st.builds(
    lambda sign, d, h, m, s: f"{sign}P{d}DT{h}H{m}M{s}S",
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=3000),
    *[st.integers(min_value=0, max_value=10_000)] * 3,
)


@given(st.one_of(_compact, _iso))
def test_formatted_durations_parse_back_to_the_same_length(text):
    delta = parse_duration(text)
    assert parse_duration(format_duration(delta)) == delta


@given(st.integers(min_value=-315_360_000, max_value=315_360_000))  # 10 years either way
def test_any_whole_number_of_seconds_round_trips(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


def test_time_of_day():
    assert parse_time_of_day("09:30") == time(9, 30)
    assert parse_time_of_day("23:59") == time(23, 59)
    for bad in ["24:00", "9:3", "09:30:00", "noon"]:
        with pytest.raises(ValueError, match="use HH:MM"):
            parse_time_of_day(bad)


def test_instants_need_an_offset_and_come_back_in_utc():
    assert parse_instant("2026-12-24T09:00:00Z") == datetime(2026, 12, 24, 9, tzinfo=UTC)
    assert parse_instant("2026-12-24T09:00:00+02:00") == datetime(2026, 12, 24, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="has no offset"):
        parse_instant("2026-12-24T09:00:00")
    with pytest.raises(ValueError, match="invalid time"):
        parse_instant("Christmas")


def test_instants_accept_what_yaml_already_parsed():
    aware = datetime(2026, 12, 24, 9, tzinfo=UTC)
    assert parse_instant(aware) == aware
    with pytest.raises(ValueError, match="has no offset"):
        parse_instant(datetime(2026, 12, 24, 9))
    with pytest.raises(ValueError, match="a date alone is ambiguous"):
        parse_instant(date(2026, 12, 24))


def test_time_zones_are_iana_names():
    assert str(parse_timezone("Europe/Berlin")) == "Europe/Berlin"
    assert parse_timezone("europe/BERLIN").key == "Europe/Berlin"
    assert parse_timezone("utc").key == "UTC"
    for bad in ["Europe/Berln", "Europe", "", "../etc/passwd"]:
        with pytest.raises(ValueError, match="unknown time zone"):
            parse_timezone(bad)


def test_the_zone_of_a_time_of_day_wait_names_every_zone_passed_over():
    chosen = visitor_zone({"timezone": "asia/TOKYO"}, None, "Nowhere/Town")
    assert (chosen.zone.key, chosen.note) == ("Asia/Tokyo", None)
    chosen = visitor_zone({"timezone": 5}, None, "Nowhere/Town")
    assert chosen.zone.key == "UTC"
    assert chosen.note == (
        "visitor timezone 5 and server timezone 'Nowhere/Town' are not time zones; "
        "used UTC (the last resort)"
    )
    chosen = visitor_zone({"timezone": ""}, None, "europe/berlin")
    assert (chosen.zone.key, chosen.note) == ("Europe/Berlin", None)


def test_weekdays_are_indexed_like_python():
    assert WEEKDAYS.index("mon") == date(2026, 1, 5).weekday()
    assert len(WEEKDAYS) == 7


def test_a_visitor_zone_file_that_names_no_place_is_passed_over():
    chosen = visitor_zone({"timezone": "localtime"}, "posixrules", "Factory")
    assert chosen.zone.key == "UTC"
    assert chosen.note == (
        "visitor timezone 'localtime' and server timezone 'Factory' are not time zones; "
        "used UTC (the last resort)"
    )
