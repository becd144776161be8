import pytest
import streamlit as st

from streamlit_ui import client
from tests.stack import web_stack  # noqa: F401 - the session's one running app


@pytest.fixture(autouse=True)
def api(web_stack, monkeypatch):  # noqa: F811
    """AppTest runs the pages in this process: point the client at the stack's API, and start
    each test with empty caches so one test's answers never leak into the next."""
    monkeypatch.setattr(client, "API_URL", web_stack.api_url)
    st.cache_data.clear()
    return web_stack
