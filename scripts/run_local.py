"""Runs the whole app on this machine without Docker: `make run` (or `.venv/bin/python scripts/run_local.py`).

Starts the model API, the Streamlit UI and Nginx as local processes on loopback, Nginx with the
same site template Compose uses (nginx/templates/default.conf.template), waits until the API is
ready behind Nginx, prints the URL, and on Ctrl-C (or SIGTERM) stops all three. Each process
writes its log to RUN_DIR/<name>.log; while the API loads, its /ready detail and the loading lines
of its log are echoed, so a first start that encodes the gallery is not a silent minute.

Several API replicas (CLIP_API_REPLICAS, default 1) listen on consecutive ports from CLIP_PORT,
and Nginx balances over them. They share one gallery in PostgreSQL: CLIP_DATABASE_URL's, or,
without one, a server the launcher starts itself (scripts/local_postgres.py, data in
POSTGRES_DIR, .cache/postgres, kept across runs; port POSTGRES_PORT, 5433). A replica that dies
is reported and the others keep serving.

Gallery writes need CLIP_API_KEY. Without one (in the environment or in .env at the repo root,
which the API reads too) the launcher generates one, appends it to .env and reuses it on every
later run; it never replaces a key that is there. The key is printed with the URL.

Settings, all from the environment (or .env):

  BIND_HOST (127.0.0.1)  UI_PORT (8501)  NGINX_PORT (8080)
  RUN_DIR (.cache/run)   API_RATE_LIMIT (20r/s)  API_RATE_BURST (40)  READY_TIMEOUT_S (900)
  CLIP_API_REPLICAS (1)  POSTGRES_DIR (.cache/postgres)  POSTGRES_PORT (5433)  POSTGRES_BIN
  NGINX (nginx on PATH, else /usr/sbin/nginx)
  and the API's own: CLIP_CHECKPOINT, CIFAR10_DATA, CLIP_STORE_DIR, CLIP_API_KEY, ... (model_api/README.md),
  two of which the launcher reads too, through the API's Settings, and hands to the other processes:
  CLIP_PORT (8000; API_PORT is accepted too) and CLIP_MAX_UPLOAD_BYTES (10 MiB, for Nginx and Streamlit).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from dotenv import dotenv_values
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
# A script run from the checkout, installed (`make install`) or not: its own packages come first.
sys.path.insert(0, str(ROOT))
from model_api.settings import Settings  # noqa: E402
from scripts.local_postgres import LocalPostgres, PostgresError  # noqa: E402

NGINX_DIR = ROOT / "nginx"
# The API runs in ROOT and its Settings read `.env` there; the launcher reads and writes the same file.
ENV_FILE = ROOT / ".env"
# While the API loads: a line at least this often even if nothing changed, and encoding progress
# from its log at most this often (the last batch always).
HEARTBEAT_S = 10.0
PROGRESS_EVERY_S = 3.0
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


def stored_api_key(env_file: Path) -> str:
    """The non-blank CLIP_API_KEY in a .env file (read as pydantic-settings reads it), else ""."""
    if not env_file.is_file():
        return ""
    values = {name.upper(): value for name, value in dotenv_values(env_file).items()}
    return (values.get("CLIP_API_KEY") or "").strip()


def save_api_key(env_file: Path, key: str) -> None:
    """Appends the key to .env (created private to the user), leaving every line there as it is."""
    text = env_file.read_text() if env_file.exists() else ""
    separator = "" if not text or text.endswith("\n") else "\n"
    descriptor = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a") as file:
        file.write(f"{separator}# The key for adding and deleting gallery images, made by `make run`.\n")
        file.write(f"CLIP_API_KEY={key}\n")


class ApiLog:
    """The loading lines of the API's log (model_api.app_state and model_api.gallery), as they come."""

    LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR) model_api\.(?:app_state|gallery) (.*)$")
    PROGRESS = re.compile(r"encoded (\d+) of (\d+)")

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.last_progress = float("-inf")

    def new_lines(self, now: float) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, errors="replace") as file:
            file.seek(self.offset)
            text = self.partial + file.read()
            self.offset = file.tell()
        *complete, self.partial = text.split("\n")
        found = []
        for line in complete:
            match = self.LINE.match(line)
            if match is None:
                continue
            message = match.group(2) if match.group(1) == "INFO" else f"{match.group(1).lower()}: {match.group(2)}"
            progress = self.PROGRESS.search(message)
            if progress and progress.group(1) != progress.group(2) and now - self.last_progress < PROGRESS_EVERY_S:
                continue  # one progress line every few seconds is enough; the last one always shows
            if progress:
                self.last_progress = now
            found.append(message)
        return found


def find_nginx(env: dict[str, str]) -> str:
    found = env.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise LaunchError("no nginx: `make run` installs Debian's (apt-get install nginx), or set NGINX=/path")
    return found


