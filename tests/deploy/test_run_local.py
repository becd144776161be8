"""The local launcher (`make run`) on its own: it starts without a dataset, and Ctrl-C stops
all three services. The other web tests share a stack with data; this one needs its own.
What it hands each process, the API key it keeps in .env and what it prints are checked first,
without starting them."""

import importlib.util
import socket
import stat
import time

import httpx
import numpy as np
import pytest
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


def test_a_missing_key_is_made_saved_in_dot_env_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIP_API_KEY", raising=False)
    env_file = tmp_path / ".env"
    stack = run_local.Stack({"RUN_DIR": str(tmp_path / "run")}, env_file=env_file)
    assert "new, saved in" in stack.ensure_api_key()
    key = stack.api_key
    assert len(key) >= 32
    assert f"CLIP_API_KEY={key}\n" in env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # a secret: readable by its owner only
    # The API gets it, and would read the same from .env on its own (its Settings, its cwd).
    assert stack.commands()["api"][1]["CLIP_API_KEY"] == key
    assert Settings(_env_file=env_file).api_key.get_secret_value() == key
    # The next run finds it and writes nothing.
    saved = env_file.read_text()
    again = run_local.Stack({"RUN_DIR": str(tmp_path / "run")}, env_file=env_file)
    assert again.ensure_api_key() == f"from {env_file}"
    assert again.api_key == key and env_file.read_text() == saved


