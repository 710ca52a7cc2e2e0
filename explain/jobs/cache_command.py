"""`python -m explain cache [list|clear|prune]`: what the cache folder holds, by kind,
and removing it (see `bound` for what an entry is and what is never removed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import cache_dir
from ..storage import read_json
from .bound import MAX_GB_ENV, Entry, evict, max_bytes, remove, scan, stray_temporaries, usage
from .store import STORE_FORMAT

ACTIONS = ("list", "clear", "prune")


def add_command(commands: argparse._SubParsersAction) -> None:
    cache = commands.add_parser("cache",
                                help="list the cache folder's sizes by kind, clear it or prune it to its bound")
    cache.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                       help="list (default); clear: remove every idle entry (of --kind); prune: remove stray "
                            f"temporary files and results of older store formats, then evict to {MAX_GB_ENV}")
    cache.add_argument("--kind", default=None, help="clear only this kind (jobs, maps, shared, evaluations, models...)")


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def describe(entries: list[Entry], root: Path) -> str:
    """A table of entries and bytes per kind, the total and the bound."""
    limit = max_bytes()
    lines = [f"{root}  (store format {STORE_FORMAT}; bound {human(limit) if limit else 'none'} via {MAX_GB_ENV})"]
    rows = sorted(usage(entries).items(), key=lambda item: -item[1][1])
    for kind, (count, size) in rows:
        lines.append(f"  {kind:<12} {count:>7} entries  {human(size):>10}")
    busy = sum(1 for e in entries if e.busy)
    lines.append(f"  {'total':<12} {len(entries):>7} entries  {human(sum(e.size for e in entries)):>10}"
                 + (f"  ({busy} in use)" if busy else ""))
    return "\n".join(lines)


def older_formats(entries: list[Entry]) -> list[Entry]:
    """Idle job folders whose record was written by another store format."""
    found = []
    for entry in entries:
        if entry.kind == "jobs" and not entry.busy:
            record = read_json(entry.path / "job.json")
            if not isinstance(record, dict) or record.get("format", 1) != STORE_FORMAT:
                found.append(entry)
    return found


def run(args: argparse.Namespace) -> None:
    root = cache_dir()
    entries = scan(root)
    if args.action == "clear":
        gone = [e for e in entries if not e.busy and (args.kind is None or e.kind == args.kind)]
        for entry in gone:
            remove(entry)
        print(f"removed {len(gone)} entries ({human(sum(e.size for e in gone))})")
    elif args.action == "prune":
        stray = stray_temporaries(root)
        for path in stray:
            path.unlink(missing_ok=True)
        stale = older_formats(entries)
        for entry in stale:
            remove(entry)
        limit = max_bytes()
        evicted = evict(root, limit)[0] if limit is not None else []
        print(f"removed {len(stray)} stray temporary files, {len(stale)} jobs of older store formats, "
              f"{len(evicted)} oldest entries over the bound ({human(sum(e.size for e in stale + evicted))})")
    print(describe(scan(root), root))
