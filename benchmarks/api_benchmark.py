"""The model API over real HTTP, measured against the targets of issue 3.

  CIFAR10_DATA=/work/shared/data/cifar10 .venv/bin/python benchmarks/api_benchmark.py \
      --json benchmarks/results/api_benchmark.json

Starts `python -m model_api` (uvicorn) on a free loopback port with its own store directory and
measures it from this machine: one-client latencies through the standard library's HTTP client
(`LeanClient`), load through wrk. Sections (`--only a,b`; all by default):

  startup     seconds from process start to /ready 200: with no cached embeddings (the decoded
              dataset cache is used as found), then restarted on the embeddings it cached (the
              target is the cached start)
  search      POST /v1/search/text from one sequential client: the headline is queries the service
              has not seen before (every one distinct, one in ten with a typing slip, so spelling
              correction and the text tower run on each); then the same queries again, answered
              from the service's cache of query embeddings
  classify    POST /v1/classify with a 32x32 PNG of random pixels, the same one each time: a
              picture the model is unsure of, so every request also takes the shifted views
              (`refine_unsure`), the slow path of classification
  classify_photos
              POST /v1/classify with test images as 32x32 PNGs, each sent once: the mix of
              sure and unsure pictures photos bring
  large_jpeg  POST /v1/classify with a 4000x3000 JPEG
  throughput  text searches from 32 concurrent connections for 60 s, every query distinct and never
              sent before: requests/s and errors (driven by wrk, which must be on PATH)
  throughput_repeated
              the same, with queries drawn from 200 phrases the service has already seen
  accuracy    test images sent as PNG to POST /v1/classify, compared with `main.py --mode TEST`

The checkpoint and data source follow the service's settings (CLIP_CHECKPOINT, CIFAR10_DATA)
unless --checkpoint / --data are given. A smoke run that takes seconds once the store holds the
cached embeddings:

  .venv/bin/python benchmarks/api_benchmark.py --checkpoint runs/seed0/best --queries 20 \
      --repeats 5 --duration 2 --accuracy-limit 50
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import operator
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from queries import distinct_queries, is_misspelled, phrases  # noqa: E402  (this folder is on sys.path as a script)
from reporting import add_data_arguments, latency_summary, save_json  # noqa: E402

from model_api.settings import Settings  # noqa: E402

SECTIONS = (
    "startup",
    "search",
    "classify",
    "classify_photos",
    "large_jpeg",
    "throughput",
    "throughput_repeated",
    "accuracy",
)
# Written into a store directory the benchmark creates, so the cold start only ever empties
# a directory of its own and never a real gallery.
STORE_MARKER = ".api-benchmark-store"

# Issue 3's targets, with issue 14's for text search (queries the service has not seen before)
# and issue 17's for classifying with the wide tower (issue 3's 10 ms was the quick tower's):
# (section, figure) -> (comparison, bound).
TARGETS = {
    ("startup", "cached_s"): ("<", 10.0),
    ("search", "p50_ms"): ("<", 8.0),
    ("search", "p99_ms"): ("<", 20.0),
    ("classify", "p50_ms"): ("<", 15.0),
    ("classify_photos", "p50_ms"): ("<", 15.0),
    ("large_jpeg", "p50_ms"): ("<", 150.0),
    ("throughput", "requests_per_s"): (">=", 200.0),
    ("throughput", "errors"): ("==", 0),
    ("accuracy", "abs_diff_points"): ("<=", 0.2),
}
COMPARISONS = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, "==": operator.eq}


# --- the machine and the server -------------------------------------------------------------


def machine_info() -> dict:
    """What the figures were measured on; the load average shows whether the CPUs were shared."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2 or AVX512: which image runtime "auto" takes
        "load_average_at_start": os.getloadavg(),
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "CLIP_CHECKPOINT": str(args.checkpoint), "CLIP_STORE_DIR": str(args.store_dir)}
    if args.data is not None:
        env["CLIP_DATA_SOURCE"] = args.data  # the settings' first choice, ahead of CIFAR10_DATA
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    return env


