"""How every page begins."""
from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import runpy
import threading
import time
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
    """Import HEAVY_MODULES in a daemon thread, once per server process; then,
    unless $ELASTIC_PRECOMPUTE is 0 (the tests set it), fill the caches that the
    first visits to the model pages need (the layer table and plans, every level
    of the shipped elastic checkpoints evaluated and timed, the block page's
    trained baseline measured),
    so those visits wait for nothing; it waits while the app is in use (when
    each part runs: IMPORT_AFTER_S and the others above). A failure there only
    logs a line: the page then computes on its first visit, as it would
    without the warm-up."""
    def load() -> None:
        started = time.monotonic()
        time.sleep(IMPORT_AFTER_S)
        for name in HEAVY_MODULES:
            wait_until_idle(IMPORT_IDLE_S)
            importlib.import_module(name)
        if os.environ.get("ELASTIC_PRECOMPUTE", "1") == "0":
            return
        time.sleep(max(0.0, started + PRECOMPUTE_AFTER_S - time.monotonic()))
        for name in ("elastic.ui.models", "elastic.ui.elastic_view", "elastic.ui.blocks_live"):
            try:
                importlib.import_module(name).precompute(pause=wait_until_idle)
            except Exception as err:  # best effort: the page computes what is missing itself
                logging.getLogger(__name__).warning("warm-up of %s skipped: %s", name, err)
    thread = threading.Thread(target=load, name="elastic-warm-up", daemon=True)
    thread.start()
    return thread
