"""The local launcher (`make run`) on its own: it starts without a dataset, and Ctrl-C stops
all three services. The other web tests share a stack with data; this one needs its own.
What it hands each process is checked first, without starting them."""

import importlib.util
import socket

import httpx
import numpy as np
import streamlit as st
from streamlit.testing.v1 import AppTest

from model_api.settings import Settings
from streamlit_ui import client
from tests.conftest import png_bytes, synthetic_image
from tests.stack import ROOT, WebStack

spec = importlib.util.spec_from_file_location("run_local", ROOT / "scripts" / "run_local.py")
run_local = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_local)


def test_api_port_and_upload_limit_come_from_the_apis_settings(tmp_path):
    stack = run_local.Stack({"RUN_DIR": str(tmp_path)}, Settings(port=9123, max_upload_bytes=3 * 2**20 + 5))
    commands = stack.commands()
    api, api_env = commands["api"]
    assert api[api.index("--port") + 1] == "9123"
    assert api_env["CLIP_MAX_UPLOAD_BYTES"] == str(3 * 2**20 + 5)
    # The UI through its launcher, which turns the same number into Streamlit's MiB.
    ui, ui_env = commands["ui"]
    assert ui[1:3] == ["-m", "streamlit_ui"]
    assert ui_env == {"CLIP_MAX_UPLOAD_BYTES": str(3 * 2**20 + 5), "API_URL": "http://127.0.0.1:9123"}
    site = (tmp_path / "default.conf").read_text()
    assert "server 127.0.0.1:9123;" in site
    assert f"client_max_body_size {3 * 2**20 + 5};" in site


def test_the_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CLIP_PORT", "9124")
    assert run_local.Stack({}).ports["api"] == "9124"
    monkeypatch.delenv("CLIP_PORT")
    monkeypatch.setenv("API_PORT", "9125")  # the launcher's name before CLIP_PORT
    assert run_local.Stack({}).ports["api"] == "9125"
    monkeypatch.delenv("API_PORT")
    assert run_local.Stack({}).ports["api"] == str(Settings.model_fields["port"].default)


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
