#!/usr/bin/env bash
# Passthrough throughput on a many-core machine: pgbench -S against PostgreSQL directly,
# through PgBouncer (session mode) and through pgmigrate-proxy, alternating, at several
# client counts, and through a baseline proxy (bin/pgmigrate-proxy-base, run with
# GOMAXPROCS=$BASE_PROCS, 16 by default). Needs pgb.tar.xz beside it
# (bench/cores-bundle.sh). Writes $OUT/bench16.txt.
set -u
here=$(cd "$(dirname "$0")" && pwd); OUT=${OUT:-$here}; T=${T:-8}; CLIENTS=${CLIENTS:-"16 64 256"}; MODES=${MODES:-"simple prepared"}
mkdir -p /opt && tar -C / -xJf "$here/pgb.tar.xz"
B=/opt/pgb; PGB=$B/usr/lib/postgresql/15/bin
[ -e /usr/share/zoneinfo/UTC ] || { mkdir -p /usr/share/zoneinfo; cp -a $B/zoneinfo/* /usr/share/zoneinfo/; }
id pgb >/dev/null 2>&1 || useradd -M -d /tmp pgb
as() { if command -v runuser >/dev/null; then runuser -u pgb -- "$@"; else su pgb -s /bin/sh -c "$*"; fi; }
W=$(mktemp -d); chmod 755 $W; mkdir -p $W/data $W/sock; chown -R pgb $W; chmod 700 $W/data
log() { echo "$*" | tee -a "$OUT/bench16.txt"; }
log "host: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB; kernel $(uname -r)"
export TZ=UTC
as $PGB/initdb -D $W/data -U postgres --auth=trust -E UTF8 --locale=C >$W/initdb.log 2>&1 || { cat $W/initdb.log; exit 1; }
as $PGB/pg_ctl -D $W/data -l $W/pg.log -w -o "-p 5432 -k $W/sock -c listen_addresses=127.0.0.1 -c max_connections=1200 -c shared_buffers=4GB -c synchronous_commit=off -c jit=off" start >/dev/null || { tail -20 $W/pg.log; exit 1; }
$PGB/psql -X -q -h 127.0.0.1 -U postgres -c 'create database bench' postgres
$PGB/pgbench -q -i -s 20 -h 127.0.0.1 -U postgres bench >/dev/null 2>&1 || { echo "pgbench -i failed"; exit 1; }
cat > $W/proxy.yaml <<Y
listen: 127.0.0.1:6432
admin_listen: 127.0.0.1:9464
upstreams: [{name: main, dsn: "postgres://postgres@127.0.0.1:5432/bench?sslmode=disable"}]
tenants: [{org: acme, database: bench, schema: public}]
policy: {admins: [postgres]}
limits: {max_client_conns: 5000}
Y
$B/bin/pgmigrate-proxy --config $W/proxy.yaml >$W/proxy.log 2>&1 & PX=$!
sed 's/6432/6434/; s/9464/9465/' $W/proxy.yaml > $W/base.yaml
GOMAXPROCS=${BASE_PROCS:-16} $B/bin/pgmigrate-proxy-base --config $W/base.yaml >$W/base.log 2>&1 & QX=$!
printf '"postgres" ""\n' > $W/users
cat > $W/pgb.ini <<I
[databases]
acme = host=127.0.0.1 port=5432 dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6433
auth_type = trust
auth_file = $W/users
pool_mode = session
max_client_conn = 5000
default_pool_size = 1100
max_db_connections = 1100
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $W/pgb.log
pidfile = $W/pgb.pid
unix_socket_dir =
I
chown pgb $W/pgb.ini $W/users
as $B/bin/pgbouncer -d $W/pgb.ini || { echo "pgbouncer failed"; cat $W/pgb.log; }
sleep 1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run() { # target port db mode clients
  $PGB/pgbench -n -S -M $3 -c $4 -j 16 -T $T -h 127.0.0.1 -p $1 -U postgres $2 2>&1 | awk '/^tps/ {printf "%d", $3}'; }
BPID=$(cat $W/pgb.pid 2>/dev/null)
log "mode clients direct pgbouncer proxy base proxy/pgbouncer proxy/direct base/direct pgbouncer_cpu_s proxy_cpu_s base_cpu_s"
for m in $MODES; do for c in $CLIENTS; do
  d=$(run 5432 bench $m $c)
  b0=$(cpu $BPID); b=$(run 6433 acme $m $c); b1=$(cpu $BPID)
  p0=$(cpu $PX); p=$(run 6432 acme $m $c); p1=$(cpu $PX)
  q0=$(cpu $QX); q=$(run 6434 acme $m $c); q1=$(cpu $QX)
  log "$m $c $d $b $p $q $(awk -v p=$p -v b=$b 'BEGIN{printf "%.2f", p/b}') $(awk -v p=$p -v d=$d 'BEGIN{printf "%.2f", p/d}') $(awk -v p=$q -v d=$d 'BEGIN{printf "%.2f", p/d}') $(awk -v a=$b0 -v b=$b1 'BEGIN{printf "%.1f", (b-a)/100}') $(awk -v a=$p0 -v b=$p1 'BEGIN{printf "%.1f", (b-a)/100}') $(awk -v a=$q0 -v b=$q1 'BEGIN{printf "%.1f", (b-a)/100}')"
done; done
cp $W/proxy.log $W/base.log "$OUT/" 2>/dev/null; kill $PX $QX; kill $BPID 2>/dev/null; as $PGB/pg_ctl -D $W/data -m immediate stop >/dev/null
