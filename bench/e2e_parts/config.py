"""The options of one run, and what it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APP = "taskstream.examples.tasks"
TASK_TYPE = "examples.noop"


@dataclass(frozen=True)
class Config:
    # The field order is the order of "config" in the JSON report.
    n: int
    rate: float
    duration: float
    workers: int
    concurrency: int
    batch_size: int
    submitters: int
    timeout: float
    http_client: str  # phase 2 load generator: "raw" or "httpx"
    json_out: Path
