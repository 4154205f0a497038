#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup is invoked through the trap
# Mount benchmark: the hashfs FUSE mount beside libfuse's passthrough_ll
# example (-o cache=always over a dir on the same disk) and the native
# filesystem (/var/tmp), on the same workloads:
#
#   1. sequential write of BENCH_GIB GiB of compressible data (a tar of
#      /usr/lib), dd bs=1M conv=fsync                    hashfs >= 0.8x passthrough
#   2. sequential read of that file after a remount      hashfs >= 0.5x passthrough
#   3. tar -x of a source tree (linux-source)            hashfs <= 4x native
#   4. find / du -s, warm, over the extracted tree       hashfs <= 1.5x passthrough
#   5. 100,000 empty files in one dir: us/file, first
#      1k vs last 1k                                     last <= 2x first
#   6. read a file via .hashfs/history/<commit>/ vs the
#      head, cold                                        history/head ~ 1
#
#   bench/mount_bench.sh [GIB]
#
# The page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before
# every timed cold step. Run as root. See bench/README.md ("Mount benchmark").
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    sed -n '3,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Environment (all optional):
  BENCH_GIB=2             size of the sequential file in GiB (or the first argument)
  BENCH_TREE=PATH         tarball (.tar, .tar.xz, .tar.gz) or directory for tar -x
                          (default: /usr/src/linux-source-*.tar.xz, installed with
                          apt-get if missing; else a tar of /usr/include + /usr/share)
  BENCH_TREE_ENTRIES=N    use only the first N entries of the tree (default: all)
  BENCH_PT_ENTRIES=15000  entries of the tree passthrough_ll gets (it keeps one fd
                          per inode and RLIMIT_NOFILE is 20,000 here)
  BENCH_FILES=100000      empty files for workload 5 (a multiple of BENCH_BATCH)
  BENCH_BATCH=1000        files per timed batch in workload 5
  BENCH_REPEAT=5          timed repetitions of the warm find / du (median shown)
  BENCH_HASHFS=PATH       hashfs binary (default: build/cli/hashfs)
  BENCH_OUT=FILE          results file (default: bench/results-mount-latest.md)
  BENCH_WORK=DIR          work dir to create (default: mktemp -d /var/tmp/hashfs-mount-bench.XXXXXX)
  BENCH_KEEP=1            keep the work dir
  BENCH_STEP_TIMEOUT=3600 seconds before a single timed step is declared hung
EOF
}
case ${1:-} in -h|--help) usage; exit 0 ;; esac

GIB=${1:-${BENCH_GIB:-2}}
TREE_SRC=${BENCH_TREE:-}
TREE_ENTRIES=${BENCH_TREE_ENTRIES:-0}
PT_ENTRIES=${BENCH_PT_ENTRIES:-15000}
NFILES=${BENCH_FILES:-100000}
BATCH=${BENCH_BATCH:-1000}
REPEAT=${BENCH_REPEAT:-5}
HASHFS=${BENCH_HASHFS:-$REPO_ROOT/build/cli/hashfs}
OUT=${BENCH_OUT:-$SCRIPT_DIR/results-mount-latest.md}
KEEP=${BENCH_KEEP:-0}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-3600}

die() { echo "mount_bench: error: $*" >&2; exit 1; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[[ $GIB =~ ^[0-9]+([.][0-9]+)?$ ]] || die "GIB must be a number, got '$GIB'"
for v in TREE_ENTRIES PT_ENTRIES NFILES BATCH REPEAT STEP_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
((BATCH > 0 && NFILES >= 2 * BATCH && NFILES % BATCH == 0)) || die "BENCH_FILES must be a multiple of BENCH_BATCH and >= 2 batches"
((REPEAT > 0)) || die "BENCH_REPEAT must be > 0"
((EUID == 0)) || die "run as root (drop_caches, tar -x with owners)"
[[ -x $HASHFS ]] || die "no hashfs binary at $HASHFS (ninja -C build hashfs)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
HASHFS=$(realpath -- "$HASHFS")
# 1 MiB blocks: round the size to whole MiB.
MIB=$(awk -v g="$GIB" 'BEGIN{m=int(g*1024+0.5); if (m<1) m=1; print m}')
BYTES=$((MIB * 1048576))

need_pkg() {  # need_pkg CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    apt-get install -y "$2" >/dev/null 2>&1 || die "$1 is missing and apt-get install $2 failed"
}
need_pkg gcc gcc
need_pkg pkg-config pkg-config
need_pkg fusermount3 fuse3
need_pkg python3 python3
need_pkg getfattr attr
[[ -e /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c || -e /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c.gz ]] ||
    apt-get install -y libfuse3-dev >/dev/null 2>&1 || die "libfuse3-dev is missing and could not be installed"
pkg-config --exists fuse3 || die "pkg-config does not know fuse3 (libfuse3-dev)"

# ---------------------------------------------------------------- work dir --
if [[ -n ${BENCH_WORK:-} ]]; then
    [[ -e $BENCH_WORK ]] && die "BENCH_WORK=$BENCH_WORK exists"
    mkdir -p -- "$BENCH_WORK" || die "cannot create $BENCH_WORK"
    WORK=$(realpath -- "$BENCH_WORK")
else
    WORK=$(mktemp -d /var/tmp/hashfs-mount-bench.XXXXXX) || die "mktemp failed"
fi
NAT=$WORK/native            # native: a plain dir on /var/tmp
PT_SRC=$WORK/pt-backing     # passthrough_ll's source dir (same disk)
PT_MNT=$WORK/pt-mnt
STORE=$WORK/store
H_MNT=$WORK/hashfs-mnt
mkdir -p "$NAT" "$PT_SRC" "$PT_MNT" "$H_MNT" "$WORK/bin" "$WORK/logs"
# Run a private copy, so a rebuild during the run cannot swap the binary.
HASHFS_ORIG=$HASHFS
HASHFS_INFO="built $(date -u -r "$HASHFS" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$HASHFS" | cut -c1-12)"
cp "$HASHFS" "$WORK/bin/hashfs" || die "cannot copy $HASHFS"
HASHFS=$WORK/bin/hashfs

