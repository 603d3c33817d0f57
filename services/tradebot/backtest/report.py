"""A backtest's report: `index.html` (self-contained, works offline), `trades.csv`, `equity.csv`.

The page draws its charts as inline SVG (equity and drawdown, each symbol's price
with the trades marked), then the trades and per-symbol figures: no script, no
external file, so it opens from a CI artifact or an air-gapped cluster alike.
"""

from __future__ import annotations

import csv
import html
from collections import defaultdict
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path

from tradebot.backtest import metrics
from tradebot.backtest.run import BacktestResult

WIDTH, HEIGHT, PAD = 900, 220, 36
MAX_POINTS = 1_500


def write_report(
    result: BacktestResult, directory: Path, prices: dict[str, list[tuple[float, float]]]
) -> Path:
    """Write the three files; `prices` is each symbol's (epoch s, price) path for its chart."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "trades.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(metrics.RoundTrip)])
        writer.writerows([list(asdict(t).values()) for t in result.trades])
    with (directory / "equity.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "equity", "drawdown_pct"])
        curve = [v for _, v in result.equity]
        for (moment, value), drawdown in zip(result.equity, metrics.drawdowns(curve), strict=True):
            writer.writerow([moment.isoformat(), round(value, 4), round(drawdown * 100, 4)])
    page = directory / "index.html"
    page.write_text(render(result, prices))
    return page


def render(result: BacktestResult, prices: dict[str, list[tuple[float, float]]]) -> str:
    summary = result.summary()
    curve = [(moment.timestamp(), value) for moment, value in result.equity]
    drawdown = [
        (t, d * 100) for (t, _), d in zip(curve, metrics.drawdowns([v for _, v in curve]), strict=True)
    ]
    figures = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in summary.items()
        if key != "params"
    )
    params = html.escape(str(summary["params"]))
    charts = [
        _chart("Equity", curve, "#1f6feb"),
        _chart("Drawdown %", drawdown, "#d1242f", fill=True),
    ]
    by_symbol: dict[str, list[metrics.RoundTrip]] = defaultdict(list)
    for trade in result.trades:
        by_symbol[trade.symbol].append(trade)
    for symbol in sorted(prices):
        marks = [(t.entry_time, t.entry_price, "#1a7f37") for t in by_symbol[symbol]]
        marks += [(t.exit_time, t.exit_price, "#d1242f") for t in by_symbol[symbol]]
        charts.append(
            _chart(f"{symbol} price (entries green, exits red)", prices[symbol], "#57606a", marks=marks)
        )
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in asdict(t).values()) + "</tr>"
        for t in result.trades
    )
    head = "".join(f"<th>{f.name}</th>" for f in fields(metrics.RoundTrip))
    stats = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{len(ts)}</td><td>{sum(t.pnl for t in ts):.2f}</td>"
        f"<td>{_pct(metrics.win_rate(ts))}</td><td>{metrics.finite(metrics.profit_factor(ts))}</td></tr>"
        for s, ts in sorted(by_symbol.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {html.escape(summary["strategy"])}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 8px 0 24px; }}
td, th {{ padding: 3px 8px; border-bottom: 1px solid #d0d7de; text-align: left; }}
td {{ font-variant-numeric: tabular-nums; }}
h2 {{ margin-top: 28px; }} svg {{ display: block; }}
</style></head><body>
<h1>Backtest: {html.escape(summary["strategy"])}</h1>
<p>{html.escape(summary["start"])} → {html.escape(summary["end"])}; parameters {params}</p>
<table>{figures}</table>
{"".join(charts)}
<h2>Per symbol</h2>
<table><tr><th>symbol</th><th>trades</th><th>P&amp;L</th><th>win rate</th><th>profit factor</th></tr>
{stats}</table>
<h2>Trades</h2>
<table><tr>{head}</tr>{rows}</table>
</body></html>
"""


def _pct(value: float) -> str:
    rounded = metrics.finite(value * 100, 1)
    return "" if rounded is None else f"{rounded}%"


def _chart(
    title: str,
    points: list[tuple[float, float]],
    colour: str,
    fill: bool = False,
    marks: list[tuple[str, float, str]] | None = None,
) -> str:
    """A line chart of (epoch s, value) as inline SVG, thinned to at most MAX_POINTS."""
    if len(points) < 2:
        return f"<h2>{html.escape(title)}</h2><p>not enough data</p>"
    step = max(1, len(points) // MAX_POINTS)
    shown = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
    t0, t1 = shown[0][0], shown[-1][0]
    low, high = min(v for _, v in shown), max(v for _, v in shown)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0

    def x(t: float) -> float:
        return PAD + (t - t0) / span_t * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD - (v - low) / span_v * (HEIGHT - 2 * PAD)

    path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in shown)
    area = ""
    if fill:
        base = y(min(max(0.0, low), high))
        outline = f"{x(t0):.1f},{base:.1f} {path} {x(t1):.1f},{base:.1f}"
        area = f'<polygon points="{outline}" fill="{colour}" opacity="0.15"/>'
    dots = ""
    for when, price, mark_colour in marks or []:
        moment = datetime.fromisoformat(when).timestamp()
        if t0 <= moment <= t1:
            dots += f'<circle cx="{x(moment):.1f}" cy="{y(price):.1f}" r="3" fill="{mark_colour}"/>'
    labels = (
        f'<text x="2" y="{PAD - 8}" font-size="11">{high:,.2f}</text>'
        f'<text x="2" y="{HEIGHT - PAD + 14}" font-size="11">{low:,.2f}</text>'
    )
    return (
        f"<h2>{html.escape(title)}</h2>"
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}">{area}<polyline points="{path}" fill="none" stroke="{colour}" '
        f'stroke-width="1.5"/>{dots}{labels}</svg>'
    )
