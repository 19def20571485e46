"""Traffic graphs as SVG, drawn on the server (no JavaScript, no CDN): what a network engineer
expects of an interface page - in and out over the last 24 hours, on a bit/s axis with SI units,
hour ticks, the 95th percentile and the peak, gaps where there was no data.

Pure functions over plain data: `traffic_svg(points, ...)` where each point is
(datetime, in_bps | None, out_bps | None)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

Point = tuple[datetime.datetime, float | None, float | None]

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
IN_COLOUR, OUT_COLOUR = "#1f77b4", "#2ca02c"
UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si_bps(value: float) -> str:
    for factor, prefix in UNITS:
        if value >= factor:
            return f"{value / factor:.3g} {prefix}bit/s"
    return f"{value:.3g} bit/s"


def nice_ceiling(value: float) -> float:
    """The next 1/2/5 x 10^n at or above `value` (axis top)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exponent + 1))


def percentile_95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile (how transit is billed)."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _paths(points: Sequence[Point], index: int, x, y, max_gap: datetime.timedelta) -> list[str]:
    """Polyline segments, broken where data is missing or samples are further apart than max_gap."""
    segments: list[list[str]] = []
    previous = None
    for point in points:
        value = point[index]
        if value is None:
            previous = None
            continue
        if previous is None or point[0] - previous > max_gap:
            segments.append([])
        segments[-1].append(f"{x(point[0]):.1f},{y(value):.1f}")
        previous = point[0]
    return [" ".join(segment) for segment in segments if segment]


def traffic_svg(
    points: Sequence[Point],
    *,
    title: str,
    end: datetime.datetime,
    hours: int = 24,
    speed_bps: float | None = None,
    max_gap: datetime.timedelta = datetime.timedelta(minutes=20),
) -> str:
    start = end - datetime.timedelta(hours=hours)
    points = sorted((p for p in points if start <= p[0] <= end), key=lambda p: p[0])
    values = [v for p in points for v in (p[1], p[2]) if v is not None]
    top = nice_ceiling(max(values) * 1.1 if values else (speed_bps or 1e6))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(moment: datetime.datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(value, top) / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):  # horizontal grid and bit/s labels
        value = top * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{si_bps(value)}</text>')
    tick = start.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1)
    while tick <= end:  # hour ticks, labelled every 3 hours
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#f2f2f2"/>')
        if tick.hour % 3 == 0:
            out.append(f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{tick:%H:%M}</text>')
        tick += datetime.timedelta(hours=1)
    if speed_bps and speed_bps <= top:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(speed_bps):.1f}" y2="{y(speed_bps):.1f}" '
            'stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    for index, colour in ((1, IN_COLOUR), (2, OUT_COLOUR)):
        for path in _paths(points, index, x, y, max_gap):
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
    legend = []
    for index, colour, label in ((1, IN_COLOUR, "in"), (2, OUT_COLOUR, "out")):
        series = [p[index] for p in points if p[index] is not None]
        p95 = percentile_95(series)
        peak = max(series) if series else None
        text = f"{label}: 95th {si_bps(p95)}, peak {si_bps(peak)}" if series else f"{label}: no data"
        legend.append((colour, text))
    for i, (colour, text) in enumerate(legend):
        lx = LEFT + i * 300
        out.append(f'<rect x="{lx}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 14}" y="{HEIGHT - 5}">{escape(text)}</text>')
    if not points:
        out.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#888">'
            "no samples in this period</text>"
        )
    out.append("</svg>")
    return "\n".join(out)