@contextlib.contextmanager
def running_server(args: argparse.Namespace) -> Iterator[tuple[str, float]]:
    """Yields (base URL, seconds from process start to /ready 200); stops the server after."""
    port = free_port()
    command = [sys.executable, "-m", "model_api", "--host", "127.0.0.1", "--port", str(port)]
    log_path = server_log(args)
    # A file, not a pipe: nobody reads a pipe while we measure, and the access log would fill it
    # and stall the server.
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=server_env(args), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        args.server_pid = process.pid  # for `server_cpu_s`
        yield base_url, wait_ready(base_url, process, started, args.ready_timeout, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(base_url: str, process: subprocess.Popen, started: float, timeout: float, log_path: Path) -> float:
    with httpx.Client(base_url=base_url, timeout=5) as http:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log_path}")
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                response = http.get("/ready")
                if response.status_code == 200:
                    return time.perf_counter() - started
                if "loading failed" in response.text:
                    raise RuntimeError(f"the server could not load: {response.json()['detail']}")
            time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout:.0f} s; see {log_path}")


def server_cpu_s(args: argparse.Namespace) -> float:
    """CPU seconds the server process has used so far (all its threads; Linux's /proc). Per
    request, it is the work a request costs the server, whatever else shares the CPUs."""
    fields = Path(f"/proc/{args.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def prepare_store(store_dir: Path, empty: bool) -> None:
    """Create the benchmark's store directory; `empty` wipes it first, for a cold start."""
    if store_dir.exists() and any(store_dir.iterdir()) and not (store_dir / STORE_MARKER).exists():
        raise SystemExit(f"{store_dir} is not empty and was not made by this benchmark; choose another --store-dir")
    if empty:
        shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / STORE_MARKER).touch()


# --- measuring ------------------------------------------------------------------------------


class LeanClient:
    """Sends requests that httpx builds through the standard library's client, on one keep-alive
    connection, and times each from its first byte out to the last byte of its answer.

    The latency figures are the server's and the loopback's, not the benchmark's own Python:
    httpx spent ~1.6 ms of this 2-CPU machine on each request (a cached query took 3.69 ms at
    p50 through it, 2.06 ms by the server's access log), http.client ~0.3 ms."""

    def __init__(self, http: httpx.Client) -> None:
        """Opens its connection to `http`'s server, with `http`'s read timeout."""
        self.http = http
        self._connection = HTTPConnection(http.base_url.host, http.base_url.port, timeout=http.timeout.read)

    def post_ms(self, path: str, **content) -> float:
        """ms to POST `content` (httpx's json=, files=...) to `path`; raises on an error status."""
        request = self.http.build_request("POST", path, **content)
        body, headers = request.read(), dict(request.headers)  # built before the clock starts
        started = time.perf_counter()
        self._connection.request("POST", request.url.raw_path.decode(), body, headers)
        response = self._connection.getresponse()
        response.read()
        ms = (time.perf_counter() - started) * 1000
        if response.status >= 300:
            raise RuntimeError(f"POST {path} answered {response.status}")
        return ms


def search(http: httpx.Client, query: str, top_k: int) -> dict:
    response = http.post("/v1/search/text", json={"query": query, "top_k": top_k})
    response.raise_for_status()
    return response.json()


def classify(http: httpx.Client, payload: bytes, content_type: str) -> dict:
    response = http.post("/v1/classify", files={"file": ("image", payload, content_type)})
    response.raise_for_status()
    return response.json()


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def large_jpeg() -> bytes:
    """A 4000x3000 JPEG of about 2 MB, like a phone photo: gradients with noise on top."""
    size = (4000, 3000)
    gradient = Image.linear_gradient("L").resize(size)
    channels = (gradient, gradient.transpose(Image.Transpose.ROTATE_180), Image.effect_noise(size, 24))
    return encode(Image.merge("RGB", channels), "JPEG", quality=90)


# --- sections -------------------------------------------------------------------------------


