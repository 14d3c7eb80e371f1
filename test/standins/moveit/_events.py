"""Where the stand-ins write what happened: one JSON line per event in ``$STANDIN_MOVEIT_DIR/events.jsonl``
(a spawned worker process inherits the variable), read back by the test."""

import json
import os


def log(event: str, **data) -> None:
    folder = os.environ.get("STANDIN_MOVEIT_DIR")
    if not folder:
        return
    line = json.dumps({"ev": event, "pid": os.getpid(), **data}) + "\n"
    fd = os.open(os.path.join(folder, "events.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: whole lines even with two processes
    finally:
        os.close(fd)


def read(folder) -> list[dict]:
    path = os.path.join(str(folder), "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]
