"""``python logged_run.py LOG cxrbench-args...``: run ``cxrbench`` in this process and append one line to LOG per
(chunk, level) of images embedded (``embedded <n images>``) and per embedding-cache entry written
(``wrote <model> <level> <chunk hash>``), each with an unbuffered append, so the lines survive a ``kill -9``.

The kill-and-resume tests (test_kill_resume.py) read LOG to kill at a chosen point and to count what was
computed; nothing here changes what cxrbench does.
"""

from __future__ import annotations

import os
import sys

log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def event(text: str) -> None:
    os.write(log, (text + "\n").encode())


import cxrbench.engine as engine  # noqa: E402
from cxrbench import cli, embed_cache  # noqa: E402

_embed_levels = engine.embed_levels
_write = embed_cache.EmbeddingCache.write


def embed_levels(*args, on_batch=None, **kwargs):
    def logged(n: int) -> None:
        event(f"embedded {n}")
        if on_batch is not None:
            on_batch(n)

    return _embed_levels(*args, on_batch=logged, **kwargs)


def write(self, key: dict, embeddings) -> None:
    _write(self, key, embeddings)
    if self.enabled and "level" in key:  # image embeddings (the text cache's entries have no level)
        event(f"wrote {key['model']} {key['level']} {key['images']}")


engine.embed_levels = embed_levels
embed_cache.EmbeddingCache.write = write
event("start")
sys.exit(cli.main(sys.argv[2:]))
