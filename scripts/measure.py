#!/usr/bin/env python3
"""Runs a command and prints its wall time, CPU time and peak RSS: `measure.py CMD ARGS...`.

Forks the command from this small process (not from a large one: a vfork-style
spawn charges the child with its parent's address space) and reads the peak
from wait4. Exits with the command's exit code.
"""
import os
import sys
import time

if len(sys.argv) < 2:
    sys.exit("usage: measure.py COMMAND [ARGS...]")
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - start
cpu = usage.ru_utime + usage.ru_stime
print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {usage.ru_maxrss // 1024} MiB: {' '.join(sys.argv[1:])}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