PT_PID=""
H_PID=""
RSS_SAMPLER_PID=""
PT_BIN=$WORK/bin/passthrough_ll

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [[ -n $RSS_SAMPLER_PID ]] && kill "$RSS_SAMPLER_PID" 2>/dev/null
    cd / || true
    if mountpoint -q "$H_MNT" 2>/dev/null; then
        log "cleanup: unmounting hashfs"
        timeout 300 "$HASHFS" --store "$STORE" umount "$H_MNT" >/dev/null 2>&1 ||
            fusermount3 -u -z "$H_MNT" 2>/dev/null
    fi
    if [[ -n $H_PID ]] && kill -0 "$H_PID" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$H_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$H_PID" 2>/dev/null
    fi
    if mountpoint -q "$PT_MNT" 2>/dev/null; then
        log "cleanup: unmounting passthrough_ll"
        fusermount3 -u "$PT_MNT" 2>/dev/null || fusermount3 -u -z "$PT_MNT" 2>/dev/null
    fi
    if [[ -n $PT_PID ]] && kill -0 "$PT_PID" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$PT_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$PT_PID" 2>/dev/null
    fi
    if [[ $KEEP == 1 ]]; then
        log "work dir kept: $WORK"
    elif mountpoint -q "$H_MNT" 2>/dev/null || mountpoint -q "$PT_MNT" 2>/dev/null; then
        log "a mount is still active; NOT removing $WORK"
    else
        rm -rf --one-file-system -- "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------------ helpers --
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f\n", b-a}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# fmt NUMBER [DECIMALS]: "n/a" stays "n/a".
fmt() { [[ $1 == n/a || -z $1 ]] && { echo n/a; return; }; awk -v x="$1" -v d="${2:-2}" 'BEGIN{printf "%.*f", d, x}'; }
ratio() {  # ratio A B -> A/B, or n/a
    [[ $1 == n/a || $2 == n/a || -z $1 || -z $2 ]] && { echo n/a; return; }
    awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "n/a"; else printf "%.2f", a/b }'
}
# verdict VALUE OP LIMIT -> PASS / FAIL / n/a
verdict() {
    [[ $1 == n/a ]] && { echo n/a; return; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN{
        ok = (op == ">=") ? (v >= l) : (v <= l); print ok ? "PASS" : "FAIL" }'
}
median() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
mbps() { [[ $2 == n/a ]] && { echo n/a; return; }; awk -v b="$1" -v s="$2" 'BEGIN{ printf "%.1f", b/1e6/s }'; }
proc_cpu() {  # user+sys CPU seconds of PID
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo n/a
}
proc_status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }  # kB
# rss_parts PID: "R MiB (anon A, file F, shmem S)": RssFile counts mapped file pages (the store's
# LMDB map), which the kernel can drop; RssAnon is the daemon's own heap.
rss_parts() {
    awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} /^RssFile:/{f=$2} /^RssShmem:/{s=$2}
         END{ if (r == "") print "n/a"; else printf "%.1f MiB (anon %.1f, file %.1f, shmem %.1f)", r/1024, a/1024, f/1024, s/1024 }' "/proc/$1/status" 2>/dev/null
}
kib_to_mib() { [[ -z $1 || $1 == n/a ]] && { echo n/a; return; }; awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# timed LABEL CMD...: runs CMD under a timeout; prints seconds, or "n/a" if it failed.
timed() {
    local label=$1; shift
    local t0 t1 rc
    t0=$(now)
    local out=${TIMED_OUT:-$WORK/logs/$label.out}
    timeout "$STEP_TIMEOUT" "$@" >>"$out" 2>>"$WORK/logs/$label.err"
    rc=$?
    t1=$(now)
    if ((rc != 0)); then
        log "FAILED ($rc): $label: $* -- $(head -n 3 "$WORK/logs/$label.err" | tr '\n' ' ')"
        if ((rc == 124)); then fail "$label: timed out after $STEP_TIMEOUT s ($*)"; else fail "$label: exit $rc: $(head -n 3 "$WORK/logs/$label.err" | tr '\n' ' ')($(wc -l <"$WORK/logs/$label.err") lines on stderr)"; fi
        echo n/a
        return 1
    fi
    elapsed "$t0" "$t1"
}
# Failures and notes go to files: timed runs inside $(...), a subshell.
fail() { echo "$*" >>"$WORK/failures.txt"; }
note() { echo "$*" >>"$WORK/notes.txt"; }

# ----------------------------------------------------------- the three fses --
pt_mount() {
    "$PT_BIN" -f -o "source=$PT_SRC,cache=always" "$PT_MNT" >>"$WORK/logs/passthrough_ll.log" 2>&1 &
    PT_PID=$!
    for _ in $(seq 200); do
        mountpoint -q "$PT_MNT" && return 0
        kill -0 "$PT_PID" 2>/dev/null || break
        sleep 0.05
    done
    die "passthrough_ll did not mount (see $WORK/logs/passthrough_ll.log)"
}
pt_umount() {
    fusermount3 -u "$PT_MNT" || die "fusermount3 -u $PT_MNT failed"
    wait "$PT_PID" 2>/dev/null
    PT_PID=""
}
h_mount() {
    local out
    out=$("$HASHFS" --store "$STORE" mount vol "$H_MNT" 2>&1) || die "hashfs mount failed: $out"
    H_PID=$(sed -n 's/.*; pid \([0-9]*\);.*/\1/p' <<<"$out")
    [[ -n $H_PID ]] || die "cannot find the hashfs daemon pid in: $out"
}
# h_umount: sets H_UMOUNT_S to the seconds `hashfs umount` took (it waits for the final commit).
h_umount() {
    local t0 t1
    t0=$(now)
    timeout "$STEP_TIMEOUT" "$HASHFS" --store "$STORE" umount "$H_MNT" >&2 || die "hashfs umount failed (or hung)"
    t1=$(now)
    H_PID=""
    H_UMOUNT_S=$(elapsed "$t0" "$t1")
}
# h_commit: asks the mount to commit what is pending and waits until it is
# durable (every hashfs command that opens the store does this first).
h_commit() { "$HASHFS" --store "$STORE" log vol -n 1 >/dev/null; }

mnt_of() { case $1 in native) echo "$NAT" ;; passthrough) echo "$PT_MNT" ;; hashfs) echo "$H_MNT" ;; esac; }
remount() {
    case $1 in
        native) ;;
        passthrough) pt_umount; pt_mount ;;
        hashfs) h_umount; h_mount ;;
    esac
}
FSES=(native passthrough hashfs)
declare -A R   # results: R[metric.fs]

