"""The 50-kernel soak: blocking cells in fresh kernels, none may die.

The race it guards against (asyncio's ``_run_once`` popping an empty deque
under nest-asyncio2, docs/architecture.md) struck one kernel in six before the
fix and depends on timing, so the suite runs the shape in 3 kernels (``kernel``
tier) and 10 (``soak``); this runs it in 50, two at a time, and reports how
long a kernel took.

    .venv/bin/python benchmarks/kernel_survival.py [KERNELS]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.test_kernel_survival import survivors


def main() -> int:
    kernels = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    start = time.perf_counter()
    failures = asyncio.run(survivors(kernels))
    elapsed = time.perf_counter() - start
    each = elapsed / kernels
    print(f"{kernels} kernels, {len(failures)} failed, {elapsed:.1f} s ({each:.2f} s each)")
    for failure in failures:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
