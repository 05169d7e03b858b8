#!/usr/bin/env python3
"""coffer beside restic, borg and rustic on the same data, in one run: `make bench`.

Data sets (made once under --dir, reused by later runs):
  db    a pgbench database (scale --scale, plus a 3-million-row orders table)
        in a throwaway cluster, streamed by `pg_dump -Fc -Z0` into each tool
        (coffer runs pg_dump itself; the peers read it on stdin);
  tree  /usr/lib/x86_64-linux-gnu, two copies of /usr/include, a 256 MiB
        random file and a 256 MiB log-like text file.
Cases, each tool in turn for each case: first backup of db and tree; then one
small change to both (a few rows, a few files) and the nightly re-backup of
each; an unchanged re-backup of the tree; restores of both, checked against
the source. All of that runs --repeat times (default 3), each round from the
same data and starting with the next tool, and the tables give medians and
each round's ratio: single runs on a shared 2-core machine vary by a quarter,
and the tool that runs second is often slower than it would be first. Last, coffer alone on 1 GiB and
4 GiB inputs, for peak memory.

Every repository is local and encrypted, with each tool's default settings
(borg: repokey-blake2, its default lz4). Wall time, CPU time and peak RSS come
from wait4() on the command (peak RSS: the largest process of its tree, which
for a db backup may be pg_dump). Before each measured command (as root) dirty
pages are written back, the page cache is dropped, and what the command reads
(the tree, the database, the tool's repository) is read once to warm it: every
tool starts alike, and none pays for reclaiming the previous one's pages.
Writes results.md and results.json into --dir.
"""
import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COFFER = os.environ.get("COFFER_BIN", os.path.join(ROOT, "target", "release", "coffer"))
PRIMITIVES = os.path.join(ROOT, "target", "release", "examples", "primitives")
PASSPHRASE = "benchmark-only-passphrase"
MiB = 1 << 20
GiB = 1 << 30


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def measured(cmd, env=None, cwd=None):
    """Runs cmd (a list, or a bash pipeline string); returns wall, cpu, peak RSS bytes."""
    if isinstance(cmd, str):
        cmd = ["bash", "-o", "pipefail", "-c", cmd]
    full_env = dict(os.environ, **(env or {}))
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            if cwd:
                os.chdir(cwd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.execvpe(cmd[0], cmd, full_env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench: exit {code}: {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def tree_digest(root):
    """Paths, sizes and contents of the regular files below root."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as f:
                while block := f.read(4 * MiB):
                    h.update(block)
    return h.hexdigest()


# ---- data sets ----

class Postgres:
    def __init__(self, work, scale):
        self.dir = os.path.join(work, "pg")
        self.port = sh([os.path.join(ROOT, "scripts", "pg-cluster.sh"), "start", self.dir],
                       capture_output=True, text=True).stdout.strip()
        self.scale = scale
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/bench"
        self.args = ["-h", "127.0.0.1", "-p", self.port, "-U", "postgres"]

    def psql(self, sql, db="bench"):
        return sh(["psql", *self.args, "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                  capture_output=True, text=True).stdout.strip()

    def ensure_data(self):
        if self.psql("select count(*) from pg_database where datname = 'bench'", db="postgres") == "1":
            return
        log(f"generating the database (pgbench -i -s {self.scale} and an orders table)")
        self.psql("create database bench", db="postgres")
        sh(["pgbench", *self.args, "-i", "-q", "-s", str(self.scale), "bench"], stderr=subprocess.DEVNULL)
        self.psql("""create table orders as select i as id, (random()*100000)::int as customer,
            now() - random() * interval '1000 days' as placed, round((random()*1000)::numeric, 2) as amount,
            md5(i::text) as ref, case when random() < 0.5 then 'shipped' else 'pending' end as status
            from generate_series(1, 3000000) i; alter table orders add primary key (id)""")

    def small_change(self):
        # A few thousand rows in two places: what a quiet day does.
        self.psql("update pgbench_accounts set abalance = abalance + 1 where aid <= 2000")
        self.psql("insert into orders select i, 1, now(), 9.99, md5(i::text), 'pending' from "
                  "generate_series((select max(id) + 1 from orders), (select max(id) + 5000 from orders)) i")

    def pg_dump(self):
        return f"pg_dump -h 127.0.0.1 -p {self.port} -U postgres -Fc -Z0 bench"

    def stop(self):
        sh([os.path.join(ROOT, "scripts", "pg-cluster.sh"), "stop", self.dir])


def write_text(path, size, seed):
    """Log-like lines: compressible, but no two alike."""
    import random
    rnd = random.Random(seed)
    words = ["GET", "POST", "/api/v1/orders", "/static/app.js", "200", "404", "user", "session", "cache-miss",
             "db=primary", "took", "ms", "retry", "INFO", "WARN", "ERROR", "upstream", "timeout"]
    with open(path, "wb") as f:
        written, n = 0, 0
        while written < size:
            lines = []
            for _ in range(2000):
                n += 1
                lines.append(f"2026-11-{n % 28 + 1:02d}T{n % 24:02d}:{n % 60:02d}:{rnd.randrange(60):02d}Z "
                             f"{rnd.choice(words)} {rnd.choice(words)} id={rnd.getrandbits(48):x} "
                             f"{rnd.choice(words)} {rnd.randrange(100000)} {rnd.choice(words)}\n")
            block = "".join(lines).encode()
            f.write(block)
            written += len(block)


def reset_tree(work):
    """Undoes the last round's small change, so every round starts alike.
    False when the tree was never completely built."""
    tree = os.path.join(work, "tree")
    marker = os.path.join(work, "tree.complete")
    if not os.path.exists(marker):
        return False
    with open(marker) as f:
        log_size = int(f.read())
    with open(os.path.join(tree, "big", "app.log"), "r+b") as f:
        f.truncate(log_size)
    if os.path.exists(os.path.join(tree, "big", "new.bin")):
        os.remove(os.path.join(tree, "big", "new.bin"))
    for i in (1, 2):
        shutil.rmtree(os.path.join(tree, f"src{i}"))
        shutil.copytree("/usr/include", os.path.join(tree, f"src{i}"), symlinks=True)
    return True


def ensure_tree(work):
    tree = os.path.join(work, "tree")
    if reset_tree(work):
        return tree
    log("building the file tree")
    marker = os.path.join(work, "tree.complete")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(os.path.join(tree, "big"))
    shutil.copytree("/usr/lib/x86_64-linux-gnu", os.path.join(tree, "lib"), symlinks=True)
    for i in (1, 2):
        shutil.copytree("/usr/include", os.path.join(tree, f"src{i}"), symlinks=True)
    with open(os.path.join(tree, "big", "random.bin"), "wb") as f:
        for _ in range(256):
            f.write(os.urandom(MiB))
    write_text(os.path.join(tree, "big", "app.log"), 256 * MiB, seed=1)
    with open(marker, "w") as f:
        f.write(str(os.path.getsize(os.path.join(tree, "big", "app.log"))))
    return tree


def change_tree(tree):
    """A small nightly change: a grown log, a few edited files, a new one, a deleted one."""
    with open(os.path.join(tree, "big", "app.log"), "ab") as f:
        f.write(b"2026-11-24T00:00:00Z INFO nightly line\n" * 30000)
    edited = 0
    for dirpath, _, files in os.walk(os.path.join(tree, "src1")):
        for name in sorted(files)[:1]:
            with open(os.path.join(dirpath, name), "a") as f:
                f.write("/* edited */\n")
            edited += 1
        if edited >= 20:
            break
    with open(os.path.join(tree, "big", "new.bin"), "wb") as f:
        f.write(os.urandom(4 * MiB))
    victim = os.path.join(tree, "src2", "stdio.h")
    if os.path.exists(victim):
        os.remove(victim)


# ---- the tools ----

class Tool:
    name = ""

    def __init__(self, work, pg):
        self.work = work
        self.repo = os.path.join(work, "repos", self.name)
        self.pg = pg
        self.env = {}

    def fresh(self):
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(os.path.join(self.work, "cache", self.name), ignore_errors=True)
        os.makedirs(os.path.dirname(self.repo), exist_ok=True)


class Coffer(Tool):
    name = "coffer"

    bin = COFFER

    def __init__(self, work, pg):
        super().__init__(work, pg)
        self.env = {"COFFER_REPOSITORY": self.repo, "COFFER_PASSWORD": PASSPHRASE}

    def version(self):
        return sh([self.bin, "--version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        sh([self.bin, "init"], env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL)

    def backup_db(self, n):
        return [self.bin, "backup", "-q", "--pg", self.pg.url, "--tag", f"db{n}"]

    def backup_tree(self, tree, n):
        return [self.bin, "backup", "-q", tree, "--tag", f"tree{n}"]

    def snapshot(self, tag):
        out = sh([self.bin, "snapshots", "--json", "--tag", tag], env=dict(os.environ, **self.env),
                 capture_output=True, text=True).stdout
        return json.loads(out)[-1]["id"]

    def restore_db(self, out, n):
        return [self.bin, "restore", "-q", self.snapshot(f"db{n}"), "--to-file", os.path.join(out, "bench.dump")]

    def restore_tree(self, out, n):
        return [self.bin, "restore", "-q", self.snapshot(f"tree{n}"), "--target", out]


class CofferBase(Coffer):
    """Another build of coffer (COFFER_BASE=path), for an A/B of a change in one run."""
    name = "coffer-base"
    bin = os.environ.get("COFFER_BASE", "coffer-base: set COFFER_BASE to a coffer binary")


class CofferWriteOnly(Coffer):
    """coffer whose backups run with a write-only key (restores with the full one)."""
    name = "coffer-write-only"

    def __init__(self, work, pg):
        super().__init__(work, pg)
        self.key = os.path.join(work, "cache", "coffer-write-only.key")
        self.env = dict(self.env, XDG_CACHE_HOME=os.path.join(work, "cache", "coffer-write-only"))

    def init(self):
        super().init()
        shutil.rmtree(self.env["XDG_CACHE_HOME"], ignore_errors=True)
        if os.path.exists(self.key):
            os.remove(self.key)
        os.makedirs(os.path.dirname(self.key), exist_ok=True)
        sh([self.bin, "key", "add-file", "--write-only", self.key], env=dict(os.environ, **self.env),
           stdout=subprocess.DEVNULL)

    def _write_only(self, argv):
        return " ".join(["env", "-u", "COFFER_PASSWORD", f"COFFER_PASSWORD_FILE={shlex.quote(self.key)}"]
                        + [shlex.quote(a) for a in argv])

    def backup_db(self, n):
        return self._write_only(super().backup_db(n))

    def backup_tree(self, tree, n):
        return self._write_only(super().backup_tree(tree, n))


class Restic(Tool):
    name = "restic"

    def __init__(self, work, pg):
        super().__init__(work, pg)
        self.env = {"RESTIC_REPOSITORY": self.repo, "RESTIC_PASSWORD": PASSPHRASE,
                    "RESTIC_CACHE_DIR": os.path.join(work, "cache", "restic")}

    def version(self):
        return sh(["restic", "version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        sh(["restic", "init"], env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL)

    def backup_db(self, n):
        return f"{self.pg.pg_dump()} | restic backup -q --stdin --stdin-filename bench.dump --tag db{n}"

    def backup_tree(self, tree, n):
        return ["restic", "backup", "-q", tree, "--tag", f"tree{n}"]

    def restore_db(self, out, n):
        return ["restic", "restore", "latest", "--tag", f"db{n}", "--target", out]

    def restore_tree(self, out, n):
        return ["restic", "restore", "latest", "--tag", f"tree{n}", "--target", out]


class Borg(Tool):
    name = "borg"

    def __init__(self, work, pg):
        super().__init__(work, pg)
        self.env = {"BORG_REPO": self.repo, "BORG_PASSPHRASE": PASSPHRASE,
                    "BORG_BASE_DIR": os.path.join(work, "cache", "borg")}

    def version(self):
        return sh(["borg", "--version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        sh(["borg", "init", "-e", "repokey-blake2"], env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL)

    def backup_db(self, n):
        return f"{self.pg.pg_dump()} | borg create --stdin-name bench.dump ::db{n} -"

    def backup_tree(self, tree, n):
        return ["borg", "create", f"::tree{n}", tree]

    def restore_db(self, out, n):
        return ["bash", "-c", f"cd {out} && borg extract ::db{n}"]

    def restore_tree(self, out, n):
        return ["bash", "-c", f"cd {out} && borg extract ::tree{n}"]


class Rustic(Tool):
    name = "rustic"

    def __init__(self, work, pg):
        super().__init__(work, pg)
        self.env = {"RUSTIC_REPOSITORY": self.repo, "RUSTIC_PASSWORD": PASSPHRASE,
                    "RUSTIC_CACHE_DIR": os.path.join(work, "cache", "rustic"), "RUSTIC_NO_PROGRESS": "true"}

    def version(self):
        return sh(["rustic", "--version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        sh(["rustic", "init"], env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)

    def backup_db(self, n):
        # --force: with a parent snapshot, rustic 0.11 takes stdin for an
        # unchanged file and stores nothing (seen here).
        return f"{self.pg.pg_dump()} | rustic backup --force --stdin-filename bench.dump --tag db{n} -"

    def backup_tree(self, tree, n):
        return ["rustic", "backup", tree, "--tag", f"tree{n}"]

    def restore_db(self, out, n):
        return ["rustic", "restore", "--filter-tags", f"db{n}", "latest", out]

    def restore_tree(self, out, n):
        return ["rustic", "restore", "--filter-tags", f"tree{n}", "latest", out]


TOOLS = {t.name: t for t in (Coffer, CofferWriteOnly, CofferBase, Restic, Borg, Rustic)}


def find_file(root, name):
    for dirpath, _, files in os.walk(root):
        if name in files:
            return os.path.join(dirpath, name)
    raise SystemExit(f"bench: {name} not found in the restore under {root}")


def find_tree(root, marker="big"):
    for dirpath, dirs, _ in os.walk(root):
        if marker in dirs and "lib" in dirs:
            return dirpath
    raise SystemExit(f"bench: the restored tree not found under {root}")


# ---- the report ----

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def aggregate(raw):
    """One row per case and tool: median wall, CPU and added bytes over the
    rounds, the largest peak RSS, and every round's wall time."""
    groups = {}
    for r in raw:
        groups.setdefault((r["case"], r["tool"]), []).append(r)
    rows = []
    for rs in groups.values():
        row = dict(rs[-1])
        row["walls"] = [r["wall"] for r in rs]
        row["rounds"] = [r["round"] for r in rs]
        row["wall"] = median(row["walls"])
        row["cpu"] = median([r["cpu"] for r in rs])
        row["rss"] = max(r["rss"] for r in rs)
        if all(r.get("added") is not None for r in rs):
            row["added"] = median([r["added"] for r in rs])
        rows.append(row)
    return rows


def round_ratios(raw, case):
    """coffer's wall time over the fastest peer's, round by round."""
    out = []
    for n in sorted({r["round"] for r in raw if r["case"] == case}):
        same = [r for r in raw if r["case"] == case and r["round"] == n]
        base = [r["wall"] for r in same if r["tool"] == "coffer"]
        peers = [r["wall"] for r in same if r["tool"] != "coffer"]
        if base and peers:
            out.append(base[0] / min(peers))
    return out


def report(raw, sizes, meta, primitives):
    rows = aggregate(raw)
    tools = meta["tools"]
    out = [f"Machine: {meta['machine']}  ", f"Versions: {'; '.join(meta['versions'])}  ",
           f"Data: db dump {sizes['db'] / 1e9:.2f} GB, tree {sizes['tree'] / 1e9:.2f} GB "
           f"({sizes['tree_files']} files)", ""]
    if meta["repeat"] > 1:
        out.append(f"Each row: the median of {meta['repeat']} rounds (wall s in brackets: the fastest and slowest "
                   "round), the largest peak RSS.")
        out.append("")
    out.append("| case | tool | wall s | MB/s | CPU s | peak RSS MiB | repo MB (+added) | wall vs coffer |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    cases = []
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])
    for case in cases:
        base = next((r for r in rows if r["case"] == case and r["tool"] == "coffer"), None)
        for r in (r for r in rows if r["case"] == case):
            ratio = f"{r['wall'] / base['wall']:.2f}x" if base and base["wall"] > 0 else "-"
            repo = f"{r['repo'] / 1e6:.0f}" if r.get("repo") is not None else ""
            if r.get("added") is not None:
                repo = f"+{r['added'] / 1e6:.1f}"
            wall = f"{r['wall']:.1f}"
            if len(r["walls"]) > 1:
                wall += f" ({min(r['walls']):.1f}-{max(r['walls']):.1f})"
            out.append(f"| {case} | {r['tool']} | {wall} | {r['bytes'] / 1e6 / r['wall']:.0f} | "
                       f"{r['cpu']:.1f} | {r['rss'] / MiB:.0f} | {repo} | {ratio} |")
    out.append("")
    out.append("Ratios: coffer's wall time over the fastest peer's (at most 0.70 is the goal; "
               "below 1.00 coffer is faster)")
    out.append("")
    out.append("| case | fastest peer | its wall s | coffer wall s | coffer / fastest | each round |")
    out.append("|---|---|---:|---:|---:|---|")
    for case in cases:
        base = next((r for r in rows if r["case"] == case and r["tool"] == "coffer"), None)
        peers = [r for r in rows if r["case"] == case and r["tool"] != "coffer"]
        if base and peers:
            best = min(peers, key=lambda r: r["wall"])
            each = ", ".join(f"{x:.2f}" for x in round_ratios(raw, case))
            out.append(f"| {case} | {best['tool']} | {best['wall']:.1f} | {base['wall']:.1f} | "
                       f"{base['wall'] / best['wall']:.2f} | {each} |")
    if "repo" in sizes:
        out.append("")
        out.append("Repository size after all backups: " +
                   ", ".join(f"{t} {sizes['repo'][t] / 1e6:.0f} MB" for t in tools if t in sizes["repo"]))
    if primitives:
        out.append("")
        out.append("Building blocks, one core each (`cargo run --release --example primitives`):")
        out.append("")
        out.append("```")
        out.extend(primitives)
        out.append("```")
    return "\n".join(out) + "\n"


def wal_case(work, seconds=60):
    """WAL archiving at full speed: a cluster archiving through `coffer
    wal-push` (a key file, a local repository) while pgbench writes as fast
    as this machine lets it. Samples the backlog (segments waiting in
    pg_wal/archive_status/*.ready) every 0.25 s; then pushes 32 of the
    segments again, one process each, into a fresh repository, for the
    per-segment cost. Returns the lines of the report's WAL section."""
    d = os.path.join(work, "pg-wal")
    shutil.rmtree(d, ignore_errors=True)
    script = os.path.join(ROOT, "scripts", "pg-cluster.sh")
    root = os.geteuid() == 0
    repo, key = os.path.join(d, "archive"), os.path.join(d, "wal.key")
    port = sh([script, "start", d], capture_output=True, text=True).stdout.strip()
    sh([script, "stop", d])
    env = dict(os.environ, COFFER_PASSWORD=PASSPHRASE)
    sh([COFFER, "init", "-q", "-r", repo], env=env)
    sh([COFFER, "key", "add-file", "-q", "-r", repo, key], env=env)
    if root:
        sh(["chown", "-R", "postgres:", repo, key])
    with open(os.path.join(d, "data", "postgresql.conf"), "a") as f:
        f.write(f"\nwal_level = replica\narchive_mode = on\nwal_keep_size = '2GB'\nmax_wal_size = '1GB'\n"
                f"archive_command = 'COFFER_PASSWORD_FILE={key} {COFFER} wal-push -r {repo} --quiet %p'\n")
    port = sh([script, "start", d], capture_output=True, text=True).stdout.strip()
    args = ["-h", "127.0.0.1", "-p", port, "-U", "postgres"]
    q = lambda sql: sh(["psql", *args, "-d", "postgres", "-qAtc", sql], capture_output=True, text=True).stdout.strip()
    status = os.path.join(d, "data", "pg_wal", "archive_status")
    ready = lambda: sum(1 for n in os.listdir(status) if n.endswith(".ready"))
    def sampled(cmd):
        """Runs cmd while sampling the backlog: its wall time, the samples,
        and the segments of WAL it produced."""
        start_lsn = q("select pg_current_wal_lsn()")
        t = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        backlog = []
        while p.poll() is None:
            backlog.append(ready())
            time.sleep(0.25)
        out = p.stdout.read()
        if p.returncode != 0:
            raise SystemExit(f"bench: exit {p.returncode}: {' '.join(cmd)}")
        produced = int(float(q(f"select pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')"))) / (16 * MiB)
        return time.monotonic() - t, backlog or [0], produced, out

    try:
        # pgbench -i: COPY and index builds, WAL as fast as the server writes it.
        log("wal: pgbench -i -s 100, archiving through coffer wal-push")
        init_wall, init_backlog, init_segs, _ = sampled(["pgbench", *args, "-i", "-q", "-s", "100", "postgres"])
        base_lines = [base_backup(work, d, port, repo, key, "after pgbench -i")]
        peer = pgbackrest_stanza(work, d, port) if shutil.which("pgbackrest") else None
        if peer:
            base_lines.append(pgbackrest_backup(peer, "full", "after pgbench -i"))
        log(f"wal: pgbench for {seconds} s")
        wall, backlog, produced, out = sampled(["pgbench", *args, "-c", "4", "-j", "2", "-T", str(seconds), "-n",
                                               "postgres"])
        tps = next((l.split("=")[1].split()[0] for l in out.splitlines() if l.startswith("tps")), "?")
        q("select pg_switch_wal()")
        t = time.monotonic()
        while ready() > 0 and time.monotonic() - t < 300:
            time.sleep(0.1)
        drained = time.monotonic() - t
        archived, failed = q("select archived_count, failed_count from pg_stat_archiver").split("|")
        base_lines.append(base_backup(work, d, port, repo, key, f"after the {seconds} s pgbench run"))
        if peer:
            base_lines.append(pgbackrest_backup(peer, "incr", f"after the {seconds} s pgbench run"))
        # The per-segment cost, alone: 32 archived segments pushed again, one
        # process each, into a fresh repository.
        done = sorted(n[:-5] for n in os.listdir(status) if n.endswith(".done") and len(n) == 29)[-32:]
        seg_dir = os.path.join(work, "wal-segments")
        shutil.rmtree(seg_dir, ignore_errors=True)
        os.makedirs(seg_dir)
        for n in done:
            shutil.copy(os.path.join(d, "data", "pg_wal", n), seg_dir)
        repo2, key2 = os.path.join(work, "wal-repo"), os.path.join(work, "wal-repo.key")
        shutil.rmtree(repo2, ignore_errors=True)
        if os.path.exists(key2):
            os.remove(key2)
        sh([COFFER, "init", "-q", "-r", repo2], env=env)
        sh([COFFER, "key", "add-file", "-q", "-r", repo2, key2], env=env)
        # As the postgres user, as archive_command runs (and as the peer's loop below).
        as_pg = "runuser -u postgres -- " if root else ""
        if root:
            sh(["chown", "-R", "postgres:", seg_dir, repo2, key2])
        wall, cpu, rss = measured(" ; ".join(f"{as_pg}env COFFER_PASSWORD_FILE={key2} {COFFER} wal-push -q -r {repo2} "
                                            f"{os.path.join(seg_dir, n)} || exit 1" for n in done))
        stored = du(repo2)
        pushed = pgbackrest_push(peer, seg_dir, done) if peer else None
    finally:
        sh([script, "stop", d])
    n = len(done)
    return [
        f"pgbench -i -s 100 ({init_wall:.0f} s, fsync off): {init_segs:.0f} segments of WAL "
        f"({init_segs * 16 / init_wall:.0f} MiB/s); backlog waiting in pg_wal: at most {max(init_backlog)} segments "
        f"(median {median(init_backlog):.0f})",
        f"pgbench -c 4 -j 2 for {seconds} s ({float(tps) if tps != '?' else 0:.0f} tps, fsync off): {produced:.0f} segments of WAL; "
        f"backlog waiting in pg_wal: at most {max(backlog)} segments (median {median(backlog):.0f}); "
        f"archived {archived}, failed {failed}; the last one archived {drained:.1f} s after the run",
        f"wal-push alone, {n} segments, one process each: {n / wall:.1f} segments/s "
        f"({n * 16 / wall:.0f} MiB/s), CPU {cpu / n * 1000:.0f} ms per segment, peak RSS {rss / MiB:.0f} MiB; "
        f"stored {stored / n / MiB:.1f} MiB per 16 MiB segment",
    ] + base_lines + ([f"pgBackRest {pushed['version']} archive-push, the same {n} segments, one process each (zst level 3, "
          f"aes-256-cbc, archive-async off): {n / pushed['wall']:.1f} segments/s, CPU {pushed['cpu'] / n * 1000:.0f} ms "
          f"per segment, peak RSS {pushed['rss'] / MiB:.0f} MiB; stored {pushed['stored'] / n / MiB:.1f} MiB per segment"]
         if pushed else [])


def base_backup(work, d, port, repo, key, when):
    """A base backup of the bench cluster into the WAL repository beside
    pg_basebackup's own tar stream thrown away (the floor: what the server
    sends), as the postgres user. Returns the report's line."""
    as_pg = "runuser -u postgres -- " if os.geteuid() == 0 else ""
    conn = f"-h 127.0.0.1 -p {port} -U postgres"
    floor_wall, floor_cpu, _ = measured(f"{as_pg}pg_basebackup {conn} -D - -Ft -X none -c fast > /dev/null")
    out = os.path.join(work, "base-backup.json")
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wall, cpu, rss = measured(f"{as_pg}env COFFER_PASSWORD_FILE={key} {COFFER} backup -r {repo} --json "
                              f"--pg-base {url} --wait-for-wal 5m > {out}")
    with open(out) as f:
        j = json.load(f)
    read, new, stored = j["bytes"], j["new_bytes"], j["stored_bytes"]
    return (f"base backup {when}: {read / GiB:.2f} GiB in {wall:.1f} s ({read / MiB / wall:.0f} MiB/s, "
            f"CPU {cpu:.1f} s, peak RSS {rss / MiB:.0f} MiB), {new / MiB:.0f} MiB new "
            f"({100 * new / max(read, 1):.1f} %), {stored / MiB:.0f} MiB stored; pg_basebackup -Ft -X none "
            f"> /dev/null alone: {floor_wall:.1f} s (CPU {floor_cpu:.1f} s)")


def pgbackrest_stanza(work, d, port):
    """A fresh local, encrypted pgBackRest repository with a stanza for the
    bench cluster (zst level 3 as its default, aes-256-cbc, two processes
    as coffer uses both cores). Returns the command prefix that runs
    pgbackrest on it as the postgres user."""
    base = os.path.join(work, "pgbackrest")
    shutil.rmtree(base, ignore_errors=True)
    for sub in ("repo", "log", "lock"):
        os.makedirs(os.path.join(base, sub))
    conf = os.path.join(base, "pgbackrest.conf")
    with open(conf, "w") as f:
        f.write(f"[global]\nrepo1-path={base}/repo\nrepo1-cipher-type=aes-256-cbc\n"
                f"repo1-cipher-pass={PASSPHRASE}\ncompress-type=zst\ncompress-level=3\nprocess-max=2\n"
                f"log-path={base}/log\nlock-path={base}/lock\nlog-level-console=error\nlog-level-file=off\n"
                f"[bench]\npg1-path={d}/data\npg1-port={port}\npg1-socket-path={d}\npg1-user=postgres\n")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        sh(["chown", "-R", "postgres:", base])
    cmd = as_pg + ["pgbackrest", f"--config={conf}", "--stanza=bench"]
    sh(cmd + ["stanza-create"], stdout=subprocess.DEVNULL)
    return {"cmd": cmd, "repo": os.path.join(base, "repo"),
            "version": sh(["pgbackrest", "version"], capture_output=True, text=True).stdout.split()[-1]}


def pgbackrest_backup(peer, kind, when):
    """pgBackRest's own backup of the bench cluster (full, then incr: it
    copies each changed file whole), beside coffer's base backup. WAL is
    coffer's to archive here, so its archive check is off. Returns the
    report's line."""
    before = du(os.path.join(peer["repo"], "backup"))
    wall, cpu, rss = measured(" ".join(peer["cmd"] + ["backup", f"--type={kind}", "--start-fast",
                                                      "--no-archive-check"]))
    added = du(os.path.join(peer["repo"], "backup")) - before
    return (f"pgBackRest {peer['version']} backup --type={kind} {when} (process-max 2): {wall:.1f} s "
            f"(CPU {cpu:.1f} s, peak RSS {rss / MiB:.0f} MiB), {added / MiB:.0f} MiB stored")


def pgbackrest_push(peer, seg_dir, names):
    """pgBackRest's archive-push of the same segments into its repository
    (its stanza checks them against the running cluster): wall, CPU and
    peak RSS of the loop, and what it stored."""
    loop = " ; ".join(" ".join(peer["cmd"] + ["archive-push", os.path.join(seg_dir, n)]) + " || exit 1"
                      for n in names)
    wall, cpu, rss = measured(loop)
    return {"wall": wall, "cpu": cpu, "rss": rss, "stored": du(os.path.join(peer["repo"], "archive")),
            "version": peer["version"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench-work"), help="work directory (data, repos, results)")
    ap.add_argument("--scale", type=int, default=200, help="pgbench scale (200: a 2.2 GiB dump)")
    ap.add_argument("--tools", default="coffer,restic,borg,rustic")
    ap.add_argument("--cases", default="db,tree,memory,wal", help="which of db, tree, memory, wal to run")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of the db and tree cases; the tables give each row's median (default 3)")
    args = ap.parse_args()
    work = os.path.abspath(args.dir)
    os.makedirs(work, exist_ok=True)
    tools_wanted = args.tools.split(",")
    cases = args.cases.split(",")
    if not os.access(COFFER, os.X_OK):
        raise SystemExit(f"bench: {COFFER} missing: build with `cargo build --release` first")

    pg = Postgres(work, args.scale) if "db" in cases else None
    try:
        if pg:
            pg.ensure_data()
        tree = ensure_tree(work) if "tree" in cases else None
        tools = [TOOLS[t](work, pg) for t in tools_wanted]
        meta = {"machine": machine(), "versions": [t.version() for t in tools], "tools": tools_wanted,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "repeat": args.repeat}
        rows, sizes, rounds = [], {}, []

        def settle(warm):
            """The same start for every tool: dirty pages written back, clean
            ones dropped (so no run pays to reclaim the last one's pages),
            then what the next run reads warmed again. Needs root."""
            if os.geteuid() != 0:
                return
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("1")
            for w in warm:
                if w == "db":
                    sh(f"{pg.pg_dump()} > /dev/null")
                else:
                    for dirpath, _, files in os.walk(w):
                        for name in files:
                            p = os.path.join(dirpath, name)
                            if os.path.isfile(p) and not os.path.islink(p):
                                with open(p, "rb") as f:
                                    while f.read(8 * MiB):
                                        pass

        def record(case, tool, cmd, nbytes, repo=False, warm=()):
            settle(warm)
            log(f"{case}: {tool.name}")
            wall, cpu, rss = measured(cmd, env=tool.env)
            row = {"case": case, "tool": tool.name, "wall": wall, "cpu": cpu, "rss": rss, "bytes": nbytes,
                   "round": len(rounds)}
            if repo:
                row["repo"] = du(tool.repo)
            rows.append(row)
            log(f"  {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {rss / MiB:.0f} MiB")

        def measure_round(tools):
            """Every case for every tool, once, in the order given."""
            db_size = 0
            if pg:
                # pg_dump alone: the floor under every db backup.
                db_size = int(sh(f"{pg.pg_dump()} | wc -c", capture_output=True, text=True).stdout)
                settle(["db"])
                wall, cpu, rss = measured(f"{pg.pg_dump()} > /dev/null")
                rows.append({"case": "db: pg_dump > /dev/null alone", "tool": "pg_dump", "wall": wall, "cpu": cpu,
                             "rss": rss, "bytes": db_size, "round": len(rounds)})
            sizes["db"] = db_size
            sizes["tree"] = du(tree) if tree else 0
            sizes["tree_files"] = sum(len(f) for _, _, f in os.walk(tree)) if tree else 0

            for t in tools:
                t.fresh()
                t.init()
            if pg:
                for t in tools:
                    record("db backup (a)", t, t.backup_db(1), db_size, repo=True, warm=["db"])
            if tree:
                for t in tools:
                    record("tree backup (b)", t, t.backup_tree(tree, 1), sizes["tree"], repo=True, warm=[tree])
            if pg:
                pg.small_change()
                db2 = int(sh(f"{pg.pg_dump()} | wc -c", capture_output=True, text=True).stdout)
                for t in tools:
                    before = du(t.repo)
                    record("db nightly re-backup (c)", t, t.backup_db(2), db2, warm=["db", t.repo])
                    rows[-1]["added"] = du(t.repo) - before
            if tree:
                change_tree(tree)
                size2 = du(tree)
                for t in tools:
                    before = du(t.repo)
                    record("tree nightly re-backup (c)", t, t.backup_tree(tree, 2), size2, warm=[tree, t.repo])
                    rows[-1]["added"] = du(t.repo) - before
                for t in tools:
                    record("tree unchanged re-backup (c)", t, t.backup_tree(tree, 3), size2, warm=[tree, t.repo])
            sizes["repo"] = {t.name: du(t.repo) for t in tools}

            if pg:
                for t in tools:
                    out = os.path.join(work, "restore", t.name)
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    record("db restore (d)", t, t.restore_db(out, 2), db2, warm=[t.repo])
                    dump = find_file(out, "bench.dump")
                    got = os.path.getsize(dump)
                    # pg_dump's header holds its start time, so only size and
                    # structure can be compared with another run of it.
                    if abs(got - db2) > 4096:
                        raise SystemExit(f"bench: {t.name} restored {got} bytes of dump, expected about {db2}")
                    sh(["pg_restore", "-l", dump], stdout=subprocess.DEVNULL)
                for t in tools:
                    shutil.rmtree(os.path.join(work, "restore", t.name))
            if tree:
                want = tree_digest(tree)
                for t in tools:
                    out = os.path.join(work, "restore", t.name)
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    record("tree restore (d)", t, t.restore_tree(out, 3), size2, warm=[t.repo])
                    if tree_digest(find_tree(out)) != want:
                        raise SystemExit(f"bench: {t.name}'s restored tree differs from the source")
                # Deleted only once every tool has restored: ext4 skips the
                # inodes freed in the last minute when it allocates, and that
                # search made a restore right after a deletion up to 3x slower.
                for t in tools:
                    shutil.rmtree(os.path.join(work, "restore", t.name))

        for n in range(1, args.repeat + 1):
            log(f"round {n} of {args.repeat}")
            rounds.append(n)
            if n > 1 and "tree" in cases:
                reset_tree(work)
            # Each round starts with another tool: a run can leave the disk
            # slower for the next (a restore after another's ran 20-40 %
            # slower here), so no tool should always go first.
            k = (n - 1) % len(tools)
            measure_round(tools[k:] + tools[:k])

        if "memory" in cases and "coffer" in tools_wanted:
            coffer = next(t for t in tools if t.name == "coffer")
            for gib in (1, 4):
                path = os.path.join(work, f"random-{gib}g.bin")
                if not os.path.exists(path) or os.path.getsize(path) != gib << 30:
                    log(f"writing {gib} GiB of random data")
                    with open(path + ".tmp", "wb") as f:
                        for _ in range(gib * 1024):
                            f.write(os.urandom(MiB))
                    os.rename(path + ".tmp", path)
                coffer.fresh()
                coffer.init()
                record(f"memory: backup {gib} GiB", coffer, [COFFER, "backup", "-q", path, "--tag", "mem"], gib << 30,
                       warm=[path])
                out = os.path.join(work, "restore", "mem")
                shutil.rmtree(out, ignore_errors=True)
                record(f"memory: restore {gib} GiB", coffer,
                       [COFFER, "restore", "-q", coffer.snapshot("mem"), "--target", out], gib << 30, warm=[coffer.repo])
                shutil.rmtree(out)

        primitives = []
        if os.access(PRIMITIVES, os.X_OK):
            samples = []
            if pg:
                sample = os.path.join(work, "dump.sample")
                sh(f"{pg.pg_dump()} | head -c {256 * MiB} > {sample}")
                samples.append(sample)
            if tree:
                samples.append(os.path.join(work, "libs.sample"))
                with open(samples[-1], "wb") as f:
                    for dirpath, _, files in os.walk(os.path.join(tree, "lib")):
                        for name in sorted(files):
                            p = os.path.join(dirpath, name)
                            if os.path.isfile(p) and not os.path.islink(p) and f.tell() < 256 * MiB:
                                with open(p, "rb") as src:
                                    f.write(src.read())
            for s in samples:
                primitives += sh([PRIMITIVES, s], capture_output=True, text=True).stdout.splitlines()

        wal_lines = wal_case(work) if "wal" in cases and "coffer" in tools_wanted else []
        text = report(rows, sizes, meta, primitives)
        if wal_lines:
            text += "\n### WAL archiving (coffer wal-push as archive_command)\n\n" + "".join(f"- {l}\n" for l in wal_lines)
            meta["wal"] = wal_lines
        with open(os.path.join(work, "results.md"), "w") as f:
            f.write(f"Command: `make bench` ({meta['date']})\n\n" + text)
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump({"meta": meta, "sizes": sizes, "rows": aggregate(rows), "raw": rows, "primitives": primitives},
                      f, indent=1)
        print(text)
    finally:
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
