"""Helpers for the Streamlit pages: cached loaders (`data`), the shared choices
and the URL (`state`), widgets that return typed choices (`widgets`), plotly
figure builders (`figures`), cached models and plans (`models`, imports torch)
and background jobs (`jobs`, imports torch).

Only the pages and this package import streamlit; the rest of `elastic` never
does. The explorer imports `data`, `state`, `widgets` and `figures` only, so it
loads without torch.
"""
