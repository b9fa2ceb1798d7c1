"""Dependencies shared by routers (everything lives in ``app.state``, built in lifespan)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from app.pipeline import PipelineDeps


async def get_pipeline(request: Request) -> PipelineDeps:
    # async: a sync dependency would run in the threadpool on every request.
    return cast(PipelineDeps, request.app.state.pipeline)


PipelineDep = Annotated[PipelineDeps, Depends(get_pipeline)]
