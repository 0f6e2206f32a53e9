"""What a newcomer sees on the shipped results, in a real Chromium: the
unpruned network is the baseline everywhere, every architecture is offered
(those without rows say "not yet run" with the command), a budget at exactly a
configuration's cost includes it, bad link values are ignored as the warning
says, labels mean one thing, the budget label stays inside its plot, the page
reads at 400 px, and a quick run fine-tunes the shipped baseline, refuses a
second start and is still shown after a reload."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest

from elastic import explore
from elastic.explore import METRICS
from elastic.results import RESULTS_DIR, append_row, load_all, read_results
from test_browser import CARD, CHROMIUM, FOUR_PLOTS, launch, streamlit_server

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
SHOTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    table, problems = load_all(RESULTS_DIR)
    assert not problems
    return explore.prepare(table)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """One server over the shipped results and one browser for the module."""
    from playwright.sync_api import sync_playwright
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server(RESULTS_DIR, log) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            yield url, page
        finally:
            browser.close()


def open_explorer(page, url: str, **query: str) -> str:
    page.goto(f"{url}/?{urlencode(query)}")
    page.locator(CARD).wait_for(timeout=60_000)
    page.wait_for_function(FOUR_PLOTS, timeout=60_000)
    return page.locator(CARD).inner_text()


def test_the_unpruned_network_is_the_baseline_in_the_explorer(browser_page, shipped):
    url, page = browser_page
    rows = explore.configurations(explore.select(shipped, dataset="cifar10", arch="resnet20"))
    baseline = rows[rows["method"] == "baseline"].iloc[0]
    budget = explore.plain_number(baseline["macs"])            # "40800000": the baseline's MACs as shown
    pick = explore.best_under_budget(rows, METRICS["macs"], float(budget))
    assert pick.under_budget == len(rows.dropna(subset=["test_acc"]))   # at exactly its cost, the baseline is in
    text = open_explorer(page, url, dataset="cifar10", arch="resnet20", metric="macs", budget=budget)
    assert pick.row["run_id"] in text and f"Chosen among {pick.fitting} of {pick.considered}" in text
    assert "step0" not in text and "step 0" not in text

    text = open_explorer(page, url, dataset="cifar10", arch="resnet20", methods="baseline")
    assert baseline["run_id"] in text and "Baseline · resnet20" in text
    assert "-0%" not in text and "vs baseline" not in text
    assert text.count("baseline") >= 4           # each number says "baseline" instead of a zero change
    page.screenshot(path=str(SHOTS / "explorer-baseline.png"), full_page=True)


def test_unrun_architectures_and_bad_links_say_so(browser_page, tmp_path):
    url, page = browser_page
    # Results with ResNet-20's rows only, so VGG-16 is unrun whatever the grid has shipped.
    for row in read_results(RESULTS_DIR / "cifar10.csv").to_dict("records"):
        if row["arch"] == "resnet20":
            append_row(tmp_path / "cifar10.csv", {k: v for k, v in row.items() if v is not None and v == v})
    with streamlit_server(tmp_path, tmp_path / "streamlit.log") as only_resnet20:
        page.goto(f"{only_resnet20}/?{urlencode({'dataset': 'cifar10', 'arch': 'vgg16'})}")
        page.get_by_text("Not yet run:").first.wait_for(timeout=60_000)
        page.get_by_text("python -m elastic sweep --grid cpu --archs vgg16").wait_for(timeout=30_000)
        body = page.locator("[data-testid=stMain]").inner_text()
    assert "vgg16 on cifar10" in body and "python -m elastic train --arch vgg16 --dataset cifar10" in body

    text = open_explorer(page, url, dataset="cifar10", arch="resnet50", budget="-5")
    body = page.locator("body").inner_text()
    assert "Architecture 'resnet50' from the link is not available for cifar10" in body
    assert "The budget '-5' in the link is not a number of at least 0; it is ignored." in body
    assert "Best with no budget limit" in text      # ignored, not set to 0


def test_budget_label_stays_inside_its_plot_at_a_low_budget(browser_page, shipped):
    url, page = browser_page
    rows = explore.configurations(explore.select(shipped, dataset="cifar10", arch="resnet20"))
    smallest = rows["macs"].min()
    open_explorer(page, url, dataset="cifar10", arch="resnet20", metric="macs",
                  budget=explore.plain_number(smallest * 1.01))
    label = page.locator(".vega-embed text", has_text=re.compile("^budget ")).first
    plot = page.locator(".vega-embed").filter(has=page.locator("text", has_text=re.compile("^budget "))).first
    box, area = label.bounding_box(), plot.bounding_box()
    assert box["x"] >= area["x"] and box["x"] + box["width"] <= area["x"] + area["width"], (box, area)


def test_labels_on_compare_and_export_mean_one_thing(browser_page, shipped):
    url, page = browser_page
    page.goto(f"{url}/compare?dataset=cifar10&arch=resnet20")
    page.get_by_text("Measured here (resnet20, cifar10)").wait_for(timeout=60_000)
    body = page.locator("[data-testid=stMain]").inner_text()
    # The block-pruning runs' step 0 is the baseline, never the method's best at 0 % fewer parameters.
    assert "0% fewer parameters" not in body.replace("10%", "").replace("20%", "")

    page.goto(f"{url}/export?dataset=cifar10&arch=resnet20")
    page.get_by_text("Configuration", exact=True).wait_for(timeout=60_000)

    def options(typed: str) -> list[str]:
        """The entries the Configuration picker lists for `typed` (the list only
        draws the entries in view, so each check types what it looks for)."""
        page.locator("[data-testid=stSelectbox]").filter(has_text="Configuration").click()
        page.keyboard.type(typed)
        listed = page.get_by_role("option").all_inner_texts()
        page.keyboard.press("Escape")
        return listed
    expected = explore.configurations(explore.select(shipped, dataset="cifar10", arch="resnet20"))
    baselines = expected[expected["method"] == "baseline"]
    listed = options("Baseline")
    assert len(listed) == len(baselines) and len(set(listed)) == len(listed)   # each trained baseline once
    assert not [o for o in options("Block pruning") if "level" in o]           # "step" for block pruning
    assert any("Block pruning (direct) · target 0.5 · step 1" in o for o in options("Block pruning (direct)"))
    uniform = options("Uniform thinning")
    assert uniform and not any("Uniform thinning · FA" in o for o in uniform)  # the mode only on complexity rows


def test_the_explorer_reads_at_400_px(browser_page):
    url, page = browser_page
    page.set_viewport_size({"width": 400, "height": 1800})
    try:
        open_explorer(page, url, dataset="cifar10", arch="resnet20")
        widths = page.evaluate("() => [...document.querySelectorAll('.vega-embed')].map(e => "
                               "e.getBoundingClientRect().width)")
        overflow = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollWidth")
        page.screenshot(path=str(SHOTS / "explorer-400px.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1800})
    assert len(widths) == 4 and min(widths) > 300      # one plot per row: axis titles never overlap
    assert overflow <= 400


def test_a_quick_run_fine_tunes_the_shipped_baseline_refuses_a_second_start_and_survives_a_reload(
        browser_page, shipped):
    url, page = browser_page
    baseline = explore.select(shipped, dataset="cifar10", arch="resnet20", methods=["baseline"])
    page.goto(f"{url}/run?dataset=cifar10&arch=resnet20")
    page.get_by_text("Starts from the trained baseline").wait_for(timeout=60_000)
    assert baseline["run_id"].iloc[0] in page.locator("[data-testid=stMain]").inner_text()
    images = page.get_by_label("Training images")
    images.fill("400")
    images.press("Enter")
    start = page.get_by_role("button", name="Start the quick run")
    start.click()
    page.get_by_role("progressbar").wait_for(timeout=60_000)
    start.click()                                   # a second start while it runs
    page.get_by_text("Not started: a quick run is already running").wait_for(timeout=30_000)
    result = page.locator(".st-key-run-result")
    result.wait_for(timeout=600_000)
    text = result.inner_text()
    assert "fine-tuned from the trained baseline " + baseline["run_id"].iloc[0] in text
    assert "1 epoch on 400 images" in text
    val = float(re.search(r"Validation accuracy\s+([\d.]+)%", text).group(1))
    assert val > 40, text                           # chance is 10 %: it starts from a trained network
    page.locator(".st-key-run-result .g-y2title").first.wait_for(timeout=30_000)
    titles = page.locator(".st-key-run-result .g-xtitle, .st-key-run-result .g-ytitle, "
                          ".st-key-run-result .g-y2title").all_text_contents()
    assert {"epoch", "training loss", "validation accuracy (%)"} <= set(titles), titles
    page.screenshot(path=str(SHOTS / "run-it.png"), full_page=True)

    page.reload()                                   # a new session: the result is still there
    page.locator(".st-key-run-result").get_by_text(f"{val:.2f}%").wait_for(timeout=60_000)
    assert "Last quick run: resnet20, FA plan keeping 0.5" in page.locator(".st-key-run-result").inner_text()
