#!/usr/bin/env bash
# Remote benchmark: push and clone throughput against the Discord emulator
# with Discord's limits (10 MiB per file, 25 MiB per request, 5 creates per
# 5 s per channel => at most ~25 MiB/s of uploads per channel).
# Usage: bench/remote_bench.sh [MiB of random data, default 200] [channels, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-200}
NCH=${2:-1}
BUILD=${BUILD:-build-remote}
H=$PWD/$BUILD/cli/hashfs
W=$(mktemp -d /tmp/hashfs-remote-bench-XXXXXX)
trap 'kill $EMU 2>/dev/null || true; rm -rf "$W"' EXIT
python3 tests/remote/discord_emulator.py --port 0 --file-limit 10485760 --request-limit 26214400 \
  --create-limit 5 --create-window 5 >"$W/emu.out" 2>"$W/emu.err" &
EMU=$!
for _ in $(seq 50); do grep -q PORT "$W/emu.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '/PORT/{print $2}' "$W/emu.out")
API=http://127.0.0.1:$PORT/api/v10
CH="--channel 100000000000000001"
[ "$NCH" -ge 2 ] && CH="$CH --channel 100000000000000002"
export HASHFS_DISCORD_TOKEN=test-token HASHFS_PASSWORD=bench
mkdir -p "$W/src"
for i in $(seq 1 $((MIB / 8))); do head -c $((8 << 20)) /dev/urandom >"$W/src/f$i"; done
HASHFS_STORE=$W/a $H init >/dev/null
HASHFS_STORE=$W/a $H backup "$W/src" --volume data >/dev/null
HASHFS_STORE=$W/a $H remote add origin discord $CH --api-url "$API" >/dev/null
curl -s -X POST "http://127.0.0.1:$PORT/_emulator/reset-stats" >/dev/null
t0=$(date +%s.%N)
HASHFS_STORE=$W/a $H push origin --json >"$W/push.json"
t1=$(date +%s.%N)
curl -s "http://127.0.0.1:$PORT/_emulator/stats" >"$W/push-stats.json"
curl -s -X POST "http://127.0.0.1:$PORT/_emulator/reset-stats" >/dev/null
t2=$(date +%s.%N)
HASHFS_STORE=$W/b $H clone origin discord $CH --api-url "$API" --all >/dev/null
t3=$(date +%s.%N)
curl -s "http://127.0.0.1:$PORT/_emulator/stats" >"$W/clone-stats.json"
python3 - "$W" "$t0" "$t1" "$t2" "$t3" "$MIB" "$NCH" <<'PY'
import json, sys
w, t0, t1, t2, t3, mib, nch = sys.argv[1], *map(float, sys.argv[2:6]), int(sys.argv[6]), int(sys.argv[7])
push = json.load(open(w + "/push.json")); ps = json.load(open(w + "/push-stats.json"))
cs = json.load(open(w + "/clone-stats.json"))
up = push["bytes_uploaded"] / 2**20
secs = t1 - t0
creates = push["messages"] + 1
# Best possible: every create carries 25 MiB; 5 creates per 5 s per channel, the first 5 at once.
import math
min_creates = math.ceil(up / 25)
ideal = max(0.0, (math.ceil(min_creates / (5 * nch)) - 1) * 5.0)
reqs = sum(ps["requests"].values())
print(f"data: {mib} MiB random in {nch} channel(s)")
print(f"push: {up:.1f} MiB in {secs:.1f} s = {up/secs:.1f} MiB/s; {creates} creates (minimum {min_creates}), "
      f"{push['packs']} packs; limit-bound ideal {ideal:.1f} s ({(ideal/secs*100 if secs else 0):.0f}% of ideal)")
print(f"push: {reqs} API requests = {reqs / (up/1024):.0f} per GiB (minimum {math.ceil(1024/25)} per GiB); "
      f"429s {ps['rate_limited']}, into exhausted bucket {ps['requests_into_exhausted_bucket']}")
cd = cs["bytes_downloaded"] / 2**20
print(f"clone --all: {cd:.1f} MiB downloaded in {t3-t2:.1f} s = {cd/(t3-t2):.1f} MiB/s; "
      f"{sum(cs['requests'].values())} requests")
PY
