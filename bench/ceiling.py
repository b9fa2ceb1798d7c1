"""The throughput ceiling: a bare FastAPI app doing only what every review must do.

It reads the body, parses it with orjson and validates it against the service's own request
model (``app.review.schemas.ReviewRequest``), exactly as ``app.api.review`` does, then answers
a constant of about the size of a real answer. No database, no gates, no audit row. It runs
under the service's server settings: one uvicorn worker, uvloop + httptools, access log off.

    python -m bench.ceiling --port 18999
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.review.schemas import ReviewRequest

# About the size of a real /review answer (~2.4 KB), so the ceiling pays the same bytes.
ANSWER = orjson.dumps({"decision": "submit", "reasons": [], "padding": "x" * 2300})


def create_app() -> FastAPI:
    app = FastAPI(title="trade-review ceiling")

    @app.post("/review")
    async def review(request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        ReviewRequest.model_validate(orjson.loads(await request.body()))
        return Response(ANSWER, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:  # pyright: ignore[reportUnusedFunction]
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
