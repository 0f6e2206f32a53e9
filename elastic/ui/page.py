"""How every page begins."""
from __future__ import annotations

import runpy

import streamlit as st


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
