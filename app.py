"""Elastic: explore, compress and export CNNs for edge devices.

`streamlit run serve.py` (or this file). This file only sets up the pages; each page in pages/
is a short script over the `elastic` package.
"""
from pathlib import Path

import streamlit as st

from elastic.ui import page

HERE = Path(__file__).resolve().parent
# Titles and icons of the known pages, in menu order; the first is the default.
# Any other script in pages/ is listed after them under its file name.
KNOWN = {
    "explorer": ("Explorer", ":material/scatter_plot:"),
    "layers": ("Layer complexity", ":material/stacked_bar_chart:"),
    "blocks": ("Block pruning", ":material/view_agenda:"),
    "elastic": ("Elastic networks", ":material/unfold_more:"),
    "compare": ("Compare with papers", ":material/compare_arrows:"),
    "run": ("Run it", ":material/play_circle:"),
    "export": ("Export", ":material/download:"),
    "upload": ("Check a checkpoint", ":material/upload_file:"),
}

st.set_page_config(page_title="Elastic", page_icon=":material/compress:", layout="wide")
names = {p.stem for p in (HERE / "pages").glob("*.py") if not p.name.startswith("_")}
order = [name for name in KNOWN if name in names] + sorted(names - set(KNOWN))
pages = []
for i, name in enumerate(order):
    title, icon = KNOWN.get(name, (name.replace("_", " ").capitalize(), ":material/article:"))
    pages.append(st.Page(f"pages/{name}.py", title=title, icon=icon, default=(i == 0)))
page.warm_up()          # torch and the methods load in the background when the app is not in use
with st.sidebar:
    page.load_plotly_when_idle()
with page.in_use():     # the warm-up waits while a page runs
    st.navigation(pages).run()
