"""Elastic's server: `streamlit run serve.py` serves the pages of app.py once
torch and the model pages' modules are loaded and what the model pages show
when they open is measured (about 10 s on 2 cores; the server answers after).

`streamlit run app.py` serves the same pages at once and does that work in
the background after the first page (`elastic.ui.page.warm_up`), so a model
page visited within the first seconds waits for it. Either way the rest (the
other elastic checkpoints) is measured in the background while the app is idle.
"""
import contextlib
import logging
import time

import streamlit as st

from elastic.ui import page

LOG = logging.getLogger("elastic")


@contextlib.asynccontextmanager
async def ready(_app):
    LOG.warning("serve.py: loading torch and measuring what the model pages open on; "
                "the app answers when this is done")
    started = time.monotonic()
    loaded = page.preload()
    if page.precomputing():
        page.precompute(first_only=True)
    LOG.warning("serve.py: ready after %.1f s (torch and the model pages loaded in %.1f s)",
                time.monotonic() - started, loaded)
    yield


app = st.App("app.py", lifespan=ready)
