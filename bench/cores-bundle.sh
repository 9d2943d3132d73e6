#!/usr/bin/env bash
# Packs PostgreSQL 15 (server, initdb, pg_ctl, pgbench, psql), PgBouncer and a proxy binary
# with every shared library they load, relocated under /opt/pgb, so a bare machine of
# another distribution can run the passthrough benchmark (bench/cores.sh beside it).
# Usage: BASE_PROXY=BASELINE_BIN bench/cores-bundle.sh PROXY_BIN OUT_DIR   -> OUT_DIR/pgb.tar.xz
# (the baseline binary goes beside the proxy as bin/pgmigrate-proxy-base).
set -euo pipefail
proxy=$1; out=$2
command -v patchelf >/dev/null || apt-get install -y -q patchelf >/dev/null
stage=$(mktemp -d); root=$stage/opt/pgb
mkdir -p "$root/lib" "$root/usr/lib/postgresql/15" "$root/usr/share/postgresql" "$root/bin" "$root/zoneinfo"
cp -a /usr/lib/postgresql/15/bin "$root/usr/lib/postgresql/15/"
cp -a /usr/lib/postgresql/15/lib "$root/usr/lib/postgresql/15/"
rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode  # JIT pulls in 130 MB of LLVM; the bench runs with jit=off
cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
cp /usr/sbin/pgbouncer "$root/bin/"
cp "$proxy" "$root/bin/pgmigrate-proxy"; strip "$root/bin/pgmigrate-proxy" || true
cp "$BASE_PROXY" "$root/bin/pgmigrate-proxy-base"; strip "$root/bin/pgmigrate-proxy-base" || true
cp -a /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Etc "$root/zoneinfo/" 2>/dev/null || true
elfs=$(find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -exec sh -c 'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
for f in $elfs; do ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /ld-linux/ {print $1}'; done | sort -u | grep '^/' | while read -r l; do cp -L "$l" "$root/lib/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib/"
for f in $elfs; do
  if readelf -l "$f" 2>/dev/null | grep -q 'program interpreter'; then patchelf --set-interpreter /opt/pgb/lib/ld-linux-x86-64.so.2 "$f"; fi
  patchelf --set-rpath /opt/pgb/lib "$f" 2>/dev/null || true
done
for l in "$root"/lib/*.so*; do case $l in *ld-linux*) ;; *) patchelf --set-rpath /opt/pgb/lib "$l" 2>/dev/null || true;; esac; done
tar -C "$stage" -cJf "$out/pgb.tar.xz" opt
rm -rf "$stage"
ls -la "$out/pgb.tar.xz"
