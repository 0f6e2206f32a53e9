"""The user's choices, kept in session state across pages and mirrored in the
URL so a view can be shared."""
from __future__ import annotations

import streamlit as st

from elastic.explore import Choices

_KEY = "elastic.choices"


def choices() -> Choices:
    """This session's choices; on its first run they come from the URL."""
    if _KEY not in st.session_state:          # explicit guard: initialise once per session
        st.session_state[_KEY] = Choices.from_query(st.query_params.to_dict())
    return st.session_state[_KEY]


def remember(new: Choices, *, share: tuple[str, ...] = ()) -> Choices:
    """Keep `new` for the next run and on other pages; put the `share` fields
    in the URL (only when they changed, to avoid needless browser history)."""
    st.session_state[_KEY] = new
    if share:
        wanted = {k: v for k, v in new.to_query().items() if k in share}
        if wanted != st.query_params.to_dict():
            st.query_params.from_dict(wanted)
    return new
