"""Properties of the counter maths (network/snmp/counters.py): wraps, reboots, implausible jumps,
never a negative rate, and - over random traces of a device with traffic, wraps, reboots and
counter resets - every rate derived is either withheld or exactly the true one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network.snmp.counters import (
    TIMETICKS_MODULO,
    CounterReading,
    Interval,
    counter_delta,
    event_rate,
    interface_rates,
    max_bps,
    octet_rate_bps,
    uptime_interval,
)

pytestmark = [pytest.mark.network_monitoring]

bits = st.sampled_from([32, 64])
speeds = st.sampled_from([None, 10_000_000, 1_000_000_000, 10_000_000_000, 100_000_000_000])


@st.composite
def two_readings(draw):
    width = draw(bits)
    return width, draw(st.integers(0, 2**width - 1)), draw(st.integers(0, 2**width - 1))


@pytest.mark.property
@given(readings=two_readings())
def test_the_delta_is_never_negative_and_is_the_increase_modulo_the_width(readings):
    width, previous, current = readings
    delta = counter_delta(previous, current, bits=width)
    assert 0 <= delta < 2**width
    assert (previous + delta) % 2**width == current
    if current >= previous:
        assert delta == current - previous


@pytest.mark.property
@given(width=bits, before_top=st.integers(1, 10**9), after_zero=st.integers(0, 10**9))
def test_a_wrap_counts_the_octets_on_both_sides_of_it(width, before_top, after_zero):
    previous = 2**width - before_top
    assert counter_delta(previous, after_zero % 2**width, bits=width) == (before_top + after_zero) % 2**width


@pytest.mark.property
@given(readings=two_readings(), seconds=st.floats(0.001, 86_400), speed=speeds)
def test_a_rate_is_never_negative_and_never_above_twice_the_speed(readings, seconds, speed):
    width, previous, current = readings
    rate = octet_rate_bps(previous, current, seconds, bits=width, speed_bps=speed)
    assert rate is None or 0 <= rate <= max_bps(speed)
    errors = event_rate(previous % 2**32, current % 2**32, seconds, speed_bps=speed)
    assert errors is None or errors >= 0


@pytest.mark.property
@given(
    previous=st.integers(0, TIMETICKS_MODULO - 1),
    current=st.integers(0, TIMETICKS_MODULO - 1),
    wall=st.one_of(st.none(), st.floats(0.001, 10**6)),
)
def test_uptime_going_back_is_a_reboot_unless_the_wall_clock_explains_a_wrap(previous, current, wall):
    interval = uptime_interval(previous, current, wall_elapsed_s=wall)
    if current > previous:
        assert interval == Interval((current - previous) / 100)
    elif current < previous:
        wrapped = (current + TIMETICKS_MODULO - previous) / 100
        explained = wall is not None and abs(wrapped - wall) <= max(30.0, 0.1 * wall)
        assert interval.rebooted is not explained
        assert interval.seconds == (wrapped if explained else None)


@pytest.mark.property
@given(
    previous=st.builds(CounterReading, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    current=st.builds(CounterReading, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    seconds=st.floats(0.01, 3600),
    speed=speeds,
)
def test_after_a_reboot_no_rate_at_all_whatever_the_counters(previous, current, seconds, speed):
    rates = interface_rates(previous, current, Interval(None, rebooted=True), speed_bps=speed)
    assert (rates.in_bps, rates.out_bps, rates.in_errors_per_s, rates.out_errors_per_s) == (None, None, None, None)
    assert rates.reason == "rebooted"
    assert interface_rates(None, current, Interval(seconds), speed_bps=speed).reason == "first sample"


@st.composite
def device_traces(draw):
    """A device polled every `step` seconds: octets at a true rate <= its speed each interval,
    sometimes a reboot (uptime and counters restart at some point of the interval), sometimes a
    counter reset without reboot."""
    width = draw(bits)
    speed = draw(st.sampled_from([10_000_000, 1_000_000_000, 10_000_000_000]))
    start = draw(st.integers(0, 2**width - 1))
    uptime = draw(st.integers(0, 2**31))  # centiseconds
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(1, 900),  # seconds between polls
                st.floats(0, 1),  # fraction of the link speed used
                st.sampled_from(["traffic"] * 8 + ["reboot", "reset"]),
                st.floats(0, 1, exclude_max=True),  # when in the interval a reboot happened
            ),
            min_size=1,
            max_size=25,
        )
    )
    return width, speed, start, uptime, steps


@pytest.mark.property
@given(trace=device_traces())
def test_over_any_trace_each_rate_is_withheld_or_exactly_the_true_rate(trace):
    width, speed, counter, uptime, steps = trace
    modulo = 2**width
    baseline = CounterReading(counter, counter, bits=width)
    baseline_uptime = uptime
    for seconds, load, event, when in steps:
        if event == "reboot" and baseline_uptime == 0:
            event = "traffic"  # up for no time at all: there is nothing to go back from
        octets = int(speed * load / 8 * seconds)
        if width == 32 and octets >= modulo:  # more than one wrap per interval: not measurable
            octets = modulo - 1
        true_rate = octets * 8 / seconds
        if event == "reboot":
            # sysUpTime restarts from zero within the interval: below the previous reading (a
            # device polled right after a boot that reboots again later than that is not
            # detectable by sysUpTime, by nature)
            uptime = int(when * min(seconds * 100, baseline_uptime))
            counter = int(octets * when) % modulo
        else:
            uptime += seconds * 100
            counter = octets % modulo if event == "reset" else (counter + octets) % modulo
        reading = CounterReading(counter, counter, bits=width)
        interval = uptime_interval(baseline_uptime % TIMETICKS_MODULO, uptime % TIMETICKS_MODULO)
        rates = interface_rates(baseline, reading, interval, speed_bps=speed)
        for rate in (rates.in_bps, rates.out_bps):
            assert rate is None or rate >= 0
            if event == "traffic" and not interval.rebooted and interval.seconds is not None:
                assert rate == pytest.approx(true_rate, rel=1e-9, abs=1e-6)
            elif event == "reboot":
                assert rate is None  # never a spike from counters that restarted
            else:  # a reset: withheld, or - when the counter happened to land above the old one -
                assert rate is None or rate <= max_bps(speed)  # some plausible value, never a spike
        baseline, baseline_uptime = reading, uptime  # the caller always re-baselines


@pytest.mark.property
@given(previous=st.integers(0, 2**64 - 1), current=st.integers(0, 2**64 - 1), speed=speeds)
def test_counter_width_changes_and_missing_counters_give_no_rate(previous, current, speed):
    old = CounterReading(previous % 2**32, previous % 2**32, bits=32)
    new = CounterReading(current, current, bits=64)
    assert interface_rates(old, new, Interval(300.0), speed_bps=speed).in_bps is None
    missing = CounterReading(None, current)
    assert interface_rates(new, missing, Interval(300.0), speed_bps=speed).reason == "no counter"


@pytest.mark.property
@given(width=bits, previous=st.integers(-(2**70), 2**70), current=st.integers(-(2**70), 2**70))
def test_readings_outside_the_counter_range_are_refused_or_give_no_rate(width, previous, current):
    valid = 0 <= previous < 2**width and 0 <= current < 2**width
    if not valid:
        with pytest.raises(ValueError):
            counter_delta(previous, current, bits=width)
        assert octet_rate_bps(previous, current, 60.0, bits=width) is None
