"""The local launcher (`make run`) on its own: it starts without a dataset, and Ctrl-C stops
all three services. The other web tests share a stack with data; this one needs its own."""

import socket

import httpx
import numpy as np
import streamlit as st
from streamlit.testing.v1 import AppTest

from streamlit_ui import client
from tests.conftest import png_bytes, synthetic_image
from tests.stack import ROOT, WebStack


def refuses(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_starts_without_a_dataset_and_stops_on_ctrl_c(tiny_checkpoint, tmp_path, monkeypatch):
    stack = WebStack.start(tmp_path, tiny_checkpoint, data_dir=None)
    try:
        assert "${" not in (stack.run_dir / "default.conf").read_text()
        info = stack.get("/api/v1/info").json()
        assert info["gallery_size"] == 0 and info["dataset_loaded"] is False
        picture = png_bytes(synthetic_image(2, np.random.default_rng(2)))
        classified = httpx.post(stack.url + "/api/v1/classify", files={"file": ("a.png", picture)}, timeout=30)
        assert classified.status_code == 200 and len(classified.json()["predictions"]) == 10

        # The model page tells the person how to give the API a gallery.
        monkeypatch.setattr(client, "API_URL", stack.api_url)
        st.cache_data.clear()
        home = AppTest.from_file(ROOT / "streamlit_ui" / "views" / "home.py", default_timeout=60).run()
        assert "CIFAR10_DATA=" in " ".join(item.value for item in home.info)
    finally:
        code = stack.stop()
    assert code == 0
    assert "Stopping..." in (tmp_path / "launcher.log").read_text()
    for url in (stack.url, stack.api_url):
        assert refuses(url), f"{url} still answers after Ctrl-C"
