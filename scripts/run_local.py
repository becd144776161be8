"""Runs the whole app on this machine without Docker: `make run` (or `.venv/bin/python scripts/run_local.py`).

Starts the model API, the Streamlit UI and Nginx as local processes on loopback, Nginx with the
same site template Compose uses (nginx/templates/default.conf.template), waits until the API is
ready behind Nginx, prints the URL, and on Ctrl-C (or SIGTERM) stops all three. Each process
writes its log to RUN_DIR/<name>.log. Settings, all from the environment:

  BIND_HOST (127.0.0.1)  UI_PORT (8501)  NGINX_PORT (8080)
  RUN_DIR (.cache/run)   API_RATE_LIMIT (20r/s)  API_RATE_BURST (40)  READY_TIMEOUT_S (900)
  NGINX (nginx on PATH, else /usr/sbin/nginx)
  and the API's own: CLIP_CHECKPOINT, CIFAR10_DATA, CLIP_STORE_DIR, CLIP_API_KEY, ... (model_api/README.md),
  two of which the launcher reads too, through the API's Settings, and hands to the other processes:
  CLIP_PORT (8000; API_PORT is accepted too) and CLIP_MAX_UPLOAD_BYTES (10 MiB, for Nginx and Streamlit).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# A script run from the checkout, installed (`make install`) or not: its own packages come first.
sys.path.insert(0, str(ROOT))
from model_api.settings import Settings  # noqa: E402

NGINX_DIR = ROOT / "nginx"
# The launcher's own ports; the API's is its `port` setting.
PORTS = {"ui": "8501", "nginx": "8080"}


class LaunchError(RuntimeError):
    """The stack could not be started; the message says which part and why."""


def render(template: Path, values: dict[str, str]) -> str:
    """envsubst for ${NAME} placeholders, as the Nginx image does; an unknown name is an error
    here rather than an empty string in the config."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise LaunchError(f"{template.name} uses ${{{match.group(1)}}}, which the launcher does not set")
        return values[match.group(1)]

    return re.sub(r"\$\{(\w+)\}", value, template.read_text())


def find_nginx(env: dict[str, str]) -> str:
    found = env.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise LaunchError("no nginx: `make run` installs Debian's (apt-get install nginx), or set NGINX=/path")
    return found


class Stack:
    """The three processes, started in order and stopped in reverse."""

    def __init__(self, env: dict[str, str], settings: Settings | None = None):
        # The API's settings, read once (from the environment and .env unless given): the port and
        # the upload limit then go to every process from here, so no two of them can disagree.
        self.settings = settings or Settings()
        self.host = env.get("BIND_HOST", "127.0.0.1")
        ports = {name: env.get(f"{name.upper()}_PORT", default) for name, default in PORTS.items()}
        self.ports = {"api": str(self.settings.port), **ports}
        self.run_dir = Path(env.get("RUN_DIR", ROOT / ".cache" / "run")).resolve()
        self.ready_timeout = float(env.get("READY_TIMEOUT_S", "900"))
        self.env = env
        self.max_upload_bytes = self.settings.max_upload_bytes
        self.url = f"http://{self.host}:{self.ports['nginx']}"
        self.processes: dict[str, subprocess.Popen] = {}

    def write_nginx_config(self) -> list[str]:
        """Renders both templates into RUN_DIR; returns the Nginx command line."""
        (self.run_dir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        values = {
            "RUN_DIR": str(self.run_dir),
            "NGINX_PORT": f"{self.host}:{self.ports['nginx']}",
            "API_UPSTREAM": f"{self.host}:{self.ports['api']}",
            "UI_UPSTREAM": f"{self.host}:{self.ports['ui']}",
            "CLIP_MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            "API_RATE_LIMIT": self.env.get("API_RATE_LIMIT", "20r/s"),
            "API_RATE_BURST": self.env.get("API_RATE_BURST", "40"),
        }
        site = render(NGINX_DIR / "templates" / "default.conf.template", values)
        (self.run_dir / "default.conf").write_text(site)
        (self.run_dir / "nginx.conf").write_text(render(NGINX_DIR / "local.conf.template", values))
        # -e: without it Nginx opens /var/log/nginx/error.log before reading the config.
        return [find_nginx(self.env), "-e", "stderr", "-p", str(self.run_dir), "-c", str(self.run_dir / "nginx.conf")]

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        nginx = self.write_nginx_config()
        checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True)
        if checked.returncode:
            raise LaunchError(f"nginx rejected the rendered config:\n{checked.stderr}")
        api = [sys.executable, "-m", "model_api", "--host", self.host, "--port", self.ports["api"]]
        # The UI's launcher turns CLIP_MAX_UPLOAD_BYTES into Streamlit's whole-MiB limit, as in the ui image.
        ui = [sys.executable, "-m", "streamlit_ui", "--server.address", self.host, "--server.port", self.ports["ui"]]
        limit = {"CLIP_MAX_UPLOAD_BYTES": str(self.max_upload_bytes)}
        ui_env = {**limit, "API_URL": f"http://{self.host}:{self.ports['api']}"}
        return {"api": (api, limit), "ui": (ui, ui_env), "nginx": (nginx, {})}

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, (command, extra_env) in self.commands().items():
            log = open(self.run_dir / f"{name}.log", "w")  # the child process keeps it open
            # A session of its own: the terminal's Ctrl-C reaches only the launcher, which then
            # stops the children in order instead of all dying at once mid-request.
            self.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.env, "PYTHONPATH": str(ROOT), **extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.run_dir / f"{name}.log").read_text()[-2000:]
                raise LaunchError(f"{name} exited with code {process.returncode}; end of its log:\n{tail}")

    def wait_ready(self, say: Callable[[str], None] = print) -> None:
        """Until the API answers /ready through Nginx and the UI its health check through Nginx."""
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    api = http.get("/api/ready")
                    ui = http.get("/_stcore/health")
                    if api.status_code == 200 and ui.status_code == 200:
                        return
                    state = f"API: {api.json().get('detail', api.status_code)}; UI: {ui.status_code}"
                except (httpx.HTTPError, ValueError) as error:
                    state = f"waiting for the services ({type(error).__name__})"
                if state != last:
                    say(f"  ... {state}")
                    last = state
                time.sleep(0.5)
        raise LaunchError(f"not ready after {self.ready_timeout:.0f} s; logs are in {self.run_dir}")

    def stop(self, grace_s: float = 10.0) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                # SIGQUIT is Nginx's graceful shutdown; the Python servers finish on SIGTERM.
                os.killpg(process.pid, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM (a supervisor, a test) takes the same path as Ctrl-C; SIGINT is set explicitly
    # because a shell starting us in the background (`... &`) leaves it ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    stack = Stack(dict(os.environ))
    try:
        print(f"Starting API, UI and Nginx (logs in {stack.run_dir})", flush=True)
        stack.start()
        stack.wait_ready(lambda line: print(line, flush=True))
        print(f"\nReady: open {stack.url}  (the API is under {stack.url}/api/)\nCtrl-C stops all three.", flush=True)
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    except LaunchError as error:
        print(f"\nerror: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C while stopping would leave orphans behind; stopping is bounded anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
