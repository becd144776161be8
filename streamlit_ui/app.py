"""Entry point: `streamlit run streamlit_ui/app.py`. Routes to the four pages; each page is a flat
script in views/ that reaches the model only through the HTTP client in client.py."""

from pathlib import Path

import streamlit as st

from streamlit_ui.client import API_URL

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="CLIP on CIFAR-10", page_icon=":material/image_search:", layout="wide")
page = st.navigation(
    [
        st.Page(VIEWS / "home.py", title="Model", icon=":material/home:", default=True),
        st.Page(VIEWS / "classify.py", title="Classify", icon=":material/label:"),
        st.Page(VIEWS / "search.py", title="Search", icon=":material/search:"),
        st.Page(VIEWS / "gallery.py", title="Gallery", icon=":material/photo_library:"),
    ]
)
st.sidebar.caption(f"API: `{API_URL}`")
page.run()
