"""The backtest report as one self-contained HTML file (inline CSS and SVG, no scripts, no URLs).

A single file is what survives being attached to an MLflow run, mailed or opened years later
offline, so nothing is fetched; the charts are `charts`' SVG. Every piece of caller text goes
through `html.escape`. Over a range shorter than `MIN_ANNUALISED_DAYS` CAGR and Calmar are shown
as "n/a" and volatility, Sharpe and Sortino are marked (see `annualisation`); the report's
warnings come first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from drl_trading.evaluation.annualisation import Annualisation, annualisation
from drl_trading.evaluation.charts import escape, symbol_charts
from drl_trading.evaluation.metrics import PerformanceMetrics, Trade
from drl_trading.evaluation.report import BacktestReport, SymbolSection

_DASH = "–"

MAX_TRADES_SHOWN = 200
"""Trades listed per symbol; the rest are counted (the metrics count them all)."""


def yes_no(flag: bool) -> str:
    """A flag as a person reads it (a report, a table): ``yes`` or ``no``, never ``True``/``False``.
    Documents for programs (the metrics JSON) keep the boolean."""
    return "yes" if flag else "no"


def _finite_or_mark(x: float) -> str | None:
    if math.isnan(x):
        return _DASH
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return None


def fmt_percent(x: float, signed: bool = False, digits: int = 2) -> str:
    mark = _finite_or_mark(x)
    if mark is not None:
        return mark
    # Extrapolations such as the CAGR of a few hours explode; keep them short and legible.
    text = f"{x * 100:.3g}%" if abs(x) >= 1e4 else f"{x * 100:,.{digits}f}%"
    return "+" + text if signed and x > 0 and text.strip("0.,%") else text


def fmt_number(x: float, digits: int = 2) -> str:
    mark = _finite_or_mark(x)
    if mark is not None:
        return mark
    return f"{x:.3g}" if abs(x) >= 1e6 else f"{x:,.{digits}f}"


def _duration(days: float) -> str:
    if not math.isfinite(days):
        return _DASH
    return f"{days * 24:.1f} h" if days < 1 else f"{days:,.1f} d"


def _class(*names: str) -> str:
    joined = " ".join(n for n in names if n)
    return f' class="{joined}"' if joined else ""


def sign_class(x: float) -> str:
    if not math.isfinite(x) or x == 0:
        return ""
    return "pos" if x > 0 else "neg"


def _fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


_MetricRow = tuple[
    str, str, Callable[[PerformanceMetrics], str], Callable[[PerformanceMetrics], str]
]


def _no_class(_: PerformanceMetrics) -> str:
    return ""


_METRIC_ROWS: list[_MetricRow] = [
    (
        "Total return",
        "equity[end] / equity[start] - 1",
        lambda m: fmt_percent(m.total_return, signed=True),
        lambda m: sign_class(m.total_return),
    ),
    (
        "CAGR",
        "compound annual growth rate",
        lambda m: fmt_percent(m.cagr, signed=True),
        lambda m: sign_class(m.cagr),
    ),
    (
        "Annual volatility",
        "std of step returns × √periods/year",
        lambda m: fmt_percent(m.annual_volatility),
        _no_class,
    ),
    (
        "Sharpe",
        "mean / std of step returns × √periods/year, risk-free 0",
        lambda m: fmt_number(m.sharpe),
        lambda m: sign_class(m.sharpe),
    ),
    (
        "Sortino",
        "mean / downside deviation × √periods/year",
        lambda m: fmt_number(m.sortino),
        lambda m: sign_class(m.sortino),
    ),
    (
        "Calmar",
        "CAGR / max drawdown",
        lambda m: fmt_number(m.calmar),
        lambda m: sign_class(m.calmar),
    ),
    (
        "Max drawdown",
        "largest fall from a previous peak",
        lambda m: fmt_percent(m.max_drawdown),
        _no_class,
    ),
    (
        "Longest drawdown",
        "peak to recovery (or to the end if never recovered)",
        lambda m: (
            f"{m.max_drawdown_duration_bars:,} bars ({_duration(m.max_drawdown_duration_days)})"
        ),
        _no_class,
    ),
    ("Trades", "runs of same-signed positions", lambda m: f"{m.n_trades:,}", _no_class),
    (
        "Win rate",
        "share of trades with a positive net return",
        lambda m: fmt_percent(m.win_rate),
        _no_class,
    ),
    (
        "Profit factor",
        "gross profit / gross loss of trade returns",
        lambda m: fmt_number(m.profit_factor),
        _no_class,
    ),
    (
        "Avg holding",
        "mean bars per trade",
        lambda m: f"{fmt_number(m.avg_holding_bars, 1)} bars",
        _no_class,
    ),
    ("Turnover", "sum of |Δposition|", lambda m: f"{fmt_number(m.turnover, 1)}×", _no_class),
    (
        "Turnover / day",
        "turnover per calendar day",
        lambda m: fmt_number(m.turnover_per_day),
        _no_class,
    ),
    (
        "Exposure",
        "share of steps with a position",
        lambda m: fmt_percent(m.exposure, digits=1),
        _no_class,
    ),
    (
        "Fees paid",
        "sum of per-step costs, each a fraction of equity at the time",
        lambda m: fmt_percent(m.fees_paid),
        _no_class,
    ),
    ("Steps", "simulated bars", lambda m: f"{m.n_steps:,}", _no_class),
]


_ANNUALISED_ROWS = {
    "CAGR": "cagr",
    "Annual volatility": "annual_volatility",
    "Sharpe": "sharpe",
    "Sortino": "sortino",
    "Calmar": "calmar",
}
"""Row label -> the `PerformanceMetrics` field whose annualisation decides how it is shown."""


def _note(text: str) -> str:
    return f' <span class="muted">({escape(text)})</span>'


def _metrics_table(section: SymbolSection) -> str:
    columns = [section.model, *section.baselines]
    head = "".join(
        f"<th{_class('model' if i == 0 else '')}>{escape(c.name)}</th>"
        for i, c in enumerate(columns)
    )
    ann = annualisation(section.model.metrics)
    rows = []
    for label, definition, fmt, cls in _METRIC_ROWS:
        field = _ANNUALISED_ROWS.get(label, "")
        omitted = ann.omitted(field)
        cells = "".join(
            f"<td{_class('model' if i == 0 else '', '' if omitted else cls(c.metrics))}>"
            f"{escape(ann.omitted_text if omitted else fmt(c.metrics))}</td>"
            for i, c in enumerate(columns)
        )
        mark = _note(ann.note) if ann.extrapolated(field) else ""
        rows.append(
            f'<tr><th scope="row" title="{escape(definition)}">{escape(label)}{mark}</th>'
            f"{cells}</tr>"
        )
    return (
        '<table class="metrics"><thead><tr><th>Metric</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _trades_table(trades: list[Trade]) -> str:
    if not trades:
        return '<p class="muted">The model made no trades.</p>'
    rows = []
    for i, t in enumerate(trades[:MAX_TRADES_SHOWN], start=1):
        side = "long" if t.side > 0 else "short"
        exit_time = _fmt_time(t.exit_time) + (" (open)" if t.is_open else "")
        rows.append(
            f"<tr><td>{i:,}</td><td>{escape(_fmt_time(t.entry_time))}</td>"
            f"<td>{escape(exit_time)}</td>"
            f'<td><span class="badge {side}">{side}</span></td>'
            f"<td>{t.bars_held:,}</td><td>{escape(fmt_number(t.size))}</td>"
            f"<td{_class(sign_class(t.net_return))}>"
            f"{escape(fmt_percent(t.net_return, signed=True))}</td>"
            f"<td>{escape(fmt_percent(t.fees, digits=3))}</td></tr>"
        )
    note = ""
    if len(trades) > MAX_TRADES_SHOWN:
        note = f'<p class="muted">{len(trades) - MAX_TRADES_SHOWN:,} more trades not shown.</p>'
    return (
        '<table class="trades"><thead><tr><th>#</th><th>Entry (UTC)</th><th>Exit (UTC)</th>'
        "<th>Side</th><th>Bars held</th><th>Size</th><th>Net return</th><th>Fees</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _section_html(index: int, section: SymbolSection) -> str:
    m = section.model.metrics
    period = f"{_fmt_time(m.start)} → {_fmt_time(m.end)} UTC · {m.n_steps:,} steps"
    shown = min(len(section.trades), MAX_TRADES_SHOWN)
    return (
        f'<section class="card" id="symbol-{index}">'
        f'<h2>{escape(section.symbol)}</h2><p class="muted">{escape(period)}</p>'
        f"<h3>Metrics</h3>{_metrics_table(section)}"
        f"{symbol_charts(section)}"
        f"<h3>Trades ({shown:,} of {len(section.trades):,})</h3>{_trades_table(section.trades)}"
        "</section>"
    )


def _sharpe_mark(ann: Annualisation) -> str:
    return _note(ann.note) if ann.extrapolated("sharpe") else ""


def warnings_card(warnings: tuple[str, ...]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return f'<section class="card warn"><h2>Warnings</h2><ul>{items}</ul></section>\n'


def _summary_table(report: BacktestReport) -> str:
    rows = []
    for i, s in enumerate(report.sections):
        m = s.model.metrics
        bench = next((b.metrics for b in s.baselines if b.name.lower().startswith("buy")), None)
        bench_cell = (
            f"<td{_class(sign_class(bench.total_return))}>"
            f"{escape(fmt_percent(bench.total_return, signed=True))}</td>"
            if bench is not None
            else f"<td>{_DASH}</td>"
        )
        rows.append(
            f'<tr><td><a href="#symbol-{i}">{escape(s.symbol)}</a></td>'
            f"<td{_class(sign_class(m.total_return))}>"
            f"{escape(fmt_percent(m.total_return, signed=True))}"
            f"</td>{bench_cell}<td>{escape(fmt_number(m.sharpe))}{_sharpe_mark(annualisation(m))}</td>"
            f"<td>{escape(fmt_percent(m.max_drawdown))}</td><td>{m.n_trades:,}</td>"
            f"<td>{escape(fmt_percent(m.fees_paid))}</td></tr>"
        )
    return (
        '<table class="summary"><thead><tr><th>Symbol</th><th>Model return</th>'
        "<th>Buy-and-hold</th><th>Sharpe</th><th>Max drawdown</th><th>Trades</th>"
        f"<th>Fees paid</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


REPORT_CSS = """
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f3f4f6; --model: #eff6ff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 16px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
.subtitle { margin: 0 0 20px; color: var(--muted); word-break: break-all; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin: 0 0 20px; box-shadow: 0 1px 2px rgba(0, 0, 0, 0.04); }
h2 { margin: 0 0 4px; font-size: 20px; }
h3 { margin: 22px 0 8px; font-size: 15px; color: #374151; }
.muted { color: var(--muted); margin: 4px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { font-weight: 600; color: #374151; border-bottom: 2px solid #d1d5db; }
tbody th { font-weight: 500; color: #374151; cursor: help; }
table.kv th { width: 220px; text-align: left; cursor: auto; }
table.kv td { text-align: left; white-space: normal; word-break: break-all; }
.metrics .model { background: var(--model); font-weight: 600; }
.metrics thead th.model { color: #1d4ed8; border-bottom-color: #2563eb; }
.pos { color: #15803d; }
.neg { color: #b91c1c; }
.trades tbody tr:nth-child(even) { background: #f9fafb; }
.badge { display: inline-block; min-width: 44px; text-align: center; border-radius: 9px;
  padding: 0 8px; font-size: 12px; color: #fff; }
.badge.long { background: #16a34a; }
.badge.short { background: #dc2626; }
a { color: #1d4ed8; text-decoration: none; }
svg.chart { display: block; width: 100%; height: auto; }
svg .plot-bg { fill: #fcfcfd; }
svg .frame { fill: none; stroke: #d1d5db; }
svg .grid { stroke: #eef0f3; stroke-width: 1; }
svg .ref { stroke: #9ca3af; stroke-dasharray: 4 4; }
svg .tick { font-size: 11px; fill: #6b7280; }
svg .legend { font-size: 12px; fill: #374151; }
footer { color: var(--muted); font-size: 12px; text-align: center; }
.warn { border-color: #f59e0b; background: #fffbeb; }
.warn h2 { color: #92400e; }
.warn li { margin: 4px 0; }
"""


def render_report(report: BacktestReport) -> str:
    """The whole report as one HTML document string."""
    metadata = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in report.metadata.items()
    )
    run_card = (
        f'<section class="card"><h2>Run</h2><table class="kv"><tbody>{metadata}</tbody></table>'
        "</section>"
        if report.metadata
        else ""
    )
    summary = (
        f'<section class="card"><h2>Summary</h2>{_summary_table(report)}</section>'
        if report.sections
        else '<section class="card"><p class="muted">No symbols were backtested.</p></section>'
    )
    sections = "".join(_section_html(i, s) for i, s in enumerate(report.sections))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(report.title)}</title>\n<style>{REPORT_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{escape(report.title)}</h1>"
        f'<p class="subtitle">{escape(report.subtitle)}</p></header>\n'
        f"{warnings_card(report.warnings)}{run_card}\n{summary}\n{sections}\n"
        "<footer>Generated by drl-trading. Times are UTC; returns are after fees and slippage."
        " Hover a metric name for its definition.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
