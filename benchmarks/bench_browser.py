"""Slider-to-render time of the explorer in a real browser.

Starts `streamlit run app.py` on a free port, opens the explorer in Debian's
chromium (Playwright), then moves the budget slider one step at a time with the
keyboard and times each move until the card shows the new budget AND the plot
has redrawn its budget line at it. Prints the first-page time and p50 / p95 of
the moves.

    python benchmarks/bench_slider.py                       # the shipped cached_results/
    python benchmarks/bench_slider.py --results DIR --moves 40
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from elastic import explore  # noqa: E402
from elastic.results import RESULTS_DIR, load_all  # noqa: E402
from test_browser import CARD, CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

# True once the card shows a budget and the plot's budget label shows the same one.
RENDERED = """([card, old]) => {
  const text = document.querySelector(card)?.innerText;
  if (!text || text === old) return false;
  const m = text.match(/Best under (.+?)(?: on the |:)/);
  if (!m) return false;
  return [...document.querySelectorAll('.annotation-text')].some(e => e.textContent === 'budget ' + m[1]);
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)")
    parser.add_argument("--moves", type=int, default=20, help="slider moves to time (default: %(default)s)")
    parser.add_argument("--dataset", default=None, help="default: the first dataset with results")
    parser.add_argument("--arch", default=None, help="default: the architecture with the most rows")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    frame, _ = load_all(args.results)
    frame = explore.prepare(frame)
    if frame.empty:
        print(f"no results in {args.results}: nothing to explore", file=sys.stderr)
        return 2
    dataset = args.dataset or explore.datasets(frame)[0]
    arch = args.arch or explore.archs(frame, dataset)[0]
    rows = explore.select(frame, dataset=dataset, arch=arch)
    print(f"{args.results}: {len(frame)} rows; exploring {arch} on {dataset} ({len(rows)} configurations)")

    with tempfile.TemporaryDirectory() as tmp, streamlit_server(args.results, Path(tmp) / "streamlit.log") as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        started = time.perf_counter()
        page.goto(f"{url}/?dataset={dataset}&arch={arch}&metric=macs")
        card = page.locator(CARD)
        card.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        first = time.perf_counter() - started
        slider = page.get_by_role("slider").first
        slider.focus()
        times = []
        for _ in range(args.moves):
            old = card.inner_text()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(RENDERED, arg=[CARD, old], timeout=30_000, polling="raf")
            times.append((time.perf_counter() - t0) * 1000)
        browser.close()
    print(f"first page (card and plot shown): {first:.2f} s")
    print(f"slider -> card and plot updated, {len(times)} moves: p50 {statistics.median(times):.0f} ms, "
          f"p95 {percentile(times, 95):.0f} ms, min {min(times):.0f} ms, max {max(times):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
