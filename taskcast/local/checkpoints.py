"""Where each stream shard's poller stopped: the last sequence number it finished, per stream and shard.

Kept in memory and, when a path is given, in a small JSON file rewritten atomically after every
change, so a poller that restarts resumes after the last finished record: nothing skipped, nothing
replayed (beyond the at-least-once of a batch that was running when it stopped).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class CheckpointStore:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._positions: dict[str, str] = {}
        if self.path and self.path.exists():
            try:
                self._positions = {str(k): str(v) for k, v in json.loads(self.path.read_text()).items()}
            except (ValueError, AttributeError):
                self._positions = {}  # a damaged file: start from the mapping's starting position

    @staticmethod
    def _key(stream_arn: str, shard_id: str) -> str:
        return f"{stream_arn}|{shard_id}"

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        with self._lock:
            return self._positions.get(self._key(stream_arn, shard_id))

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        with self._lock:
            key = self._key(stream_arn, shard_id)
            current = self._positions.get(key)
            if current is not None and int(current) >= int(sequence_number):
                return  # never move backwards
            self._positions[key] = sequence_number
            if self.path:
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text(json.dumps(self._positions, indent=1))
                os.replace(temporary, self.path)
