"""What Python's cyclic garbage collector costs a `stackvote serve` process.

    PYTHONPATH=bench/gcprobe GCPROBE_DIR=/tmp/gc \
        python bench/compare.py --only rooms --servers stackvote

Python imports `sitecustomize` at start-up from the path; in a process serving (`serve` among
its arguments) this one times every collection by generation (CPU time, through
`gc.callbacks`) and writes the totals, and each full collection, to GCPROBE_DIR/gc-PID.txt
every 2 s and at exit. Other processes are left alone. (To compare settings, change
server.serve.GC_THRESHOLD_YOUNGEST.)
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
import time
from typing import Any

if "serve" in sys.argv:
    _started: dict[int, float] = {}
    _totals = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    _full: list[tuple[float, float, int]] = []
    _out = os.path.join(os.environ.get("GCPROBE_DIR", "."), f"gc-{os.getpid()}.txt")

    def _timed(phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            _started[generation] = time.process_time()
            return
        took = time.process_time() - _started.get(generation, time.process_time())
        _totals[generation][0] += 1
        _totals[generation][1] += took
        if generation == 2:
            _full.append((time.time(), took, info.get("collected", 0)))

    def _write() -> None:
        with open(_out, "w") as out:
            for generation, (count, took) in _totals.items():
                out.write(f"gen{generation} {count} collections {took:.3f} s\n")
            for at, took, collected in _full:
                out.write(f"full at {at:.3f}: {took * 1000:.1f} ms, {collected} collected\n")

    def _every_2_s() -> None:
        while True:
            time.sleep(2)
            _write()

    gc.callbacks.append(_timed)
    threading.Thread(target=_every_2_s, daemon=True).start()
    atexit.register(_write)
