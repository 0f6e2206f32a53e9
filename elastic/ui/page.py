"""How every page begins."""
from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import logging
import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

# What the pages after the first one import (torch and the methods): loaded in
# the background after the first page run, so the first visit to a model
# page does not wait seconds for `import torch`.
# torch._dynamo too: torch imports it on the first call of a model, which took
# 1-3 s on the first page that ran one (measured with AppTest).
HEAVY_MODULES = ("elastic.ui.models", "elastic.ui.blocks_view", "elastic.ui.blocks_live", "elastic.ui.elastic_view",
                 "elastic.ui.jobs", "elastic.ui.upload", "torch._dynamo")
# When the warm-up works. It imports HEAVY_MODULES from IMPORT_AFTER_S after
# the first page run on (before that the browser is still drawing the first
# page, and an import then delays it by seconds, measured), each once no page
# has run for IMPORT_IDLE_S (an import holds the interpreter). It measures what
# the live pages show from PRECOMPUTE_AFTER_S on, each step once the app has
# been left alone for IDLE_S (an evaluation takes the CPUs; its timings need a
# quiet machine).
IMPORT_AFTER_S = 8.0
IMPORT_IDLE_S = 0.5
PRECOMPUTE_AFTER_S = 12.0
IDLE_S = 1.5
_lock = threading.Lock()
_use = {"runs": 0, "last": time.monotonic()}      # runs in progress, when the last one ended


@contextlib.contextmanager
def in_use() -> Iterator[None]:
    """A page or fragment run: while one is in progress, and for a moment
    after, the warm-up waits."""
    with _lock:
        _use["runs"] += 1
    try:
        yield
    finally:
        with _lock:
            _use["runs"] -= 1
            _use["last"] = time.monotonic()


def fragment(func: Callable[..., Any]) -> Callable[..., Any]:
    """st.fragment whose runs count as use of the app (see in_use): for the
    fragments a user drives, such as the explorer's budget slider."""
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with in_use():
            return func(*args, **kwargs)
    return st.fragment(run)


def preload() -> float:
    """Import HEAVY_MODULES now, in this thread, then freeze what they made;
    the seconds it took (serve.py calls it before the server answers, so no
    page waits for them)."""
    started = time.monotonic()
    for name in HEAVY_MODULES:
        importlib.import_module(name)
    freeze_imports()
    return time.monotonic() - started


def precomputing() -> bool:
    """Whether the caches are filled ahead of the first visits: unless
    $ELASTIC_PRECOMPUTE is 0 (the tests set it: they time nothing and need the cores)."""
    return os.environ.get("ELASTIC_PRECOMPUTE", "1") != "0"


# Streamlit warns once per cached call made outside a page run ("missing ScriptRunContext").
_NO_CONTEXT = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")


def precompute(pause: Callable[[], None] = lambda: None, first_only: bool = False) -> None:
    """Fill the caches that the first visits to the model pages need: the layer
    table and plans and the block page's trained baseline measured, for the
    default architecture, and every level of the shipped elastic checkpoints
    evaluated and timed (`first_only`: of the checkpoint the Elastic page opens
    on). `pause()` is called before each step. A failure only logs a line: the
    page then computes on its first visit, as it would without this."""
    from elastic.ui import blocks_live, elastic_view, models

    steps = {"layers": models.precompute, "blocks": blocks_live.precompute,
             "elastic": functools.partial(elastic_view.precompute, first_only=first_only)}
    level = _NO_CONTEXT.level
    _NO_CONTEXT.setLevel(logging.ERROR)
    try:
        for name, step in steps.items():
            try:
                step(pause=pause)
            except Exception as err:  # best effort: the page computes what is missing itself
                logging.getLogger(__name__).warning("warm-up of the %s page skipped: %s", name, err)
    finally:
        _NO_CONTEXT.setLevel(level)


def freeze_imports() -> None:
    """Keep the objects of the modules imported so far out of every later
    garbage collection. Streamlit runs a full collection after every script run
    (`runner.postScriptGC`), a fragment's included; with torch's ~300,000
    objects in the heap that took over 100 ms a slider move (py-spy on the
    server). Modules live as long as the process, so scanning them finds nothing."""
    gc.collect()
    gc.freeze()


@functools.cache
def plotly_bundle() -> str | None:
    """The file name of Streamlit's Plotly bundle (static/js/PlotlyChart.<hash>.js), if it has one."""
    found = sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))
    return found[0].name if found else None


def load_plotly_when_idle() -> None:
    """Have the browser load Streamlit's Plotly bundle once it is idle. The
    browser loads that bundle (4.7 MB of JavaScript) the first time a Plotly
    chart appears, and running it took 0.8-1.2 s here, on top of the first
    model page's own time (Layer complexity: 0.6 s). Imported earlier from the
    same address, the page's own import finds it loaded. Call it in the
    sidebar: it draws nothing."""
    name = plotly_bundle()
    if name is not None:
        st.html(f"<script>requestIdleCallback(() => import('./static/js/{name}'), {{timeout: 10000}})</script>",
                unsafe_allow_javascript=True)


def wait_until_idle(idle_s: float = IDLE_S) -> None:
    """Block the calling background thread until no page or fragment is
    running and none has ended in the last `idle_s` seconds."""
    while True:
        with _lock:
            running, quiet = _use["runs"] > 0, time.monotonic() - _use["last"]
        if not running and quiet >= idle_s:
            return
        time.sleep(0.1 if running else idle_s - quiet)


def start(title: str, caption: str) -> None:
    """Make sure the page runs inside app.py's navigation, then show its title.
    Call it before anything else on the page.

    Streamlit treats an app with a pages/ folder as an old-style multipage app
    until a run of app.py has called st.navigation. Until then a run that names a
    page (a shared link to /layers opened on a freshly started server; every
    AppTest run) executes that file alone: no page config, and a navigation
    listing file names. Then this runs app.py instead, in the same script run
    (so widget events are kept), which shows this page inside the app, and stops.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if PagesManager.uses_pages_directory:
        ctx = get_script_run_ctx()
        if ctx is not None:
            runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
            st.stop()
    st.title(title)
    st.caption(caption)


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import HEAVY_MODULES in a daemon thread, once per server process (at
    once when serve.py preloaded them), then `precompute` the first visits, so
    those visits wait for nothing; it waits while the app is in use (when each
    part runs: IMPORT_AFTER_S and the others above). After serve.py's
    precompute every step is a cache hit."""
    def load() -> None:
        started = time.monotonic()
        if any(name not in sys.modules for name in HEAVY_MODULES):      # not preloaded (serve.py)
            time.sleep(IMPORT_AFTER_S)
        for name in HEAVY_MODULES:
            wait_until_idle(IMPORT_IDLE_S)
            importlib.import_module(name)
        freeze_imports()
        if precomputing():
            time.sleep(max(0.0, started + PRECOMPUTE_AFTER_S - time.monotonic()))
            precompute(pause=wait_until_idle)
    thread = threading.Thread(target=load, name="elastic-warm-up", daemon=True)
    thread.start()
    return thread
