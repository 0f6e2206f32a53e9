"""How every page begins."""
from __future__ import annotations

import importlib
import runpy
import threading
import time

import streamlit as st

# What the pages after the first one import (torch and the methods): loaded in
# the background once the first page has had time to draw, so the first visit
# to a model page does not wait seconds for `import torch`.
HEAVY_MODULES = ("elastic.ui.models", "elastic.ui.blocks_view", "elastic.ui.elastic_view", "elastic.ui.jobs",
                 "elastic.ui.upload")
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
    """Import HEAVY_MODULES in a daemon thread, once per server process."""
    def load() -> None:
        time.sleep(WARM_UP_DELAY_S)
        for name in HEAVY_MODULES:
            importlib.import_module(name)
    thread = threading.Thread(target=load, name="elastic-warm-up", daemon=True)
    thread.start()
    return thread
