"""Cost bounds for tests: run a snippet in a fresh Python and read its own peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_measured(code: str, timeout: float = 3600) -> dict:
    """Run `code` in a new interpreter (the repository importable) and return the dict
    `result` it fills, plus `peak_mb`: the child's own peak resident memory (imports
    included). The snippet times what it measures itself (`result["seconds"]`), so that
    the cost of importing torch does not count.

    The peak is VmHWM of the child's address space: `ru_maxrss` (self or children)
    carries the forking parent's resident size across exec, so a pytest process grown to
    3 GB would make every child look that big."""
    program = "\n".join([
        "import json, re, sys, time",
        f"sys.path.insert(0, {str(ROOT)!r})",
        "result = {}",
        textwrap.dedent(code),
        "status = open('/proc/self/status').read()",
        "result['peak_mb'] = int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 1024",
        "print('RESULT ' + json.dumps(result))",
    ])
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"the snippet failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])
