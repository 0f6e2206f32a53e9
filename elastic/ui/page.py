"""How every page begins."""
from __future__ import annotations

import streamlit as st


def start(title: str, caption: str) -> None:
    """Make sure the page runs inside app.py's navigation, then show its title.

    Streamlit treats an app with a pages/ folder as an old-style multipage app
    until some session has run app.py (which calls st.navigation). Until then, a
    session whose first URL names a page (a shared link to /layers on a freshly
    started server) runs that file alone: no page config, and a navigation
    listing file names. Switching the flag and rerunning puts the session on
    app.py's navigation, at the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.title(title)
    st.caption(caption)
