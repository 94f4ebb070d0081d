"""The machine's processes from /proc, for tests and benchmarks that find, check and kill their
own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    cmdline: str


def processes() -> list[Proc]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "(comm)": state ppid pgrp session
        out.append(Proc(int(d.name), int(fields[1]), int(fields[3]), cmd))
    return out


def with_descendants(roots: set[int], procs: list[Proc] | None = None) -> set[int]:
    procs = procs if procs is not None else processes()
    found = set(roots)
    grown = True
    while grown:
        new = {p.pid for p in procs if p.ppid in found and p.pid not in found}
        found |= new
        grown = bool(new)
    return found
