"""How every page begins."""
from __future__ import annotations

import importlib
import logging
import os
import runpy
import threading
import time

import streamlit as st

# What the pages after the first one import (torch and the methods): loaded in
# the background once the first page has had time to draw, so the first visit
# to a model page does not wait seconds for `import torch`.
HEAVY_MODULES = ("elastic.ui.models", "elastic.ui.blocks_view", "elastic.ui.blocks_live", "elastic.ui.elastic_view",
                 "elastic.ui.jobs", "elastic.ui.upload")
WARM_UP_DELAY_S = 8.0


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
    first visits to the live pages need (every level of the shipped elastic
    checkpoints evaluated and timed, the block page's trained baseline measured),
    so those visits wait for nothing. A failure there only logs a line: the page
    then computes on its first visit, as it would without the warm-up."""
    def load() -> None:
        time.sleep(WARM_UP_DELAY_S)
        for name in HEAVY_MODULES:
            importlib.import_module(name)
        if os.environ.get("ELASTIC_PRECOMPUTE", "1") == "0":
            return
        for name in ("elastic.ui.elastic_view", "elastic.ui.blocks_live"):
            try:
                importlib.import_module(name).precompute()
            except Exception as err:  # best effort: the page computes what is missing itself
                logging.getLogger(__name__).warning("warm-up of %s skipped: %s", name, err)
    thread = threading.Thread(target=load, name="elastic-warm-up", daemon=True)
    thread.start()
    return thread