class Stack:
    """The three processes, started in order and stopped in reverse."""

    def __init__(self, env: dict[str, str], settings: Settings | None = None, env_file: Path = ENV_FILE):
        # The API's settings, read once (from the environment and .env unless given): the port, the
        # upload limit and the key then go to every process from here, so no two of them can disagree.
        self.env_file = env_file
        self.settings = settings or Settings(_env_file=env_file)
        self.host = env.get("BIND_HOST", "127.0.0.1")
        ports = {name: env.get(f"{name.upper()}_PORT", default) for name, default in PORTS.items()}
        self.ports = {"api": str(self.settings.port), **ports}
        replicas = env.get("CLIP_API_REPLICAS", "1")
        if not replicas.isdigit() or int(replicas) < 1:
            raise LaunchError(f"CLIP_API_REPLICAS must be a whole number of at least 1, not {replicas!r}")
        self.replicas = int(replicas)
        # Replica i (from 0) listens on CLIP_PORT + i; the first keeps the names `api` and api.log.
        self.api_ports = {
            "api" if i == 0 else f"api-{i + 1}": str(self.settings.port + i) for i in range(self.replicas)
        }
        self.postgres: LocalPostgres | None = None
        self.run_dir = Path(env.get("RUN_DIR", ROOT / ".cache" / "run")).resolve()
        self.ready_timeout = float(env.get("READY_TIMEOUT_S", "900"))
        self.env = env
        self.max_upload_bytes = self.settings.max_upload_bytes
        self.url = f"http://{self.host}:{self.ports['nginx']}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.reported_dead: set[str] = set()

    @property
    def api_key(self) -> str:
        return self.settings.api_key.get_secret_value().strip() if self.settings.api_key else ""

    def ensure_api_key(self) -> str:
        """Makes sure the API gets a key for gallery writes; returns where it came from.

        The environment's CLIP_API_KEY first, then .env's; with neither, a new random one is
        appended to .env, so the next run (and the API itself, which reads .env) has the same."""
        if self.api_key:
            return "from CLIP_API_KEY" if self.env.get("CLIP_API_KEY", "").strip() else f"from {self.env_file}"
        key, source = stored_api_key(self.env_file), f"from {self.env_file}"  # under a blank CLIP_API_KEY
        if not key:
            key = secrets.token_urlsafe(24)
            try:
                save_api_key(self.env_file, key)
                source = f"new, saved in {self.env_file}; later runs reuse it"
            except OSError as error:
                source = f"new, for this run only: could not save it in {self.env_file} ({error.strerror})"
        self.settings = self.settings.model_copy(update={"api_key": SecretStr(key)})
        return source

    def write_nginx_config(self) -> list[str]:
        """Renders both templates into RUN_DIR; returns the Nginx command line."""
        (self.run_dir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        values = {
            "RUN_DIR": str(self.run_dir),
            "NGINX_PORT": f"{self.host}:{self.ports['nginx']}",
            "API_SERVERS": "\n    ".join(f"server {self.host}:{port};" for port in self.api_ports.values()),
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
        # The UI's launcher turns CLIP_MAX_UPLOAD_BYTES into Streamlit's whole-MiB limit, as in the ui image.
        ui = [sys.executable, "-m", "streamlit_ui", "--server.address", self.host, "--server.port", self.ports["ui"]]
        limit = {"CLIP_MAX_UPLOAD_BYTES": str(self.max_upload_bytes)}
        # The key explicitly too: a blank CLIP_API_KEY in the environment would hide .env's from the API.
        api_env = {**limit, **({"CLIP_API_KEY": self.api_key} if self.api_key else {})}
        if self.postgres is not None:
            api_env["CLIP_DATABASE_URL"] = self.postgres.url
        apis = {
            name: ([sys.executable, "-m", "model_api", "--host", self.host, "--port", port], api_env)
            for name, port in self.api_ports.items()
        }
        # The UI calls the first replica directly, as it calls the one api service in Compose.
        ui_env = {**limit, "API_URL": f"http://{self.host}:{self.ports['api']}"}
        return {**apis, "ui": (ui, ui_env), "nginx": (nginx, {})}

    def start_postgres(self) -> str | None:
        """Several replicas need one shared store: without CLIP_DATABASE_URL, a local PostgreSQL.
        Returns what to tell the user, or None when nothing was started."""
        if self.replicas == 1 or self.settings.database_url is not None:
            return None
        data_dir = Path(self.env.get("POSTGRES_DIR", ROOT / ".cache" / "postgres"))
        self.postgres = LocalPostgres(data_dir, int(self.env.get("POSTGRES_PORT", "5433")), self.env)
        try:
            self.postgres.start(self.run_dir / "postgres.log")
        except (PostgresError, OSError) as error:
            raise LaunchError(f"PostgreSQL for {self.replicas} API replicas did not start: {error}") from error
        return f"PostgreSQL on 127.0.0.1:{self.postgres.port} (data in {data_dir}) holds the gallery"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        said = self.start_postgres()
        if said:
            print(said, flush=True)
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

    def check_alive(self, spare_replicas: bool = False) -> None:
        """Raises if a process has exited; with `spare_replicas` (once serving), an API replica
        may die while another lives: Nginx sends its requests to the others."""
        dead = {name: process.returncode for name, process in self.processes.items() if process.poll() is not None}
        replicas_left = len(self.api_ports) - len(dead.keys() & self.api_ports.keys())
        for name, code in dead.items():
            if spare_replicas and name in self.api_ports and replicas_left:
                if name not in self.reported_dead:
                    self.reported_dead.add(name)
                    print(f"warning: {name} exited with code {code}; {replicas_left} replica(s) serve", flush=True)
                continue
            tail = (self.run_dir / f"{name}.log").read_text()[-2000:]
            raise LaunchError(f"{name} exited with code {code}; end of its log:\n{tail}")

    def wait_ready(self, say: Callable[[str], None] = print) -> dict:
        """Until the API answers /ready through Nginx and the UI its health check through Nginx;
        meanwhile says what the API is doing. Returns /ready's body (gallery size, dataset)."""
        started = time.monotonic()
        deadline = started + self.ready_timeout
        api_log = ApiLog(self.run_dir / "api.log")
        last, last_said = "", started
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while time.monotonic() < deadline:
                self.check_alive()
                now = time.monotonic()
                for line in api_log.new_lines(now):
                    say(f"  [{now - started:3.0f} s] API log: {line}")
                try:
                    api = http.get("/api/ready")
                    ui = http.get("/_stcore/health")
                    if api.status_code == 200 and ui.status_code == 200 and self.replicas_ready():
                        return api.json()
                    detail = str(api.json().get("detail", api.status_code))
                    if detail.startswith("loading failed"):  # final: the API will not become ready
                        tail = (self.run_dir / "api.log").read_text()[-2000:]
                        raise LaunchError(f"the API is up but not serving, {detail}\nend of its log:\n{tail}")
                    ui_state = "up" if ui.status_code == 200 else f"not up yet ({ui.status_code})"
                    state = f"API: {detail}; UI: {ui_state}"
                except (httpx.HTTPError, ValueError) as error:
                    state = f"waiting for the services to answer ({type(error).__name__})"
                if state != last or now - last_said >= HEARTBEAT_S:
                    say(f"  [{now - started:3.0f} s] {state}")
                    last, last_said = state, now
                time.sleep(0.5)
        raise LaunchError(f"not ready after {self.ready_timeout:.0f} s; logs are in {self.run_dir}")

    def replicas_ready(self) -> bool:
        """Every replica's own /ready (Nginx's answer came from any one of them)."""
        if self.replicas == 1:
            return True
        urls = [f"http://{self.host}:{port}/ready" for port in self.api_ports.values()]
        return all(httpx.get(url, timeout=5).status_code == 200 for url in urls)

    def writes_enabled(self) -> bool:
        """What the API itself says (/v1/info), else whether the launcher gave it a key."""
        try:
            info = httpx.get(f"{self.url}/api/v1/info", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            info = {}
        return bool(info.get("writes_enabled", bool(self.api_key)))

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
        if self.postgres is not None:  # last: the replicas may still write while they stop
            self.postgres.stop()


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def ready_report(url: str, api_key: str, key_source: str, ready: dict, writes_enabled: bool) -> str:
    """What the terminal shows once everything answers: where to go, the key, and what is missing."""
    lines = [f"Ready: open {url}  (the API is under {url}/api/)"]
    if writes_enabled and api_key:
        lines.append(f"API key for adding images: {api_key}  ({key_source})")
    lines.append(f"Gallery: {ready.get('gallery_size', 0)} images; dataset {ready.get('dataset', 'unknown')}")
    if not ready.get("gallery_size"):
        lines.append(
            "warning: the gallery is empty, so searches find nothing. Restart with the dataset, a local copy"
            " in the Hugging Face layout (uoft-cs/cifar10): CIFAR10_DATA=/path/to/cifar10 make run"
            " (or add images on the Gallery page)."
        )
    if not writes_enabled:
        lines.append(
            "warning: adding and deleting images is disabled: the API has no CLIP_API_KEY."
            " Set one (CLIP_API_KEY=... make run, or a CLIP_API_KEY= line in .env) and restart."
        )
    lines.append("Ctrl-C stops all three.")
    return "\n".join(lines)


def main() -> int:
    # SIGTERM (a supervisor, a test) takes the same path as Ctrl-C; SIGINT is set explicitly
    # because a shell starting us in the background (`... &`) leaves it ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        stack = Stack(dict(os.environ))
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    try:
        key_source = stack.ensure_api_key()
        apis = "API" if stack.replicas == 1 else f"{stack.replicas} API replicas"
        print(f"Starting {apis}, UI and Nginx (logs in {stack.run_dir})", flush=True)
        stack.start()
        ready = stack.wait_ready(lambda line: print(line, flush=True))
        report = ready_report(stack.url, stack.api_key, key_source, ready, stack.writes_enabled())
        print(f"\n{report}", flush=True)
        while True:
            stack.check_alive(spare_replicas=True)
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
