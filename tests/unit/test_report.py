"""The HTML backtest report: well-formed, self-contained, escaped, and fine with odd traces."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.baselines import (
    buy_and_hold_positions,
    flat_positions,
    random_positions,
)
from drl_trading.evaluation.charts import MAX_CHART_POINTS, _minmax_indices
from drl_trading.evaluation.metrics import Trade, compute_metrics, extract_trades, periods_per_year
from drl_trading.evaluation.report import BacktestReport, StrategyResult, SymbolSection
from drl_trading.evaluation.report_html import MAX_TRADES_SHOWN, render_report
from drl_trading.evaluation.trace import simulate

PPY = periods_per_year(1)
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}
SVG_SELF_CLOSING = {"rect", "line", "polyline", "polygon", "path", "circle"}


class StrictParser(HTMLParser):
    """Fails on any unbalanced or mis-nested tag, which `HTMLParser` alone tolerates."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.polyline_points: list[int] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "polyline":
            points = dict(attrs)["points"] or ""
            self.polyline_points.append(len(points.split()))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in SVG_SELF_CLOSING | VOID, f"unexpected self-closing <{tag}/>"
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "polyline":
            points = dict(attrs)["points"] or ""
            self.polyline_points.append(len(points.split()))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> without an open tag"
        opened = self.stack.pop()
        assert opened == tag, f"</{tag}> closes <{opened}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(document)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def result(
    name: str,
    symbol: str,
    times: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    positions: np.ndarray,
) -> tuple[StrategyResult, list[Trade]]:
    trace = simulate(symbol, times, open_, close, positions, CostModel(5.0, 2.0))
    trades = extract_trades(trace)
    return StrategyResult(name, compute_metrics(trace, PPY, trades), trace), trades


def walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n + 1)))
    open_ = np.concatenate(([close[0]], close[:-1])) * (1.0 + rng.normal(0.0, 1e-4, n + 1))
    times = np.datetime64("2024-03-01T00:00", "us") + np.arange(n + 1) * np.timedelta64(1, "m")
    return times, open_, close


def section(symbol: str, n: int, model_positions: np.ndarray | None = None) -> SymbolSection:
    times, open_, close = walk(n, seed=3)
    positions = random_positions(n, seed=5) if model_positions is None else model_positions
    model, trades = result("model", symbol, times, open_, close, positions)
    hold, _ = result("buy-and-hold", symbol, times, open_, close, buy_and_hold_positions(n))
    flat, _ = result("flat", symbol, times, open_, close, flat_positions(n))
    randoms = [result("r", symbol, times, open_, close, random_positions(n, s))[0] for s in (1, 2)]
    aggregate = StrategyResult("random (2 seeds, mean)", randoms[0].metrics, None)
    return SymbolSection(symbol, model, [hold, flat, aggregate], trades)


def flat_section(symbol: str, n: int) -> SymbolSection:
    """Constant price and no position: flat equity, flat price, zero trades, zero drawdown."""
    times = np.datetime64("2024-03-01T00:00", "us") + np.arange(n + 1) * np.timedelta64(1, "h")
    price = np.full(n + 1, 42.0)
    model, trades = result("model", symbol, times, price, price, flat_positions(n))
    hold, _ = result("buy-and-hold", symbol, times, price, price, buy_and_hold_positions(n))
    return SymbolSection(symbol, model, [hold], trades)


def test_report_is_well_formed_self_contained_and_escaped() -> None:
    busy = section("BTC/USDT", 20_000)
    assert len(busy.trades) > MAX_TRADES_SHOWN
    report = BacktestReport(
        title="Backtest <script>alert(1)</script> & co",
        subtitle="models:/ppo-btc/3 · 2024-03-01 → 2024-03-15",
        metadata={"model": "ppo-btc", "fees": "5 bps", "note": "<b>not bold</b>"},
        sections=[busy, flat_section("<BAD>", 48)],
    )
    document = render_report(report)
    parser = parse(document)

    assert document.startswith("<!DOCTYPE html>")
    assert parser.tags["svg"] == 6  # equity, drawdown, price for each symbol
    assert "<script" not in document
    assert "&lt;script&gt;" in document
    assert "<BAD>" not in document
    assert "&lt;BAD&gt;" in document
    assert "&lt;b&gt;not bold&lt;/b&gt;" in document
    urls = re.findall(r"https?://[^\s\"'<>)]+", document)
    assert set(urls) <= {"http://www.w3.org/2000/svg"}
    assert "url(" not in document
    text = " ".join(parser.text)
    metric_names = ["Total return", "CAGR", "Sharpe", "Sortino", "Calmar", "Max drawdown"]
    metric_names += ["Win rate", "Profit factor", "Turnover", "Exposure", "Fees paid"]
    for name in metric_names:
        assert name in text
    for column in ("model", "buy-and-hold", "flat", "random (2 seeds, mean)"):
        assert column in text
    more = len(busy.trades) - MAX_TRADES_SHOWN
    assert f"{more:,} more trades not shown" in text
    assert "The model made no trades." in text
    assert 'class="model' in document  # the model column is highlighted
    assert all(0 < k <= MAX_CHART_POINTS for k in parser.polyline_points)


def test_report_handles_empty_and_traceless_inputs() -> None:
    times = np.array([np.datetime64("2024-01-01T00:00", "us")])
    one = np.array([10.0])
    empty_model, _ = result("model", "EMPTY", times, one, one, np.array([]))
    summary_only = section("ETH/USDT", 50)
    traceless = SymbolSection(
        "ETH/USDT", StrategyResult("model", summary_only.model.metrics, None), [], []
    )
    report = BacktestReport("t", "", {}, [SymbolSection("EMPTY", empty_model, [], []), traceless])
    parser = parse(render_report(report))
    assert "charts unavailable" in " ".join(parser.text)
    parse(render_report(BacktestReport("nothing", "", {}, [])))


def test_downsampling_keeps_extremes_in_order() -> None:
    y = np.sin(np.linspace(0.0, 50.0, 1_000_001))
    y[123_457] = 9.0
    y[876_543] = -9.0
    keep = _minmax_indices(y)
    assert len(keep) <= MAX_CHART_POINTS
    assert np.all(np.diff(keep) > 0)
    assert {0, 123_457, 876_543, 1_000_000} <= set(keep.tolist())
    np.testing.assert_array_equal(_minmax_indices(y[:10]), np.arange(10))


def test_million_step_trace_renders() -> None:
    n = 1_000_000
    times, open_, close = walk(n, seed=9)
    model, trades = result("model", "BIG", times, open_, close, random_positions(n, seed=4))
    hold, _ = result("buy-and-hold", "BIG", times, open_, close, buy_and_hold_positions(n))
    big = SymbolSection("BIG", model, [hold], trades)
    parser = parse(render_report(BacktestReport("big", "", {}, [big])))
    assert parser.tags["svg"] == 3
    assert all(k <= MAX_CHART_POINTS for k in parser.polyline_points)