def bench_search(http: httpx.Client, args: argparse.Namespace) -> dict:
    """Sequential searches, each query distinct and new to the service (the headline: its query
    cache cannot help), then the same queries again in another order (each from the cache)."""
    for i in range(args.warmup):
        search(http, f"warm-up query {i}", args.top_k)  # in no pool: leaves their cache entries cold
    queries = args.queries_pool[: args.queries]
    del args.queries_pool[: args.queries]  # the throughput section must not send them again
    lean = LeanClient(http)

    def search_ms(query: str) -> float:
        return lean.post_ms("/v1/search/text", json={"query": query, "top_k": args.top_k})

    log = server_log(args)
    log_start, cpu_start = settled_size(log), server_cpu_s(args)
    first = {query: search_ms(query) for query in queries}
    log_middle, cpu_middle = settled_size(log), server_cpu_s(args)
    again = random.Random(args.seed).sample(queries, len(queries))
    repeated = [search_ms(query) for query in again]
    cpu_end = server_cpu_s(args)
    misspelled = [ms for query, ms in first.items() if is_misspelled(query)]
    return {
        **latency_summary(list(first.values())),
        "distinct_queries": len(queries),
        "top_k": args.top_k,
        "server_side": latency_summary(logged_latencies(log, log_start, log_middle, "/v1/search/text")),
        "server_cpu_ms_per_request": (cpu_middle - cpu_start) * 1000 / len(queries),
        "misspelled": latency_summary(misspelled),
        "spelled_right": latency_summary([ms for query, ms in first.items() if not is_misspelled(query)]),
        "repeated": latency_summary(repeated),
        "repeated_server_side": latency_summary(
            logged_latencies(log, log_middle, settled_size(log), "/v1/search/text")
        ),
        "repeated_server_cpu_ms_per_request": (cpu_end - cpu_middle) * 1000 / len(queries),
    }


def server_log(args: argparse.Namespace) -> Path:
    return args.store_dir / "server.log"


def settled_size(log: Path) -> int:
    """The log's size once the last answered request has been logged (after its response)."""
    time.sleep(0.5)
    return log.stat().st_size


def logged_latencies(log: Path, start: int, end: int, path: str) -> list[float]:
    """The server's own latency of each request to `path` in bytes [start, end) of its access
    log: from the request reaching the app to the end of its response, without the client's
    share or the connection's."""
    with open(log, "rb") as file:
        file.seek(start)
        lines = file.read(end - start).decode(errors="replace").splitlines()
    records = [json.loads(line[line.index("{") :]) for line in lines if " model_api.access " in line]
    return [record["latency_ms"] for record in records if record["path"] == path]


def upload_latency(http: httpx.Client, payload: bytes, content_type: str, repeats: int, warmup: int) -> dict:
    for _ in range(warmup):
        classify(http, payload, content_type)
    lean = LeanClient(http)
    files = {"file": ("image", payload, content_type)}
    ms = [lean.post_ms("/v1/classify", files=files) for _ in range(repeats)]
    return {**latency_summary(ms), "upload_bytes": len(payload)}


