"""The traffic graph: a picture with the facts an engineer reads off it (axis in bit/s, gaps where
there was no data, 95th percentile and peak), safe with any interface name."""

from __future__ import annotations

import datetime

import pytest

from network.graphs import nice_ceiling, percentile_95, si_bps, traffic_svg

pytestmark = [pytest.mark.network_monitoring]
END = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def _series(values):
    return [
        (END - datetime.timedelta(minutes=5 * (len(values) - 1 - i)), v, v / 2 if v else v)
        for i, v in enumerate(values)
    ]


@pytest.mark.behavior
def test_units_percentile_and_axis():
    assert si_bps(950) == "950 bit/s"
    assert si_bps(1_500_000) == "1.5 Mbit/s"
    assert si_bps(10e9) == "10 Gbit/s"
    assert percentile_95(list(range(1, 101))) == 95
    assert percentile_95([]) is None
    assert nice_ceiling(730e6) == 1e9
    assert nice_ceiling(180e6) == 200e6


@pytest.mark.behavior
def test_gaps_break_the_line_and_legend_has_95th_and_peak():
    values = [100e6] * 10 + [None] * 3 + [300e6] * 10
    svg = traffic_svg(_series(values), title="edge-1 ge-0/0/1", end=END, speed_bps=1e9)
    assert svg.count('<polyline fill="none" stroke="#1f77b4"') == 2  # in: two segments around the gap
    assert "in: 95th 300 Mbit/s, peak 300 Mbit/s" in svg
    assert "out: 95th 150 Mbit/s, peak 150 Mbit/s" in svg
    assert ">500 Mbit/s</text>" in svg  # axis top: the next 1/2/5 step above the data


@pytest.mark.behavior
def test_title_is_escaped_and_an_empty_period_says_so():
    svg = traffic_svg([], title='<script>alert("x")</script>', end=END)
    assert "<script>" not in svg
    assert "no samples in this period" in svg
