"""The app in a real browser: `streamlit run serve.py` on a free port, Debian's
chromium driven by Playwright. Loads a shared URL, moves the budget slider with
the keyboard and checks that the chosen configuration changes as
elastic.explore says; saves a screenshot to artifacts/explorer.png."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import pytest

from elastic import explore
from elastic.ui import page as page_module
from elastic.explore import METRICS
from elastic.results import load_all
from test_app import build_results

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CARD = ".st-key-best-card"
# The explorer's four panels all drawn: four Vega views with marks in their SVG.
FOUR_PLOTS = ("() => [...document.querySelectorAll('.vega-embed')]"
              ".filter(e => e.querySelector('svg .role-mark')).length >= 4")

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(results: Path, log: Path, app: Path = ROOT / "serve.py") -> Iterator[str]:
    """`streamlit run serve.py` (the README's command; or another app) on 127.0.0.1 with these results;
    yields its URL and always stops it."""
    port = free_port()
    env = {**os.environ, "ELASTIC_RESULTS_DIR": str(results)}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"streamlit exited early: {log.read_text()[-2000:]}"
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit did not serve in 60 s: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()                 # shared with test_app's fixture
    return build_results(base / "app-results", base / "elastic-cache")


def test_slider_in_the_browser_changes_the_chosen_configuration(results, tmp_path):
    from playwright.sync_api import sync_playwright

    table, _ = load_all(results)
    rows = explore.select(explore.prepare(table), dataset="cifar10", arch="resnet20")
    macs = METRICS["macs"]
    spec = explore.slider_spec(macs, rows["macs"])
    top = explore.best_under_budget(rows, macs, float("inf")).row
    start = spec.from_base(top["macs"]) + 2 * spec.step        # two steps above the top pick's cost
    presses = 3                                                 # ... and three steps back: below it
    after = explore.best_under_budget(rows, macs, spec.to_base(start - presses * spec.step))
    assert after.row is None or after.row["run_id"] != top["run_id"]
    query = urlencode({"dataset": "cifar10", "arch": "resnet20", "metric": "macs",
                       "budget": explore.plain_number(spec.to_base(start))})

    shot = ROOT / "artifacts" / "explorer.png"
    shot.parent.mkdir(exist_ok=True)
    with streamlit_server(results, tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2300})
            started = time.monotonic()
            page.goto(f"{url}/?{query}")
            card = page.locator(CARD)
            card.wait_for(timeout=60_000)
            page.wait_for_function(FOUR_PLOTS, timeout=60_000)
            print(f"first page: {time.monotonic() - started:.1f} s")
            before = card.inner_text()
            assert top["run_id"] in before and f"Best under {explore.format_quantity(spec.to_base(start), macs)}" in before

            page.get_by_role("slider").first.focus()
            for _ in range(presses):
                page.keyboard.press("ArrowLeft")
            expected = after.row["run_id"] if after.row else "nothing to choose"
            page.wait_for_function("([sel, text]) => document.querySelector(sel)?.innerText.includes(text)",
                                   arg=[CARD, expected], timeout=30_000)
            now = card.inner_text()
            assert now != before and top["run_id"] not in now
            budget_text = explore.format_quantity(spec.to_base(start - presses * spec.step), macs)
            page.wait_for_function(
                "(text) => [...document.querySelectorAll('.vega-embed text')].some(e => e.textContent === text)",
                arg=f"budget {budget_text}", timeout=30_000)      # the plot moved its budget line too
            moved = f"budget={explore.plain_number(spec.to_base(start - presses * spec.step))}"
            page.wait_for_function("(text) => window.location.search.includes(text)", arg=moved,
                                   timeout=10_000)                # the URL shares the new view
            page.wait_for_timeout(500)                            # let the views finish drawing
            page.screenshot(path=str(shot), full_page=True)
            # Idle on a page without Plotly, the browser has loaded Plotly's bundle for the next page.
            page.wait_for_function("(name) => performance.getEntriesByType('resource')"
                                   ".some(e => e.name.endsWith('/static/js/' + name))",
                                   arg=page_module.plotly_bundle(), timeout=15_000)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_a_shared_link_to_a_page_opens_it_inside_the_app(results, tmp_path):
    """The first visitor of a fresh server arrives on /compare, not on the
    explorer: the page must still run inside app.py's navigation."""
    from playwright.sync_api import sync_playwright

    with streamlit_server(results, tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/compare?dataset=cifar10&arch=resnet20")
            page.wait_for_function(
                "() => document.querySelector('h1')?.innerText === 'Compare with the papers' && "
                "document.querySelector('[data-testid=stSidebarNav]')?.innerText.includes('Explorer')",
                timeout=60_000)
            links = page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
            assert any("Layer complexity" in link for link in links)
            assert not any(link.strip() in ("app", "compare", "explorer") for link in links)
        finally:
            browser.close()
