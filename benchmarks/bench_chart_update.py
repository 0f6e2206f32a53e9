"""Which chart element redraws fast enough for the budget slider? Plotly against
Vega-Lite in Streamlit, in a real browser.

A small Streamlit app (written to a temporary folder) draws what the Explorer's
fragment draws on every slider move: a budget slider, a card, and four scatter
panels of 40 points in four colours with the budget as a dashed line, its label,
and the best configuration under the budget ringed. With Plotly every move sends
a new figure, which the browser draws anew; with Vega-Lite the spec stays the
same and only the named datasets "budget" and "best" change, which Streamlit's
Vega-Lite element replaces in the existing view. Debian's chromium (Playwright)
moves the slider one step at a time with the keyboard and times each move until
the card and all four panels show the new budget. Prints p50 / p95 / max per
element, alternating the two so that the machine's load hits both alike.

    python benchmarks/bench_chart_update.py [--moves 20] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

APP = '''
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

kind = st.query_params.get("kind", "vega")
rng = np.random.default_rng(0)
points = pd.DataFrame({"macs": rng.uniform(5, 125, 40), "acc": rng.uniform(60, 90, 40),
                       "method": rng.choice(["complexity", "uniform", "block", "elastic"], 40)})


@st.fragment
def explorer():
    budget = st.slider("Budget (M MACs)", 5.0, 125.0, 60.0, 1.0)
    under = points[points.macs <= budget]
    best = under.loc[[under.acc.idxmax()]]
    st.markdown(f"<div id='card'>Best under {budget:.1f} M MACs: {best.acc.iloc[0]:.2f}%</div>",
                unsafe_allow_html=True)
    label = f"budget {budget:.1f} M MACs"
    for i, cell in enumerate([c for _ in range(2) for c in st.columns(2)]):
        if kind == "vega":
            x = {"field": "macs", "type": "quantitative", "title": "MACs (M)"}
            y = {"field": "acc", "type": "quantitative", "title": "test accuracy (%)", "scale": {"zero": False}}
            cell.vega_lite_chart({
                "height": 260, "usermeta": {"embedOptions": {"renderer": "svg"}},
                "datasets": {"points": points, "budget": pd.DataFrame({"macs": [budget], "label": [label]}),
                             "best": best},
                "layer": [
                    {"data": {"name": "points"}, "mark": {"type": "point", "filled": True},
                     "encoding": {"x": x, "y": y, "color": {"field": "method", "type": "nominal"}}},
                    {"data": {"name": "budget"}, "mark": {"type": "rule", "strokeDash": [4, 4]},
                     "encoding": {"x": x}},
                    {"data": {"name": "budget"}, "mark": {"type": "text", "align": "left", "dx": 4, "y": 10},
                     "encoding": {"x": x, "text": {"field": "label"}}},
                    {"data": {"name": "best"}, "mark": {"type": "point", "size": 300, "strokeWidth": 2},
                     "encoding": {"x": x, "y": y}}]}, width="stretch")
        else:
            fig = go.Figure()
            for method, group in points.groupby("method"):
                fig.add_scatter(x=group.macs, y=group.acc, mode="markers", name=method)
            fig.add_vline(x=budget, line_dash="dash")
            fig.add_annotation(x=budget, y=1, yref="paper", text=label, showarrow=False)
            fig.add_scatter(x=best.macs, y=best.acc, mode="markers", marker={"size": 18, "symbol": "circle-open"})
            fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 20, "b": 10})
            cell.plotly_chart(fig, width="stretch", key=f"plot{i}")


explorer()
'''

# True once the card and all four panels show the budget `b`.
SHOWN = {"vega": ".vega-embed text", "plotly": ".annotation-text"}
CHECK = """([b, texts]) => {
  const card = document.querySelector('#card');
  if (!card || !card.innerText.includes('Best under ' + b + ' M')) return false;
  return [...document.querySelectorAll(texts)].filter(t => t.textContent === 'budget ' + b + ' M MACs').length >= 4;
}"""


def timed_moves(browser, url: str, kind: str, moves: int) -> list[float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/?kind={kind}")
    page.wait_for_function(CHECK, arg=["60.0", SHOWN[kind]], timeout=120_000)
    page.get_by_role("slider").focus()
    times, budget = [], 60.0
    for _ in range(moves):
        budget += 1
        started = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(CHECK, arg=[f"{budget:.1f}", SHOWN[kind]], timeout=30_000, polling=10)
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.3)                       # let the page settle, as a user's next key press would
    page.close()
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20, help="slider moves per element and round (default: 20)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, each element once a round (default: 2)")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    times: dict[str, list[float]] = {"vega": [], "plotly": []}
    with tempfile.TemporaryDirectory(prefix="elastic-chart-") as tmp:
        app = Path(tmp) / "app.py"
        app.write_text(APP)
        with streamlit_server(Path(tmp), Path(tmp) / "server.log", app=app) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for _ in range(args.rounds):
                for kind in times:
                    times[kind] += timed_moves(browser, url, kind, args.moves)
            browser.close()
    for kind, values in times.items():
        values.sort()
        p95 = values[min(len(values) - 1, round(0.95 * len(values) + 0.5) - 1)]
        print(f"{kind:7s} slider -> card and four panels: p50 {statistics.median(values):.0f} ms, "
              f"p95 {p95:.0f} ms, max {values[-1]:.0f} ms ({len(values)} moves)")


if __name__ == "__main__":
    main()
