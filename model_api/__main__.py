"""`python -m model_api [--host H] [--port P]`: serve the API with uvicorn (settings from the environment;
the port defaults to the `port` setting, CLIP_PORT, 8000)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m model_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.port, help="default: CLIP_PORT (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Our middleware writes the access log (with latency); uvicorn's own would duplicate it.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=False, log_config=None)


if __name__ == "__main__":
    main()
