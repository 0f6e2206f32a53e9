"""How fast the app answers in a real browser.

Starts `streamlit run serve.py` (or `--app app.py`) on a free port and drives
Debian's chromium with Playwright. Prints, with the machine's load average:
- server start: from `streamlit run` until the server answers (serve.py loads
  torch and the model pages first);
- cold start: a fresh browser opening the explorer on a freshly started server,
  until the card and every plot are drawn;
- slider: the budget slider moved one step at a time with the keyboard, each
  move timed until the card shows the new budget AND the plot's budget line is
  labelled with it (card and plots agree), p50 / p95;
- page switch: a click on each page in the menu, until its title is shown and
  the page has finished running, p50 / p95, then each page's times in order
  (the first visit of a page first);
- Elastic page: the first visit (every level evaluated and timed once), then
  each level switch until its accuracy is shown, p50 / p95.

    python benchmarks/bench_browser.py                       # the shipped cached_results/
    python benchmarks/bench_browser.py --results DIR --moves 40 --switches 2
    python benchmarks/bench_browser.py --app app.py             # without the preload
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from elastic import explore  # noqa: E402
from elastic.results import RESULTS_DIR, load_all  # noqa: E402
from test_browser import CARD, CHROMIUM, CHROMIUM_ARGS, FOUR_PLOTS, streamlit_server  # noqa: E402

# True once the card shows a budget and a plot's budget label shows the same one.
RENDERED = """([card, old]) => {
  const text = document.querySelector(card)?.innerText;
  if (!text || text === old) return false;
  const m = text.match(/Best under (.+?)(?: on the |:)/);
  if (!m) return false;
  return [...document.querySelectorAll('.vega-embed text')].some(e => e.textContent === 'budget ' + m[1]);
}"""
# True once the page's title is `title`, Streamlit has finished running the
# script (the app root's script state; the status widget shows "Running" only
# after a delay, so short runs were missed) and every chart is drawn (a Plotly
# chart has its SVG, a Vega-Lite chart its canvas or SVG). The next click then
# meets a settled page instead of a browser still drawing the last one.
PAGE_DONE = """(title) => {
  const h1 = document.querySelector('h1');
  if (!h1 || !h1.innerText.startsWith(title)) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
  const drawn = (sel, inner) => [...document.querySelectorAll(sel)].every(e => e.querySelector(inner));
  return drawn('[data-testid="stPlotlyChart"]', '.main-svg') && drawn('[data-testid="stVegaLiteChart"]', 'canvas, svg');
}"""
PAGES = ("Layer complexity", "Block pruning", "Elastic networks", "Compare with the papers", "Run it",
         "Export", "Check a checkpoint", "Explorer")
MENU = {"Compare with the papers": "Compare with papers"}     # menu label where it differs from the title


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def spread(values: list[float], unit: str) -> str:
    return (f"p50 {statistics.median(values):.0f} {unit}, p95 {percentile(values, 95):.0f} {unit}, "
            f"min {min(values):.0f}, max {max(values):.0f} ({len(values)} samples)")


ELASTIC_DONE = """() => {
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  const metric = [...document.querySelectorAll('[data-testid="stMetric"]')]
    .find(m => m.innerText.startsWith('Test accuracy'));
  return metric && (!status || !status.innerText.includes('Running')) ? metric.innerText : false;
}"""


def elastic_times(page, url: str, switches: int = 6) -> tuple[float | None, list[float]]:
    """Seconds to the Elastic page's first full view, and milliseconds per level
    switch (keyboard on the level slider) until the new level's accuracy shows."""
    started = time.perf_counter()
    page.goto(f"{url}/elastic")
    try:
        page.wait_for_function(ELASTIC_DONE, timeout=120_000, polling=100)
    except Exception:           # no elastic checkpoint shipped: nothing to time
        return None, []
    first = time.perf_counter() - started
    slider = page.get_by_role("slider").first
    slider.focus()
    times = []
    for i in range(switches):
        old = page.evaluate(ELASTIC_DONE)
        t0 = time.perf_counter()
        page.keyboard.press("ArrowLeft" if i < switches // 2 else "ArrowRight")
        page.wait_for_function(f"() => {{ const t = ({ELASTIC_DONE})(); return t && t !== {old!r}; }}",
                               timeout=60_000, polling="raf")
        times.append((time.perf_counter() - t0) * 1000)
    return first, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)")
    parser.add_argument("--moves", type=int, default=30, help="slider moves to time (default: %(default)s)")
    parser.add_argument("--switches", type=int, default=2, help="rounds through every page (default: %(default)s)")
    parser.add_argument("--app", default="serve.py", choices=("serve.py", "app.py"),
                        help="the script `streamlit run` serves (default: %(default)s)")
    parser.add_argument("--dataset", default=None, help="default: the first dataset with results")
    parser.add_argument("--arch", default=None, help="default: the architecture with the most rows")
    args = parser.parse_args()
    if args.moves < 1 or args.switches < 0:
        parser.error("--moves must be at least 1 and --switches at least 0")

    from playwright.sync_api import sync_playwright

    frame, _ = load_all(args.results)
    frame = explore.prepare(frame)
    if frame.empty:
        print(f"no results in {args.results}: nothing to explore", file=sys.stderr)
        return 2
    dataset = args.dataset or explore.datasets(frame)[0]
    arch = args.arch or explore.archs(frame, dataset)[0]
    rows = explore.configurations(explore.select(frame, dataset=dataset, arch=arch))
    print(f"{args.results}: {len(frame)} rows; exploring {arch} on {dataset} ({len(rows)} configurations)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    launched = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(streamlit_server(args.results, Path(tmp) / "streamlit.log", app=ROOT / args.app))
        serving = time.perf_counter() - launched
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        started = time.perf_counter()
        page.goto(f"{url}/?dataset={dataset}&arch={arch}&metric=macs")
        card = page.locator(CARD)
        card.wait_for(timeout=60_000)
        page.wait_for_function(FOUR_PLOTS, timeout=60_000, polling="raf")
        cold = time.perf_counter() - started

        slider = page.get_by_role("slider").first
        slider.focus()
        moves = []
        for _ in range(args.moves):
            old = card.inner_text()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(RENDERED, arg=[CARD, old], timeout=30_000, polling="raf")
            moves.append((time.perf_counter() - t0) * 1000)

        switches: dict[str, list[float]] = {title: [] for title in PAGES}
        for _ in range(args.switches):
            for title in PAGES:
                t0 = time.perf_counter()
                page.get_by_role("link", name=MENU.get(title, title), exact=True).click()
                page.wait_for_function(PAGE_DONE, arg=title, timeout=60_000, polling="raf")
                switches[title].append((time.perf_counter() - t0) * 1000)
        elastic_first, levels = elastic_times(page, url)
        browser.close()
        log = (Path(tmp) / "streamlit.log").read_text()
    print(f"server start (`streamlit run {args.app}` until it answers): {serving:.2f} s")
    print(f"cold start (fresh browser, fresh server, until the card and 4 plots are drawn): {cold:.2f} s")
    print(f"slider -> card and plots agree on the new budget: {spread(moves, 'ms')}")
    if args.switches:
        every = [ms for times in switches.values() for ms in times]
        print(f"page switch (menu click -> page done): {spread(every, 'ms')}")
        for title, times in switches.items():
            print(f"  {title:<24} {' '.join(f'{ms:.0f}' for ms in times)} ms")
    if elastic_first is not None:
        print(f"elastic page, first visit (every level evaluated and timed): {elastic_first:.2f} s; "
              f"level switch: {spread(levels, 'ms')}")
    print(f"server log: {len(log.splitlines())} lines, {log.count('Inotify')} 'Inotify' warnings")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
