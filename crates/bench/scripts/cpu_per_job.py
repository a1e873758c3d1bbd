#!/usr/bin/env python3
"""CPU time per job of a burn-down, which moves far less with the machine's load than wall time.

    python3 crates/bench/scripts/cpu_per_job.py BENCH_BINARY JOBS [--database-url URL] [--burndown-batch]

Runs `BENCH --scenarios burndown --jobs JOBS [...]` and prints its jobs/s, the bench process's
CPU per job between its "seeded" line and its result line, and with --database-url every
PostgreSQL process's CPU per job over the same span (exited backends counted through the
postmaster's reaped-children counters). Run builds alternately and compare the columns.
"""
import re
import subprocess
import sys


def ticks(pid, children=False):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    total = int(fields[11]) + int(fields[12])
    if children:
        total += int(fields[13]) + int(fields[14])
    return total


def postgres_ticks():
    pids = [int(p) for p in subprocess.run(
        ["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()]
    # The postmaster is the one whose parent is no PostgreSQL process (not the lowest pid:
    # pids wrap around, and a backend may get a lower one).
    def parent(pid):
        try:
            return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return pids[0]  # exited: not the postmaster
    postmaster = next(pid for pid in pids if parent(pid) not in pids)
    total = 0
    for pid in pids:
        try:
            total += ticks(pid, children=pid == postmaster)
        except OSError:
            pass
    return total


def main():
    binary, jobs, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    on_postgres = "--database-url" in extra
    bench = subprocess.Popen(
        [binary, "--scenarios", "burndown", "--jobs", str(jobs), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = end = None
    rate = None
    for line in bench.stdout:
        if "seeded" in line:
            start = (ticks(bench.pid), postgres_ticks() if on_postgres else 0)
        found = re.search(r"burndown: \d+ jobs in [\d.]+s = (\d+) jobs/s", line)
        if found:
            end = (ticks(bench.pid), postgres_ticks() if on_postgres else 0)
            rate = int(found.group(1))
    bench.wait()
    if start is None or end is None:
        sys.exit("the bench printed no burn-down result")
    per_job = lambda a, b: (b - a) * 10_000 / jobs  # ticks are 10 ms; answer in µs
    line = f"{rate} jobs/s, bench CPU {per_job(start[0], end[0]):.1f} µs/job"
    if on_postgres:
        line += f", PostgreSQL CPU {per_job(start[1], end[1]):.1f} µs/job"
    print(line)


if __name__ == "__main__":
    main()
