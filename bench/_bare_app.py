"""A bare FastAPI endpoint on uvicorn: the yardstick for ``bench/task_read.py``."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()
DOC = {"id": "vt_0", "status": "succeeded", "progress": 100, "video_url": "http://x/y.mp4"}


@app.get("/v1/tasks/{task_id}")
async def task(task_id: str) -> dict[str, object]:
    return {**DOC, "id": task_id}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