# Other load on the machine distorts every number: record it.
cpu_idle_ticks() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -r IDLE0 TOTAL0 < <(cpu_idle_ticks)

# ---------------------------------------------------------------- prepare --
log "work dir: $WORK (load average $LOAD_START)"
log "building passthrough_ll"
EX=/usr/share/doc/libfuse3-dev/examples
if [[ -e $EX/passthrough_ll.c ]]; then
    cp "$EX/passthrough_ll.c" "$WORK/bin/"
else
    zcat "$EX/passthrough_ll.c.gz" >"$WORK/bin/passthrough_ll.c"
fi
H=passthrough_helpers.h   # not used by passthrough_ll.c today; copied in case a version includes it
if [[ -e $EX/$H ]]; then cp "$EX/$H" "$WORK/bin/"; elif [[ -e $EX/$H.gz ]]; then zcat "$EX/$H.gz" >"$WORK/bin/$H"; fi
# shellcheck disable=SC2046
gcc -O2 -Wall "$WORK/bin/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) -o "$PT_BIN" 2>"$WORK/logs/gcc.log" ||
    die "building passthrough_ll failed: $(cat "$WORK/logs/gcc.log")"

log "building the file-creation helper"
cat >"$WORK/bin/mkfiles.c" <<'EOF'
/* mkfiles DIR N BATCH: creates DIR/f0000000 .. (N files, empty, O_EXCL) and
 * prints the wall seconds of every BATCH creations, one per line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: mkfiles DIR N BATCH\n"); return 2; }
  long n = atol(argv[2]), batch = atol(argv[3]);
  char path[4096];
  double start = now(), t0 = start;
  for (long i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/f%07ld", argv[1], i);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || close(fd) != 0) { fprintf(stderr, "mkfiles: %s: %s (after %ld files)\n", path, strerror(errno), i); return 1; }
    if ((i + 1) % batch == 0) {
      double t1 = now();
      printf("%.6f\n", t1 - t0);
      fflush(stdout);
      t0 = t1;
      if ((i + 1) % (batch * 10) == 0) fprintf(stderr, "mkfiles: %ld files, %.1f s\n", i + 1, t1 - start);
    }
  }
  return 0;
}
EOF
gcc -O2 -Wall "$WORK/bin/mkfiles.c" -o "$WORK/bin/mkfiles" || die "building mkfiles failed"

log "preparing $MIB MiB of compressible data (tar of /usr/lib, truncated)"
SRC=$WORK/seq-src.dat
tar -cf - -C / usr/lib 2>/dev/null | head -c "$BYTES" >"$SRC"
SRC_REPEATS=0
while (($(stat -c %s "$SRC") < BYTES)); do   # /usr/lib smaller than the size: repeat it
    SRC_REPEATS=$((SRC_REPEATS + 1))
    left=$((BYTES - $(stat -c %s "$SRC")))
    tar -cf - -C / usr/lib 2>/dev/null | head -c "$left" >>"$SRC"
done
((SRC_REPEATS)) && note "/usr/lib is smaller than the file: the tar was repeated $SRC_REPEATS time(s), which hashfs can deduplicate"
SRC_GZ_RATIO=$(head -c $((64 << 20)) "$SRC" | gzip -1 | wc -c | awk -v n="$(( BYTES < (64<<20) ? BYTES : (64<<20) ))" '{printf "%.2f", n/$1}')

log "preparing the tree for tar -x"
TREE_TAR=$WORK/tree.tar
TREE_DESC=""
if [[ -z $TREE_SRC ]]; then
    newest_linux_source() { printf '%s\n' /usr/src/linux-source-*.tar.xz | grep -v '\*' | sort -V | tail -n 1; }
    TREE_SRC=$(newest_linux_source)
    if [[ -z $TREE_SRC ]]; then
        log "no /usr/src/linux-source-*.tar.xz: apt-get install -y linux-source"
        apt-get install -y linux-source >"$WORK/logs/apt.log" 2>&1 && TREE_SRC=$(newest_linux_source)
    fi
fi
if [[ -z $TREE_SRC ]]; then
    tar -cf "$TREE_TAR" -C / usr/include usr/share 2>/dev/null
    TREE_DESC="tar of /usr/include + /usr/share (linux-source not available)"
elif [[ -d $TREE_SRC ]]; then
    tar -cf "$TREE_TAR" -C "$(dirname "$TREE_SRC")" "$(basename "$TREE_SRC")" 2>/dev/null
    TREE_DESC="tar of $TREE_SRC"
else
    case $TREE_SRC in
        *.xz) xz -dc "$TREE_SRC" >"$TREE_TAR" ;;
        *.gz | *.tgz) gzip -dc "$TREE_SRC" >"$TREE_TAR" ;;
        *.zst) zstd -dc "$TREE_SRC" >"$TREE_TAR" ;;
        *) cp "$TREE_SRC" "$TREE_TAR" ;;
    esac || die "cannot decompress $TREE_SRC"
    TREE_DESC="$(basename "$TREE_SRC") (decompressed)"
fi
# prefix_tar IN N OUT: the first N members of IN (parents come before children).
prefix_tar() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'EOF' || die "prefix_tar failed"
import sys, tarfile
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with tarfile.open(src) as i, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as o:
    for k, m in enumerate(i):
        if k >= n:
            break
        o.addfile(m, i.extractfile(m) if m.isreg() else None)
EOF
}
if ((TREE_ENTRIES > 0)); then
    prefix_tar "$TREE_TAR" "$TREE_ENTRIES" "$WORK/tree-prefix.tar"
    mv "$WORK/tree-prefix.tar" "$TREE_TAR"
    TREE_DESC="$TREE_DESC, first $TREE_ENTRIES entries"
fi
tar_stats() { tar -tvf "$1" | awk '{t=substr($1,1,1); n++; c[t]++; s+=$3} END{printf "%d entries (%d files, %d dirs, %d symlinks, %d hardlinks), %.1f MiB", n, c["-"], c["d"], c["l"], c["h"], s/1048576}'; }
TREE_STATS=$(tar_stats "$TREE_TAR")
TREE_N=$(tar -tf "$TREE_TAR" | wc -l)
SUB_TAR=$WORK/subset.tar
if ((PT_ENTRIES >= TREE_N)); then
    cp "$TREE_TAR" "$SUB_TAR"
else
    prefix_tar "$TREE_TAR" "$PT_ENTRIES" "$SUB_TAR"
fi
SUB_STATS=$(tar_stats "$SUB_TAR")
log "tree: $TREE_DESC: $TREE_STATS"
log "passthrough subset: $SUB_STATS"

log "hashfs store: init"
"$HASHFS" --store "$STORE" init >"$WORK/logs/init.log" 2>&1 || die "hashfs init failed: $(cat "$WORK/logs/init.log")"
h_mount
pt_mount

# ------------------------------------------- 1+2: sequential write and read --
H_COMMIT=""
for fs in "${FSES[@]}"; do
    m=$(mnt_of "$fs")
    log "[1] $fs: sequential write of $MIB MiB"
    drop_caches
    cpu0=n/a
    [[ $fs == hashfs ]] && cpu0=$(proc_cpu "$H_PID")
    s=$(timed "write-$fs" dd if="$SRC" of="$m/seq.dat" bs=1M conv=fsync)
    R[write.$fs]=$(mbps "$BYTES" "$s")
    if [[ $fs == hashfs ]]; then
        R[write_cpu.hashfs]=$(awk -v a="$cpu0" -v b="$(proc_cpu "$H_PID")" 'BEGIN{printf "%.1f", b-a}')
        R[rss_after_write.hashfs]=$(rss_parts "$H_PID")
        R[hwm_write.hashfs]=$(kib_to_mib "$(proc_status "$H_PID" VmHWM)")
    fi
    log "    $s s, ${R[write.$fs]} MB/s"
    remount "$fs"
    if [[ $fs == hashfs ]]; then
        R[umount_after_write.hashfs]=$H_UMOUNT_S
        H_COMMIT=$("$HASHFS" --store "$STORE" log vol -n 1 --json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -n 1)
        [[ -n $H_COMMIT ]] || die "cannot read the head commit id"
    fi
    log "[2] $fs: sequential read after remount"
    drop_caches
    [[ $fs == hashfs ]] && cpu0=$(proc_cpu "$H_PID")
    s=$(timed "read-$fs" dd if="$m/seq.dat" of=/dev/null bs=1M)
    R[read.$fs]=$(mbps "$BYTES" "$s")
    [[ $fs == hashfs ]] && R[read_cpu.hashfs]=$(awk -v a="$cpu0" -v b="$(proc_cpu "$H_PID")" 'BEGIN{printf "%.1f", b-a}')
    log "    $s s, ${R[read.$fs]} MB/s"
    if [[ $fs != hashfs ]]; then rm -f "$m/seq.dat"; fi   # hashfs keeps it for workload 6
done
# content check (not timed): hashfs returns what was written
if ! cmp -s "$SRC" "$H_MNT/seq.dat"; then
    fail "hashfs: seq.dat read back differs from the source"
    log "ERROR: hashfs seq.dat differs from the source"
fi

# ------------------------------------------------------------- 3: tar -x --
# tar_x FS TARBALL DEST LABEL: time of tar -x, then of the flush to disk (sync;
# for hashfs a commit request, which waits until the commit is durable).
tar_x() {
    local fs=$1 tarball=$2 dest=$3 label=$4 s s2 t0 cpu0=n/a
    mkdir -p "$dest"
    drop_caches
    [[ $fs == hashfs ]] && cpu0=$(proc_cpu "$H_PID")
    s=$(timed "$label-$fs" tar -xf "$tarball" -C "$dest")
    t0=$(now)
    sync
    [[ $fs == hashfs ]] && h_commit
    s2=$(elapsed "$t0" "$(now)")
    R[$label.$fs]=$s
    if [[ $s == n/a ]]; then R[$label+sync.$fs]=n/a; else R[$label+sync.$fs]=$(awk -v a="$s" -v b="$s2" 'BEGIN{printf "%.3f", a+b}'); fi
    if [[ $fs == hashfs ]]; then
        R[$label.cpu.hashfs]=$(awk -v a="$cpu0" -v b="$(proc_cpu "$H_PID")" 'BEGIN{printf "%.1f", b-a}')
        R[$label.rss.hashfs]=$(rss_parts "$H_PID")
    fi
    log "    $label $fs: tar -x $s s, +flush ${R[$label+sync.$fs]} s"
}
# Content check (not timed): the listing of DEST matches the tarball's.
check_tree() {
    local fs=$1 tarball=$2 dest=$3
    local want got
    want=$(tar -tf "$tarball" | sed 's:/$::; s:^\./::' | grep -v '^\.\?$' | LC_ALL=C sort | md5sum)
    got=$(cd "$dest" && find . -mindepth 1 | sed 's:^\./::' | LC_ALL=C sort | md5sum)
    if [[ $want != "$got" ]]; then
        fail "$fs: the tree extracted into $dest does not list the same entries as the tarball"
        log "ERROR: $fs: extracted tree differs from the tarball listing"
    fi
}

log "[3] tar -x of the full tree ($TREE_N entries): native, hashfs"
tar_x native "$TREE_TAR" "$NAT/tree" tarfull
tar_x hashfs "$TREE_TAR" "$H_MNT/tree" tarfull
R[tarfull.passthrough]="n/a"
R[tarfull+sync.passthrough]="n/a"
log "[3] tar -x of the subset: native, passthrough, hashfs"
for fs in "${FSES[@]}"; do tar_x "$fs" "$SUB_TAR" "$(mnt_of "$fs")/sub" tarsub; done
check_tree native "$TREE_TAR" "$NAT/tree"
check_tree hashfs "$TREE_TAR" "$H_MNT/tree"
check_tree passthrough "$SUB_TAR" "$PT_MNT/sub"
check_tree hashfs "$SUB_TAR" "$H_MNT/sub"

# ---------------------------------------------------------- 4: find, du -s --
# warm DIR LABEL: one untimed run of find and du, then REPEAT timed runs each.
warm() {
    local dir=$1 label=$2
    find "$dir" >/dev/null 2>&1; du -s "$dir" >/dev/null 2>&1
    for _ in $(seq "$REPEAT"); do TIMED_OUT=/dev/null timed "find-$label" find "$dir"; done >"$WORK/logs/find-$label.times"
    for _ in $(seq "$REPEAT"); do TIMED_OUT=/dev/null timed "du-$label" du -s "$dir"; done >"$WORK/logs/du-$label.times"
    if grep -q n/a "$WORK/logs/find-$label.times"; then R[find.$label]=n/a; else R[find.$label]=$(median <"$WORK/logs/find-$label.times"); fi
    if grep -q n/a "$WORK/logs/du-$label.times"; then R[du.$label]=n/a; else R[du.$label]=$(median <"$WORK/logs/du-$label.times"); fi
    log "    $label: find ${R[find.$label]} s, du -s ${R[du.$label]} s (median of $REPEAT)"
}
log "[4] warm find / du -s over the subset (all three) and the full tree (native, hashfs)"
for fs in "${FSES[@]}"; do
    warm "$(mnt_of "$fs")/sub" "sub.$fs"
    R[findsub.$fs]=${R[find.sub.$fs]}; R[dusub.$fs]=${R[du.sub.$fs]}
done
for fs in native hashfs; do
    warm "$(mnt_of "$fs")/tree" "full.$fs"
    R[findfull.$fs]=${R[find.full.$fs]}; R[dufull.$fs]=${R[du.full.$fs]}
done
R[findfull.passthrough]=n/a; R[dufull.passthrough]=n/a
pt_umount   # passthrough is done; frees its fds

# ------------------------------------------------- 5: many files in one dir --
# mkfiles_run FS DIR: fills R[create_first.FS], R[create_last.FS] (us/file), R[create_total.FS]
mkfiles_run() {
    local fs=$1 dir=$2 s
    mkdir -p "$dir"
    s=$(timed "mkfiles-$fs" "$WORK/bin/mkfiles" "$dir" "$NFILES" "$BATCH")
    local times=$WORK/logs/mkfiles-$fs.out
    R[create_total.$fs]=$s
    if [[ $s == n/a ]]; then
        R[create_first.$fs]=n/a; R[create_last.$fs]=n/a; R[create_max.$fs]=n/a
        return
    fi
    R[create_first.$fs]=$(head -n 1 "$times" | awk -v b="$BATCH" '{printf "%.1f", $1/b*1e6}')
    R[create_last.$fs]=$(tail -n 1 "$times" | awk -v b="$BATCH" '{printf "%.1f", $1/b*1e6}')
    R[create_max.$fs]=$(sort -g "$times" | tail -n 1 | awk -v b="$BATCH" '{printf "%.1f", $1/b*1e6}')
    log "    $fs: $s s; first $BATCH: ${R[create_first.$fs]} us/file, last $BATCH: ${R[create_last.$fs]} us/file, slowest batch ${R[create_max.$fs]} us/file"
}
log "[5] $NFILES empty files in one directory"
mkfiles_run native "$NAT/many"
# a fresh daemon, so its RSS and peak belong to this workload
h_umount; h_mount
R[rss_before_create.hashfs]=$(kib_to_mib "$(proc_status "$H_PID" VmRSS)")
(
    max=0
    while kill -0 "$H_PID" 2>/dev/null; do
        r=$(proc_status "$H_PID" VmRSS); [[ -n $r ]] && ((r > max)) && max=$r && echo "$max" >"$WORK/logs/rss-max"
        sleep 0.5
    done
) &
RSS_SAMPLER_PID=$!
cpu0=$(proc_cpu "$H_PID")
mkfiles_run hashfs "$H_MNT/many"
t0=$(now); h_commit; R[create_commit.hashfs]=$(elapsed "$t0" "$(now)")
R[create_cpu.hashfs]=$(awk -v a="$cpu0" -v b="$(proc_cpu "$H_PID")" 'BEGIN{printf "%.1f", b-a}')
R[rss_after_create.hashfs]=$(rss_parts "$H_PID")
R[hwm_create.hashfs]=$(kib_to_mib "$(proc_status "$H_PID" VmHWM)")
t0=$(now)
n=$(timeout "$STEP_TIMEOUT" ls -f "$H_MNT/many" | grep -c '^f')
R[ls_many.hashfs]=$(elapsed "$t0" "$(now)")
[[ $n == "$NFILES" ]] || { fail "hashfs: ls of the many-files dir lists $n entries, want $NFILES"; log "ERROR: ls lists $n files"; }
kill "$RSS_SAMPLER_PID" 2>/dev/null; wait "$RSS_SAMPLER_PID" 2>/dev/null; RSS_SAMPLER_PID=""
log "    hashfs RSS: ${R[rss_before_create.hashfs]} MiB before, ${R[rss_after_create.hashfs]} after, peak ${R[hwm_create.hashfs]} MiB; commit after: ${R[create_commit.hashfs]} s"
# The inode table once the kernel forgets the entries (the mount sweeps at
# its next safe point, at most a second after the forgets).
inodes() { getfattr --only-values -n "user.hashfs.$1" "$H_MNT/.hashfs" 2>/dev/null; }
R[inodes_after_create.hashfs]="$(inodes inodes) nodes, $(inodes listed) listed"
drop_caches; sleep 1.2; stat "$H_MNT/no-such-name" >/dev/null 2>&1
R[inodes_after_forget.hashfs]="$(inodes inodes) nodes, $(inodes listed) listed"
R[rss_after_forget.hashfs]=$(rss_parts "$H_PID")
log "    inode table: ${R[inodes_after_create.hashfs]} after the creates; ${R[inodes_after_forget.hashfs]} once the kernel forgot them (RSS then ${R[rss_after_forget.hashfs]})"

# --------------------------------------------------- 6: history vs head read --
log "[6] cold read of seq.dat via .hashfs/history/$H_COMMIT/ vs the head"
h_umount; R[umount_after_create.hashfs]=$H_UMOUNT_S; h_mount
drop_caches
s=$(timed "read-history" dd if="$H_MNT/.hashfs/history/$H_COMMIT/seq.dat" of=/dev/null bs=1M)
R[histread.hashfs]=$(mbps "$BYTES" "$s")
h_umount; h_mount
drop_caches
s=$(timed "read-head" dd if="$H_MNT/seq.dat" of=/dev/null bs=1M)
R[headread.hashfs]=$(mbps "$BYTES" "$s")
R[rss_after_read.hashfs]=$(rss_parts "$H_PID")
log "    history ${R[histread.hashfs]} MB/s, head ${R[headread.hashfs]} MB/s"
h_umount; R[umount_final.hashfs]=$H_UMOUNT_S
R[store_bytes]=$(du -sb "$STORE" | cut -f1)
H_LOG_ERRS=$(grep -ciE 'error|fail|warn' "$STORE/logs/mount-vol.log" 2>/dev/null)
H_LOG_ERRS=${H_LOG_ERRS:-0}
((H_LOG_ERRS > 0)) && note "hashfs mount log has $H_LOG_ERRS error/warning lines, e.g.: $(grep -iE 'error|fail|warn' "$STORE/logs/mount-vol.log" | head -n 2 | tr '\n' ' ')"

# ------------------------------------------------------------------ report --
read -r IDLE1 TOTAL1 < <(cpu_idle_ticks)
RUN_IDLE=$(awk -v i=$((IDLE1 - IDLE0)) -v t=$((TOTAL1 - TOTAL0)) 'BEGIN{printf "%.0f", t ? 100*i/t : 0}')
row() {  # row NAME UNIT KEY RATIO_BASE TARGET_OP TARGET_LIMIT TARGET_TEXT
    local name=$1 key=$2 base=$3 op=$4 lim=$5 text=$6
    local n=${R[$key.native]:-n/a} p=${R[$key.passthrough]:-n/a} h=${R[$key.hashfs]:-n/a}
    local rp rn v=""
    rp=$(ratio "$h" "$p"); rn=$(ratio "$h" "$n")
    if [[ -n $op ]]; then
        if [[ $base == passthrough ]]; then v=$(verdict "$rp" "$op" "$lim"); else v=$(verdict "$rn" "$op" "$lim"); fi
    fi
    echo "| $name | $n | $p | $h | $rp | $rn | $text | $v |"
}
HIST_RATIO=$(ratio "${R[histread.hashfs]}" "${R[headread.hashfs]}")
HIST_V=n/a
[[ $HIST_RATIO != n/a ]] && HIST_V=$(awk -v r="$HIST_RATIO" 'BEGIN{print (r >= 0.8 && r <= 1.25) ? "PASS" : "FAIL"}')
CREATE_RATIO=$(ratio "${R[create_last.hashfs]}" "${R[create_first.hashfs]}")
CREATE_V=$(verdict "$CREATE_RATIO" "<=" 2)
CREATE_RATIO_N=$(ratio "${R[create_last.native]}" "${R[create_first.native]}")

{
    echo "# Mount benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(findmnt -no FSTYPE -T /var/tmp) on $(findmnt -no SOURCE -T /var/tmp) for /var/tmp"
    echo "- hashfs: \`$HASHFS_ORIG\` ($(grep -s '^CMAKE_BUILD_TYPE' "$(dirname "$(dirname "$HASHFS_ORIG")")/CMakeCache.txt" | cut -d= -f2), $HASHFS_INFO, git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO_ROOT" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' + uncommitted changes')); store on /var/tmp, defaults"
    echo "- passthrough: libfuse $(pkg-config --modversion fuse3) example \`passthrough_ll -f -o source=DIR,cache=always\`, built with \`gcc -O2\`; source dir on /var/tmp; RLIMIT_NOFILE $(ulimit -n)"
    echo "- machine load: load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; CPU idle over the whole run (benchmark included) $RUN_IDLE%"
    echo "- native: a directory on /var/tmp"
    echo "- sequential file: $MIB MiB of \`tar -c /usr/lib\` (gzip -1 ratio of the first 64 MiB: $SRC_GZ_RATIO); MB/s = 10^6 bytes/s, wall time of dd (write includes its final fsync)"
    echo "- tree: $TREE_DESC: $TREE_STATS"
    echo "- subset (passthrough_ll keeps one fd per inode, so it gets only the first $PT_ENTRIES entries): $SUB_STATS"
    echo "- page cache dropped before each cold step (write, read, tar -x, history/head read); hashfs and passthrough are remounted before reads"
    echo
    echo "| workload | native | passthrough | hashfs | hashfs/passthrough | hashfs/native | target | result |"
    echo "|---|---|---|---|---|---|---|---|"
    row "1. seq write, MB/s (dd bs=1M conv=fsync)" write passthrough ">=" 0.8 "≥ 0.8× passthrough"
    row "2. seq read after remount, MB/s" read passthrough ">=" 0.5 "≥ 0.5× passthrough"
    row "3. tar -x full tree, s" tarfull native "<=" 4 "≤ 4× native"
    row "3. tar -x full tree + flush (sync / hashfs commit), s" tarfull+sync native "" "" ""
    row "3. tar -x subset, s" tarsub native "" "" ""
    row "3. tar -x subset + flush, s" tarsub+sync native "" "" ""
    row "4. find, warm, subset, s (median of $REPEAT)" findsub passthrough "<=" 1.5 "≤ 1.5× passthrough"
    row "4. du -s, warm, subset, s (median of $REPEAT)" dusub passthrough "<=" 1.5 "≤ 1.5× passthrough"
    row "4. find, warm, full tree, s" findfull native "" "" ""
    row "4. du -s, warm, full tree, s" dufull native "" "" ""
    echo "| 5. create $NFILES files in one dir: µs/file, first $BATCH | ${R[create_first.native]:-n/a} | n/a | ${R[create_first.hashfs]:-n/a} |  |  |  |  |"
    echo "| 5. … µs/file, last $BATCH | ${R[create_last.native]:-n/a} | n/a | ${R[create_last.hashfs]:-n/a} |  |  |  |  |"
    echo "| 5. … last/first | $CREATE_RATIO_N | n/a | $CREATE_RATIO |  |  | hashfs ≤ 2 | $CREATE_V |"
    echo "| 5. … total, s (slowest batch µs/file: native ${R[create_max.native]:-n/a}, hashfs ${R[create_max.hashfs]:-n/a}) | ${R[create_total.native]:-n/a} | n/a | ${R[create_total.hashfs]:-n/a} |  | $(ratio "${R[create_total.hashfs]:-n/a}" "${R[create_total.native]:-n/a}") |  |  |"
    echo "| 6. cold read via .hashfs/history/<commit>/, MB/s | | | ${R[histread.hashfs]} |  |  |  |  |"
    echo "| 6. cold read of the same file at the head, MB/s | | | ${R[headread.hashfs]} |  |  |  |  |"
    echo "| 6. history/head | | | $HIST_RATIO |  |  | ~1 (0.8–1.25) | $HIST_V |"
    echo
    echo "Ratios are hashfs divided by the other column: above 1 is better for hashfs for MB/s, worse for seconds."
    echo "passthrough_ll is not run on the full tree or the $NFILES files (its fd per inode exceeds RLIMIT_NOFILE)."
    echo
    echo "hashfs daemon details:"
    echo
    echo "- after the write: RSS ${R[rss_after_write.hashfs]} (peak since mount ${R[hwm_write.hashfs]} MiB); daemon CPU during the write ${R[write_cpu.hashfs]} s; \`hashfs umount\` right after took ${R[umount_after_write.hashfs]} s; daemon CPU during the cold read ${R[read_cpu.hashfs]} s"
    echo "- tar -x full tree: daemon CPU ${R[tarfull.cpu.hashfs]} s, RSS after ${R[tarfull.rss.hashfs]}"
    echo "- $NFILES files (fresh daemon): RSS ${R[rss_before_create.hashfs]} MiB before, ${R[rss_after_create.hashfs]} after, peak (VmHWM) ${R[hwm_create.hashfs]} MiB; daemon CPU ${R[create_cpu.hashfs]} s; commit of what was pending after the last create ${R[create_commit.hashfs]} s; \`ls -f\` of the dir ${R[ls_many.hashfs]} s; \`hashfs umount\` after ${R[umount_after_create.hashfs]} s; inode table ${R[inodes_after_create.hashfs]} after the creates, ${R[inodes_after_forget.hashfs]} once the kernel forgot them (RSS then ${R[rss_after_forget.hashfs]})"
    echo "- after the cold head read of workload 6 (fresh daemon): RSS ${R[rss_after_read.hashfs]}"
    echo "- history commit read: $H_COMMIT (the head right after workload 1; later workloads added commits)"
    echo "- store size at the end: $(awk -v b="${R[store_bytes]}" 'BEGIN{printf "%.1f MiB", b/1048576}') (du -sb)"
    if [[ -s $WORK/notes.txt ]]; then echo; echo "Notes:"; echo; sed 's/^/- /' "$WORK/notes.txt"; fi
    if [[ -s $WORK/failures.txt ]]; then echo; echo "Errors:"; echo; sed 's/^/- /' "$WORK/failures.txt"; fi
} >"$WORK/results.md"

cat "$WORK/results.md"
cp "$WORK/results.md" "$OUT" && log "results written to $OUT"
[[ ! -s $WORK/failures.txt ]]
