"""The evaluation report: the walk-forward evidence a gate judged, as one page a person reads.

One self-contained HTML file (inline CSS and SVG, no scripts, no URLs, every caller text through
`html.escape`) and its figures as JSON, rendered from the `Evidence` and the `GateDecision` of a
training run: the protocol, the verdict with every check, the headline statistics, the per-fold
table, and from the stitched out-of-sample series (`Evidence.series`) the seeds' equity band
against the baselines, the drawdown, a rolling Sharpe, the monthly returns and the trades of the
configured seed on the price. Pure: where the documents go is a `ReportSink`'s business.

Conventions (stated in the page): the model's series is the seeds' mean return per step (an
equal split of capital over the seeds' models), as the evidence's Sharpe is; the baselines are
the same bars and costs, several symbols an equal-weight portfolio; months are UTC calendar
months, returns compounded; figures are of the full series, only the charts reduce points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from drl_trading.common.model_registry import ModelVersion
from drl_trading.evaluation.baselines import BUY_AND_HOLD
from drl_trading.evaluation.charts import escape
from drl_trading.evaluation.oos_charts import (
    drawdown_chart,
    equity_chart,
    price_chart,
    rolling_sharpe_chart,
)
from drl_trading.evaluation.oos_series import (
    MonthlyTable,
    OosSeries,
    equity_band,
    equity_curve,
    monthly_returns,
    rolling_sharpe,
    rolling_window,
)
from drl_trading.evaluation.report_html import (
    REPORT_CSS,
    fmt_number,
    fmt_percent,
    sign_class,
    yes_no,
)
from drl_trading.training.core.dataset import Splits
from drl_trading.training.core.evidence import Evidence
from drl_trading.training.core.gate import GateDecision
from drl_trading.training.core.ports import ReportDocuments

__all__ = ["evaluation_documents", "protocol_text"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_EXTRA_CSS = """
.scroll { overflow-x: auto; }
table.kv td { word-break: normal; overflow-wrap: anywhere; }
svg .fold { stroke: #6b7280; stroke-dasharray: 2 3; }
.verdict.pass { color: #15803d; }
.verdict.fail { color: #b91c1c; }
table.checks td:last-child, table.checks th:last-child { text-align: left; white-space: normal; }
table.monthly td.partial { font-style: italic; color: var(--muted); }
"""


def _fmt_time(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}"


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _card(title: str, body: str) -> str:
    return f'<section class="card"><h2>{escape(title)}</h2>{body}</section>\n'


def _oos_range(evidence: Evidence) -> tuple[datetime, datetime]:
    return evidence.folds[0].validation.start, evidence.folds[-1].validation.end


def _gate_card(gate: GateDecision | None) -> str:
    if gate is None:
        return _card("Gate", '<p class="muted">No gate verdict was recorded.</p>')
    verdict = (
        f'<p class="verdict {"pass" if gate.promote else "fail"}"><strong>champion: '
        f"{yes_no(gate.promote)}</strong></p>"
    )
    rows = "".join(
        f"<tr><td>{escape(c.key)}</td><td>{escape(fmt_number(c.value, 3))}</td>"
        f"<td>{escape(fmt_number(c.threshold, 3))}</td>"
        f'<td class="{"pos" if c.passed else "neg"}">{yes_no(c.passed)}</td>'
        f"<td>{escape(c.text)}</td></tr>"
        for c in gate.checks
    )
    table = (
        '<table class="checks"><thead><tr><th>Check</th><th>Value</th><th>Threshold</th>'
        f"<th>Passed</th><th>Verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _card("Gate", verdict + table)


def _headline(e: Evidence) -> str:
    spread = (
        f"{', '.join(fmt_number(s) for s in e.seed_sharpes)} (std {fmt_number(e.seed_sharpe_std)}, "
        f"{fmt_number(min(e.seed_sharpes))}..{fmt_number(max(e.seed_sharpes))})"
        if e.seed_sharpes
        else "none"
    )
    rows = [
        (
            "out-of-sample Sharpe",
            f"{fmt_number(e.sharpe)} ({e.confidence:.0%} CI {fmt_number(e.ci_lower)}.."
            f"{fmt_number(e.ci_upper)}, stationary block bootstrap)",
        ),
        ("PSR vs 0", f"{fmt_number(e.psr, 3)} (probability the true Sharpe exceeds 0)"),
        (
            "PSR vs best baseline",
            f"{fmt_number(e.psr_vs_best_baseline, 3)} (against {e.best_baseline} "
            f"{fmt_number(e.best_baseline_sharpe)})",
        ),
        (
            "deflated Sharpe (DSR)",
            f"{fmt_number(e.dsr, 3)} over {e.trials_text}; variance of the trials' Sharpes "
            f"{fmt_number(e.trial_sharpe_variance, 3)} ({e.trial_variance_source})",
        ),
        ("seed Sharpes", spread),
        ("buy-and-hold Sharpe", fmt_number(e.buy_and_hold_sharpe)),
        ("max drawdown", f"{fmt_percent(e.max_drawdown)} (worst seed)"),
        ("out-of-sample steps", f"{e.steps:,}"),
    ]
    if e.note is not None:
        rows.append(("note", e.note))
    return _card("Headline", _kv(rows))


def _folds_table(e: Evidence) -> str:
    head = (
        "<tr><th>Fold</th><th>Validation (UTC)</th><th>Steps</th><th>Sharpe</th>"
        "<th>Seed Sharpes</th><th>Best baseline (Sharpe)</th><th>Buy-and-hold</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{f.fold}</td><td>{escape(_fmt_time(f.validation.start))} .. "
        f"{escape(_fmt_time(f.validation.end))}</td><td>{f.steps:,}</td>"
        f'<td class="{sign_class(f.sharpe)}">{escape(fmt_number(f.sharpe))}</td>'
        f"<td>{escape(', '.join(fmt_number(s) for s in f.seed_sharpes))}</td>"
        f"<td>{escape(f.best_baseline)} ({escape(fmt_number(f.best_baseline_sharpe))})</td>"
        f"<td>{escape(fmt_number(f.buy_and_hold_sharpe))}</td></tr>"
        for f in e.folds
    )
    note = (
        '<p class="muted">Sharpe: annualised, of the seeds\' mean returns on the fold; '
        "baselines (buy-and-hold: its Sharpe) on the same bars and costs.</p>"
    )
    table = f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
    return _card("Per fold", f'<div class="scroll">{table}</div>{note}')


def _monthly_table(table: MonthlyTable) -> str:
    if not table.years:
        return '<p class="muted">No out-of-sample steps.</p>'
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    rows = []
    for year in table.years:
        cells = []
        for month in range(1, 13):
            value = table.months.get((year, month))
            if value is None:
                cells.append("<td></td>")
                continue
            partial = (year, month) in table.partial
            text = fmt_percent(value, signed=True) + ("*" if partial else "")
            cls = " ".join(c for c in (sign_class(value), "partial" if partial else "") if c)
            title = ' title="month only partly covered"' if partial else ""
            cells.append(f'<td class="{cls}"{title}>{escape(text)}</td>')
        total = table.year_totals[year]
        rows.append(
            f"<tr><td>{year}</td>{''.join(cells)}"
            f'<td class="{sign_class(total)}">{escape(fmt_percent(total, signed=True))}</td></tr>'
        )
    return (
        f'<table class="monthly"><thead><tr><th>Year</th>{head}<th>Year</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted">Compounded returns of the seeds\' mean per UTC calendar month; '
        "* a month the out-of-sample range covers only in part. The year column compounds "
        "the months shown.</p>"
    )


def _series_cards(e: Evidence, series: OosSeries) -> tuple[str, dict[str, Any]]:
    start, end = _oos_range(e)
    mean = series.mean_returns()
    band = equity_band(series.seed_returns)
    baselines = {name: equity_curve(r) for name, r in series.baseline_returns.items()}
    bench = (BUY_AND_HOLD, baselines[BUY_AND_HOLD]) if BUY_AND_HOLD in baselines else None
    window = rolling_window(series.steps, e.periods_per_year)
    rolling = rolling_sharpe(mean, window.bars, e.periods_per_year)
    bench_rolling = (
        (
            BUY_AND_HOLD,
            rolling_sharpe(series.baseline_returns[BUY_AND_HOLD], window.bars, e.periods_per_year),
        )
        if bench is not None
        else None
    )
    monthly = monthly_returns(series.times, mean, start, end)
    html = _card(
        "Out-of-sample equity",
        equity_chart(series.times, band, baselines, series.fold_starts)
        + '<p class="muted">The model: median over seeds of each seed\'s stitched equity, and '
        f"the band ({escape(band.label)}); baselines dashed, on the same bars and costs; "
        "dotted lines: fold boundaries.</p>",
    )
    html += _card(
        "Drawdown",
        drawdown_chart(series.times, equity_curve(mean), bench, series.fold_starts)
        + "<p class=\"muted\">Of the seeds' mean equity (the evidence's series); the "
        "headline's max drawdown is the worst single seed's.</p>",
    )
    html += _card(
        "Rolling Sharpe",
        rolling_sharpe_chart(series.times, rolling, bench_rolling, window.text, series.fold_starts)
        + f'<p class="muted">Annualised Sharpe of the trailing {escape(window.text)} of the '
        "seeds' mean returns (risk-free 0, ddof 1); undefined until the first window fills.</p>",
    )
    html += _card("Monthly returns", _monthly_table(monthly))
    symbols = list(dict.fromkeys(m.symbol for m in series.marks))
    trades = ""
    for symbol in symbols:
        chart, caption = price_chart(symbol, [m for m in series.marks if m.symbol == symbol])
        trades += (
            f"<h3>{escape(symbol)}</h3>{chart}"
            f'<p class="muted">{escape(caption)}; triangles at the fill bar\'s open (the order '
            "decided at the previous close).</p>"
        )
    html += _card("Trades on the price (seed 0)", trades or '<p class="muted">No symbols.</p>')
    figures = {
        "rolling_sharpe_window_bars": window.bars,
        "rolling_sharpe_window": window.text,
        "equity_band": band.label,
        "final_equity": {
            "model_median": float(band.median[-1]) if series.steps else 1.0,
            **{name: float(c[-1]) if len(c) else 1.0 for name, c in baselines.items()},
        },
        "monthly_returns": {
            f"{y:04d}-{m:02d}": {"return": v, "partial": (y, m) in monthly.partial}
            for (y, m), v in sorted(monthly.months.items())
        },
        "trades": {
            s: {
                "buys": sum(m.buys for m in series.marks if m.symbol == s),
                "sells": sum(m.sells for m in series.marks if m.symbol == s),
            }
            for s in symbols
        },
    }
    return html, figures


def protocol_text(splits: Splits, seeds: int) -> str:
    """The protocol line of the report (`Splits.protocol_text`); the test range is not part of
    the evidence."""
    return f"{splits.protocol_text(seeds)}; the test range is not part of the evidence"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def evaluation_documents(
    evidence: Evidence,
    gate: GateDecision | None,
    version: ModelVersion,
    *,
    symbols: Sequence[str],
    protocol: str,
    annualisation: str,
    costs: str,
    stem: str,
) -> ReportDocuments:
    """The evaluation report of ``evidence`` (and ``gate``'s verdict on it) for ``version``.

    ``protocol``: the folds, training windows, embargo and seeds in words; ``annualisation``
    and ``costs``: the lines the backtest report states too. ``stem``: the documents' name."""
    e = evidence
    start, end = _oos_range(e)
    header = [
        ("model", version.uri),
        ("run id", version.run_id),
        ("symbols", ", ".join(symbols)),
        ("out-of-sample range", f"{_fmt_time(start)} .. {_fmt_time(end)} UTC"),
        ("protocol", protocol),
        ("trials", f"{e.trials_text} of this model (seeds x configurations, counted from MLflow)"),
        ("annualisation", annualisation),
        ("costs", costs),
    ]
    if e.series is not None and e.series.steps:
        charts, figures = _series_cards(e, e.series)
    else:
        charts = _card(
            "Out-of-sample series",
            '<p class="muted">The evidence kept no step series: charts unavailable.</p>',
        )
        figures = {}
    title = f"Evaluation of {version.uri}"
    html = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{REPORT_CSS}{_EXTRA_CSS}</style>\n</head>\n<body>\n"
        f"<main>\n<header><h1>{escape(title)}</h1>"
        f'<p class="subtitle">walk-forward out-of-sample evidence, {escape(_fmt_time(start))} .. '
        f"{escape(_fmt_time(end))} UTC</p></header>\n"
        f"{_card('Run', _kv(header))}{_gate_card(gate)}{_headline(e)}{_folds_table(e)}{charts}"
        "<footer>Generated by drl-trading. Times are UTC; returns are after fees and slippage; "
        "Sharpe ratios are annualised with risk-free 0.</footer>\n</main>\n</body>\n</html>\n"
    )
    payload: dict[str, Any] = {
        "model": version.uri,
        "run_id": version.run_id,
        "metadata": dict(header),
        "evidence": e.to_dict(),
        "gate": (
            None
            if gate is None
            else {
                "promoted": gate.promote,
                "reason": gate.reason,
                "checks": [
                    {
                        "key": c.key,
                        "value": _finite(c.value),
                        "threshold": _finite(c.threshold),
                        "passed": c.passed,
                        "text": c.text,
                    }
                    for c in gate.checks
                ],
            }
        ),
        "figures": figures,
    }
    return ReportDocuments(
        stem=stem, html=html, metrics_json=json.dumps(payload, indent=2, default=_json_default)
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
