"""Elastic: explore, compress and export CNNs for edge devices.

`streamlit run app.py`. This file only sets up the pages; each page in pages/
is a short script over the `elastic` package.
"""
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
# (file, title, icon); the first is the default page. Pages whose file is not
# there yet are left out, so they appear once they land.
PAGES = (
    ("pages/explorer.py", "Explorer", ":material/scatter_plot:"),
    ("pages/layers.py", "Layer complexity", ":material/stacked_bar_chart:"),
    ("pages/blocks.py", "Block pruning", ":material/view_agenda:"),
    ("pages/elastic.py", "Elastic networks", ":material/unfold_more:"),
    ("pages/compare.py", "Compare with papers", ":material/compare_arrows:"),
    ("pages/run.py", "Run it", ":material/play_circle:"),
    ("pages/export.py", "Export", ":material/download:"),
)

st.set_page_config(page_title="Elastic", page_icon=":material/compress:", layout="wide")
pages = [st.Page(path, title=title, icon=icon, default=(i == 0))
         for i, (path, title, icon) in enumerate(PAGES) if (HERE / path).is_file()]
st.navigation(pages).run()
