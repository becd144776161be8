"""`python -m model_api --host H --port P`: serve the API with uvicorn (settings from the environment)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Our middleware writes the access log (with latency); uvicorn's own would duplicate it.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=False, log_config=None)


if __name__ == "__main__":
    main()
