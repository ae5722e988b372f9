"""Small server-side SVG charts (no JavaScript, no CDN): they render in any browser and in tests."""

from __future__ import annotations

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SHORT_NAMES = {
    "iid": "i.i.d.",
    "nc_prompt": "NC prompt",
    "nc_values": "NC values",
    "multi_model": "several models",
    "maxmin": "max-min",
    "correction": "corrections",
}
PALETTE = ["#2457c5", "#c0392b", "#1b7f3b", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b"]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1e-6
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def diversity_scatter_svg(rows: list[dict], *, width: int = 720, height: int = 360) -> SafeString:
    """Strategies on the plane (mean pairwise embedding distance, distinct-2), with 95% intervals.

    `rows` are selectors.strategy_comparison rows; those without measured sets are left out.
    """
    points = [r for r in rows if r.get("distance") is not None and r.get("distinct_2") is not None]
    title = "Diversity of candidate sets by strategy"
    if not points:
        return mark_safe(  # noqa: S308 - constant markup
            f'<svg role="img" aria-label="{title}: no finished sets yet" width="{width}" height="60">'
            '<text x="8" y="30" fill="#5b6670">No finished candidate sets to plot yet.</text></svg>'
        )
    left, right, top, bottom = 64, 200, 20, 48
    # Name the generator in the legend only when strategies were run with more than one.
    several = len({r["generator"] for r in points}) > 1
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [r["distance"] + s * (r["distance_ci"] or 0) for r in points for s in (-1, 1)]
    ys = [r["distinct_2"] + s * (r["distinct_2_ci"] or 0) for r in points for s in (-1, 1)]
    x_ticks = _ticks(max(0.0, min(xs) - 0.02), max(xs) + 0.02)
    y_ticks = _ticks(max(0.0, min(ys) - 0.02), max(ys) + 0.02)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="div-plot-title" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart">',
        f'<title id="div-plot-title">{title}</title>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#c8ced6"/>',
    ]
    for t in x_ticks:
        parts.append(
            f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eef0f3"/>'
            f'<text x="{px(t):.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle">{t:g}</text>'
        )
    for t in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eef0f3"/>'
            f'<text x="{left - 6}" y="{py(t) + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
        "mean pairwise embedding distance (higher: more diverse)</text>"
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" font-size="12" text-anchor="middle">'
        "distinct-2</text>"
    )
    for i, r in enumerate(points):
        color = PALETTE[i % len(PALETTE)]
        cx, cy = px(r["distance"]), py(r["distinct_2"])
        name = SHORT_NAMES.get(r["strategy"], r["strategy"])
        label = escape(f"{name} · {r['generator']}"[:34] if several else name)
        tip = escape(
            f"{r['strategy_label']} ({r['generator']}): distance {r['distance']:.3f}, "
            f"distinct-2 {r['distinct_2']:.3f}, {r['measured']} sets"
        )
        if r.get("distance_ci"):
            dx = r["distance_ci"]
            parts.append(
                f'<line x1="{px(r["distance"] - dx):.1f}" x2="{px(r["distance"] + dx):.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{color}" stroke-width="1.5"/>'
            )
        if r.get("distinct_2_ci"):
            dy = r["distinct_2_ci"]
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{py(r["distinct_2"] - dy):.1f}" '
                f'y2="{py(r["distinct_2"] + dy):.1f}" stroke="{color}" stroke-width="1.5"/>'
            )
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{color}"><title>{tip}</title></circle>'
            f'<rect x="{left + plot_w + 12}" y="{top + 4 + i * 18}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + plot_w + 26}" y="{top + 13 + i * 18}" font-size="11">{label}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
