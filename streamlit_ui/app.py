"""Entry point: `streamlit run streamlit_ui/app.py`. Routes to the four pages; each page is a flat
script in views/ that reaches the model only through the HTTP client in client.py."""

from pathlib import Path

import streamlit as st

from streamlit_ui.components import api_location

VIEWS = Path(__file__).parent / "views"

# An emoji, not a :material/ icon: Streamlit fetches a material page icon from fonts.gstatic.com.
st.set_page_config(page_title="CLIP on CIFAR-10", page_icon="🔎", layout="wide")
page = st.navigation(
    [
        st.Page(VIEWS / "home.py", title="Model", icon=":material/home:", default=True),
        st.Page(VIEWS / "classify.py", title="Classify", icon=":material/label:"),
        st.Page(VIEWS / "search.py", title="Search", icon=":material/search:"),
        st.Page(VIEWS / "gallery.py", title="Gallery", icon=":material/photo_library:"),
    ]
)
st.sidebar.caption(api_location())
page.run()