def test_a_key_that_is_there_is_never_replaced(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    # From the environment: .env is not even created.
    monkeypatch.setenv("CLIP_API_KEY", "from-env")
    stack = run_local.Stack({"CLIP_API_KEY": "from-env"}, env_file=env_file)
    assert stack.ensure_api_key() == "from CLIP_API_KEY" and stack.api_key == "from-env"
    assert not env_file.exists()
    # In .env beside other settings (no final newline): kept as it is, and handed to the API even
    # when a blank CLIP_API_KEY in the environment would hide it from the API's own Settings.
    env_file.write_text("CLIP_LOG_LEVEL=INFO\nCLIP_API_KEY='kept'")
    monkeypatch.setenv("CLIP_API_KEY", "")
    stack = run_local.Stack({"CLIP_API_KEY": "", "RUN_DIR": str(tmp_path / "run")}, env_file=env_file)
    assert stack.ensure_api_key() == f"from {env_file}"
    assert stack.commands()["api"][1]["CLIP_API_KEY"] == "kept"
    assert env_file.read_text() == "CLIP_LOG_LEVEL=INFO\nCLIP_API_KEY='kept'"
    # Other settings but no key: the new one is appended on a line of its own.
    env_file.write_text("CLIP_LOG_LEVEL=INFO")
    stack = run_local.Stack({"CLIP_API_KEY": ""}, env_file=env_file)
    stack.ensure_api_key()
    assert env_file.read_text().startswith("CLIP_LOG_LEVEL=INFO\n#")
    assert run_local.stored_api_key(env_file) == stack.api_key


def test_dot_env_is_never_committed_nor_built_into_an_image():
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    rules = [line for line in (ROOT / ".dockerignore").read_text().split("\n") if line and line[0] != "#"]
    assert rules[0] == "**" and not [rule for rule in rules if ".env" in rule]


def test_ready_report_gives_the_url_the_key_and_what_is_missing():
    url = "http://127.0.0.1:8080"
    full = {"gallery_size": 10000, "dataset": "loaded 10000 test images from /data"}
    report = run_local.ready_report(url, "k3y", "new, saved in /repo/.env", full, writes_enabled=True)
    lines = report.split("\n")
    assert lines[0].startswith(f"Ready: open {url}")
    assert "API key for adding images: k3y  (new, saved in /repo/.env)" in lines
    assert "warning" not in report
    empty = {"gallery_size": 0, "dataset": "unavailable: no such directory"}
    report = run_local.ready_report(url, "", "", empty, writes_enabled=False)
    assert "API key" not in report
    assert "warning: the gallery is empty" in report and "CIFAR10_DATA=" in report
    assert "unavailable: no such directory" in report
    assert "warning: adding and deleting images is disabled" in report and "CLIP_API_KEY" in report


def test_the_api_logs_loading_lines_are_echoed_and_progress_thinned(tmp_path):
    log = tmp_path / "api.log"
    api_log = run_local.ApiLog(log)
    assert api_log.new_lines(0.0) == []  # no log yet
    stamp = "2026-12-02 15:00:18,038"
    log.write_text(
        f'{stamp} INFO model_api.access {{"path": "/ready"}}\n'
        f"{stamp} INFO model_api.gallery encoding 10000 dataset images (cached for next start in x)\n"
        "Loading weights: 100%\n"
        f"{stamp} INFO model_api.gallery encoded 1000 of 10000 dataset images\n"
        f"{stamp} INFO model_api.gallery encoded 2000 of 10000 dataset images\n"
        f"{stamp} WARNING model_api.app_state the gallery is empty\n"
        f"{stamp} INFO model_api.gallery encoded 3000 of 10"  # still being written
    )
    assert api_log.new_lines(1.0) == [
        "encoding 10000 dataset images (cached for next start in x)",
        "encoded 1000 of 10000 dataset images",  # the next one came too soon after it
        "warning: the gallery is empty",
    ]
    with open(log, "a") as file:
        file.write("000 dataset images\n")
        file.write(f"{stamp} INFO model_api.gallery encoded 10000 of 10000 dataset images\n")
    # 3000 is still too soon; the last one always shows.
    assert api_log.new_lines(2.0) == ["encoded 10000 of 10000 dataset images"]
    with open(log, "a") as file:
        file.write(f"{stamp} INFO model_api.gallery encoded 4000 of 10000 dataset images\n")
    assert api_log.new_lines(2.0 + run_local.PROGRESS_EVERY_S) == ["encoded 4000 of 10000 dataset images"]


def test_gives_up_at_once_when_the_api_cannot_load(tmp_path):
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="launcher exited 1") as failed:
        WebStack.start(tmp_path, tmp_path / "no-such-checkpoint", data_dir=None)
    assert "loading failed" in str(failed.value)
    assert time.monotonic() - started < 120  # not the ready timeout (240 s here)


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
    printed = (tmp_path / "launcher.log").read_text()
    assert "Stopping..." in printed
    # While loading it said what the API was doing; when ready, the key and how to add a gallery.
    assert "API: loading the model" in printed or "API log: loaded checkpoint" in printed
    assert "API key for adding images: test-key  (from CLIP_API_KEY)" in printed
    assert "warning: the gallery is empty" in printed and "CIFAR10_DATA=" in printed
    for url in (stack.url, stack.api_url):
        assert refuses(url), f"{url} still answers after Ctrl-C"


def test_replicas_get_consecutive_ports_and_nginx_lists_them_all(tmp_path):
    env = {"RUN_DIR": str(tmp_path), "CLIP_API_REPLICAS": "3"}
    stack = run_local.Stack(env, Settings(port=9200, database_url="postgresql://db.example/clip"))
    commands = stack.commands()
    ports = {name: command[command.index("--port") + 1] for name, (command, _) in commands.items() if "api" in name}
    assert ports == {"api": "9200", "api-2": "9201", "api-3": "9202"}
    site = (tmp_path / "default.conf").read_text()
    assert all(f"server 127.0.0.1:{port};" in site for port in ports.values())
    # The UI keeps calling the first; a database URL of the user's own means no PostgreSQL of ours.
    assert commands["ui"][1]["API_URL"] == "http://127.0.0.1:9200"
    assert stack.start_postgres() is None and stack.postgres is None
    assert run_local.Stack({"RUN_DIR": str(tmp_path)}, Settings()).start_postgres() is None  # one replica: SQLite


@pytest.mark.parametrize("replicas", ["0", "two", "-1"])
def test_a_replica_count_that_is_not_a_positive_number_is_refused(replicas):
    with pytest.raises(run_local.LaunchError, match="CLIP_API_REPLICAS must be"):
        run_local.Stack({"CLIP_API_REPLICAS": replicas}, Settings())