def bench_classify(http: httpx.Client, args: argparse.Namespace) -> dict:
    pixels = np.random.default_rng(args.seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return upload_latency(http, encode(Image.fromarray(pixels), "PNG"), "image/png", args.repeats, args.warmup)


def bench_classify_photos(http: httpx.Client, args: argparse.Namespace) -> dict:
    from model_api.clip.data import load_cifar10  # the library loads only when this section runs
    from model_api.clip.preprocess import tensor_to_image

    images = load_cifar10(args.data, args.cache_dir).test.images[: args.warmup + args.repeats]
    payloads = [encode(tensor_to_image(image), "PNG") for image in images]
    for payload in payloads[: args.warmup]:
        classify(http, payload, "image/png")
    lean = LeanClient(http)
    ms = [
        lean.post_ms("/v1/classify", files={"file": ("image", payload, "image/png")})
        for payload in payloads[args.warmup :]
    ]
    return {**latency_summary(ms), "images": len(ms)}


def bench_large_jpeg(http: httpx.Client, args: argparse.Namespace) -> dict:
    return upload_latency(http, large_jpeg(), "image/jpeg", args.jpeg_repeats, min(args.warmup, 3))


def bench_throughput(http: httpx.Client, args: argparse.Namespace) -> dict:
    """Every query distinct and never sent before: each one runs the text tower."""
    results = sustained_search(str(http.base_url), args, args.queries_pool, repeat=False)
    return {**results, "distinct_queries": results["requests"]}


def bench_throughput_repeated(http: httpx.Client, args: argparse.Namespace) -> dict:
    """Queries drawn from phrases sent once beforehand: each is answered from the query cache."""
    pool = random.Random(args.seed).sample(phrases(), REPEATED_PHRASES)
    for query in pool:
        search(http, query, args.top_k)
    return {**sustained_search(str(http.base_url), args, pool, repeat=True), "phrases": len(pool)}


REPEATED_PHRASES = 200
WRK_SCRIPT = Path(__file__).with_name("search_load.lua")


def sustained_search(base_url: str, args: argparse.Namespace, queries: list[str], repeat: bool) -> dict:
    """`concurrency` connections searching back to back for `duration` s, driven by wrk (a C
    load generator: the Python client this replaced took about as much CPU per request as the
    server, on the same two cores). Queries are taken in order from `queries`, each sent once
    unless `repeat` cycles through them. Every non-2xx answer and every socket error (timeouts
    included) counts as an error."""
    if shutil.which("wrk") is None:
        raise SystemExit("the throughput sections need wrk on PATH (Debian: apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write("\n".join(queries) + "\n")
        file.flush()
        command = [
            "wrk", f"--threads={WRK_THREADS}", f"--connections={args.concurrency}", f"--duration={args.duration:g}s",
            f"--timeout={args.timeout:g}s", f"--script={WRK_SCRIPT}", base_url, "--",
            file.name, str(WRK_THREADS), str(args.top_k), "repeat" if repeat else "once",
        ]  # fmt: skip
        cpu_started, wrk_cpu_started = server_cpu_s(args), children_cpu_s()
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        server_cpu, wrk_cpu = server_cpu_s(args) - cpu_started, children_cpu_s() - wrk_cpu_started
    summary = next((line for line in finished.stdout.splitlines() if line.startswith(WRK_SUMMARY)), None)
    if finished.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stdout}{finished.stderr}")
    wrk = json.loads(summary.removeprefix(WRK_SUMMARY))
    errors = {kind: wrk[kind] for kind in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts")}
    elapsed = wrk["duration_s"]
    return {
        "clients": args.concurrency,
        "load_generator": f"wrk, {WRK_THREADS} thread(s)",
        "duration_s": elapsed,
        "requests": wrk["requests"],
        "requests_per_s": (wrk["requests"] - errors["non_2xx"]) / elapsed,
        # The server's CPU share: on two CPUs of its own it could answer at most about
        # 2 / (server CPU seconds per request) per second, less the load generator's share.
        "server_cpu_ms_per_request": server_cpu * 1000 / max(wrk["requests"], 1),
        "server_cpu_share": server_cpu / elapsed,
        "load_generator_cpu_share": wrk_cpu / elapsed,
        "errors": sum(errors.values()),
        "errors_by_kind": {kind: count for kind, count in errors.items() if count},
        "latency_under_load": {key: wrk[key] for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms")},
    }


WRK_THREADS = 1  # one wrk thread drives 32 connections with CPU to spare; more would take the server's
WRK_SUMMARY = "wrk-summary "  # search_load.lua's done() prints its JSON after this


def bench_accuracy(http: httpx.Client, args: argparse.Namespace) -> dict:
    # The library (and torch with it) loads only when this section runs.
    from model_api.clip.data import load_cifar10
    from model_api.clip.preprocess import tensor_to_image

    data = load_cifar10(args.data, args.cache_dir)
    count = min(args.accuracy_limit or len(data.test), len(data.test))
    correct = 0
    for image, label in zip(data.test.images[:count], data.test.labels[:count].tolist(), strict=True):
        predictions = classify(http, encode(tensor_to_image(image), "PNG"), "image/png")["predictions"]
        correct += predictions[0]["label"] == data.classes[label]
    return {"images": count, "accuracy": correct / count, **compare_with_test_report(correct / count, count, args)}


def compare_with_test_report(accuracy: float, images: int, args: argparse.Namespace) -> dict:
    """Difference in points from `main.py --mode TEST`; held against the target only when both
    saw the same number of images (a subset's accuracy is not the test accuracy)."""
    path = args.test_report or args.checkpoint / "test_report.json"
    if not path.exists():
        return {"test_report": None}
    report = json.loads(path.read_text())
    diff = (accuracy - report["accuracy"]) * 100
    comparison = {"test_report": str(path), "test_accuracy": report["accuracy"], "diff_points": diff}
    if images == report["images"]:
        comparison["abs_diff_points"] = abs(diff)
    return comparison


RUNNERS: dict[str, Callable[[httpx.Client, argparse.Namespace], dict]] = {
    "search": bench_search,
    "classify": bench_classify,
    "classify_photos": bench_classify_photos,
    "large_jpeg": bench_large_jpeg,
    "throughput": bench_throughput,
    "throughput_repeated": bench_throughput_repeated,
    "accuracy": bench_accuracy,
}


# --- running and reporting -----------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "machine": machine_info(),
        "checkpoint": str(args.checkpoint),
        "data": args.data,
        "text_backend": Settings().text_backend,  # what the server, started with this environment, runs
        "image_backend": Settings().image_backend,
        "latency_client": "Python's http.client, one keep-alive connection (LeanClient)",
    }
    if "startup" in args.only:
        prepare_store(args.store_dir, empty=True)
        with running_server(args) as (_, cold_s):
            pass
        results["startup"] = {"cold_s": cold_s}
    prepare_store(args.store_dir, empty=False)
    with running_server(args) as (base_url, ready_s), httpx.Client(base_url=base_url, timeout=args.timeout) as http:
        if "startup" in args.only:
            results["startup"]["cached_s"] = ready_s
        info = http.get("/v1/info").json()
        results["server"] = {key: info[key] for key in ("checkpoint_sha256", "embedding_dim", "gallery_size", "search")}
        for name in args.only:
            if name in RUNNERS:
                print(f"running {name}...", file=sys.stderr, flush=True)
                results[name] = RUNNERS[name](http, args)
    return results


def print_table(results: dict) -> None:
    """One line per top-level figure of each section, with its target and verdict if it has one,
    and the p50 and p99 of the latency summaries beside them (repeated queries, under load)."""
    print(f"{'section':<20} {'figure':<24} {'value':>12}  {'target':<10} verdict")
    for section in SECTIONS:
        for figure, value in figures(results.get(section, {})):
            target, verdict = "", ""
            if (section, figure) in TARGETS:
                comparison, bound = TARGETS[section, figure]
                target = f"{comparison} {bound:g}"
                verdict = "PASS" if COMPARISONS[comparison](value, bound) else "FAIL"
            print(f"{section:<20} {figure:<24} {value:>12.4g}  {target:<10} {verdict}")
    machine = results["machine"]
    print(
        f"machine: {machine['cpus']} x {machine['cpu_model']}, torch {machine['torch']}, "
        f"load average at start {machine['load_average_at_start'][0]:.1f}, text backend {results['text_backend']}, "
        f"image backend {results['image_backend']} ({machine['cpu_capability']})"
    )


def figures(section: dict) -> Iterator[tuple[str, float]]:
    for figure, value in section.items():
        if isinstance(value, dict):
            yield from ((f"{figure}.{key}", value[key]) for key in ("p50_ms", "p99_ms") if key in value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield figure, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = Settings()  # the same defaults the server resolves from the environment and .env
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=settings.checkpoint)
    add_data_arguments(parser)
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=REPO / ".cache" / "api-benchmark",
        help="the server's store; the startup section empties it",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--queries", type=int, default=1000, help="sequential text searches, each query distinct")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=300, help="32x32 PNG classifications")
    parser.add_argument("--jpeg-repeats", type=int, default=30, help="4000x3000 JPEG classifications")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests before each latency section")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sustained load")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--accuracy-limit", type=int, help="classify only the first N test images")
    parser.add_argument(
        "--test-report", type=Path, help="main.py --mode TEST report (default: CHECKPOINT/test_report.json)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for /ready")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    requested = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := requested - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    # Always in SECTIONS order: search runs before throughput, whatever order was typed.
    args.only = [name for name in SECTIONS if name in requested]
    args.checkpoint, args.store_dir = args.checkpoint.resolve(), args.store_dir.resolve()
    args.queries_pool = distinct_queries(args.seed)  # the search section takes its queries off the front
    return args


def main() -> None:
    args = parse_args()
    results = run(args)
    print_table(results)
    save_json(results, args.json)


if __name__ == "__main__":
    main()
