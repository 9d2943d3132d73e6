#!/usr/bin/env bash
# Passthrough benchmark: direct PostgreSQL vs pgmigrate-proxy vs PgBouncer
# (session mode), measured in one run against one throwaway cluster.
#
# Every (mode, clients) cell runs `pgbench -S` once per target per round; the
# target order rotates between rounds so no target always goes first. The proxy
# and PgBouncer CPU time per run comes from /proc/PID/stat.
#
# Output: a Markdown table on stdout (also bench/.data/results.md) and one row
# per pgbench run in bench/.data/raw.csv. See bench/README.md.
#
# Quick smoke run:
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_CLIENTS="1 8" bench/passthrough.sh

set -Eeuo pipefail

# ---------------------------------------------------------------------------
# Settings (all overridable from the environment)
# ---------------------------------------------------------------------------
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_SCALE=${BENCH_SCALE:-10}
BENCH_CLIENTS=${BENCH_CLIENTS:-"1 8 32"}
BENCH_MODES=${BENCH_MODES:-"simple extended prepared"}
BENCH_TARGETS=${BENCH_TARGETS:-"direct proxy pgbouncer"}
BENCH_PGPORT=${BENCH_PGPORT:-55432}
BENCH_PROXY_PORT=${BENCH_PROXY_PORT:-56432}
BENCH_ADMIN_PORT=${BENCH_ADMIN_PORT:-59464}
BENCH_BOUNCER_PORT=${BENCH_BOUNCER_PORT:-56433}
# BENCH_BASELINE_BIN names another proxy binary (say, built from an earlier
# commit) to run beside the current one as target "baseline", to compare two
# builds in one run.
BENCH_BASELINE_BIN=${BENCH_BASELINE_BIN:-}
BENCH_BASELINE_PORT=${BENCH_BASELINE_PORT:-56434}
BENCH_BASELINE_ADMIN_PORT=${BENCH_BASELINE_ADMIN_PORT:-59465}
# BENCH_IDLE lists counts of idle clients (say "1000"): after the matrix,
# each proxy and PgBouncer is held that many connected clients that send
# nothing, and the growth of its resident memory per client is reported.
# BENCH_IDLE_ONLY=1 skips the matrix.
BENCH_IDLE=${BENCH_IDLE:-}
BENCH_IDLE_ONLY=${BENCH_IDLE_ONLY:-0}
# BENCH_SYSCALLS=1: after the matrix, one more run per mode, client count
# and target but direct, with strace counting the target's system calls
# (which slows it: these runs' TPS are not reported), and a table of
# system calls per transaction.
BENCH_SYSCALLS=${BENCH_SYSCALLS:-0}
[[ -z $BENCH_BASELINE_BIN ]] || BENCH_TARGETS="$BENCH_TARGETS baseline"
BENCH_SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-256MB}
BENCH_WARMUP=${BENCH_WARMUP:-2} # seconds of unrecorded load per target first

HOST=127.0.0.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=$ROOT/bench/.data
PGDATA_DIR=$DATA/pg
SOCK_DIR=$DATA/run
PROXY_BIN=$ROOT/bin/pgmigrate-proxy
RAW=$DATA/raw.csv
RESULTS=$DATA/results.md

if [[ -n ${BENCH_PGBIN:-} ]]; then
	PGBIN=$BENCH_PGBIN
elif [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
	PGBIN=/usr/lib/postgresql/15/bin
else
	PGBIN=$(pg_config --bindir)
fi
PGBENCH=$PGBIN/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench)
PSQL=$PGBIN/psql
[[ -x $PSQL ]] || PSQL=$(command -v psql)

CLK_TCK=$(getconf CLK_TCK)
PROXY_PID=""
BASELINE_PID=""
BOUNCER_PID=""
PG_STARTED=0
FAILED_RUNS=0

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

has_target() { [[ " $BENCH_TARGETS " == *" $1 "* ]]; }

# PostgreSQL and PgBouncer refuse to run as root: run them as `postgres`
# when we are root, as ourselves otherwise.
if [[ $EUID -eq 0 ]]; then
	AS_PG=(runuser -u postgres --)
else
	AS_PG=()
fi
as_pg() { "${AS_PG[@]}" "$@"; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_port PORT PID NAME LOG: wait until PORT accepts, failing early if PID dies.
wait_port() {
	local port=$1 pid=$2 name=$3 logf=$4 i
	for ((i = 0; i < 150; i++)); do
		port_open "$port" && return 0
		if [[ -n $pid ]] && ! alive "$pid"; then
			tail -n 20 "$logf" >&2 || true
			die "$name exited before listening on $port (log: $logf)"
		fi
		sleep 0.2
	done
	tail -n 20 "$logf" >&2 || true
	die "$name did not listen on $port within 30s (log: $logf)"
}

# cpu_ticks PID: utime+stime (fields 14 and 15 of /proc/PID/stat) in clock
# ticks. The comm field may contain spaces, so cut everything up to ") ";
# fields 14/15 are then fields 12/13 of the rest.
cpu_ticks() {
	local pid=$1
	[[ -n $pid && -r /proc/$pid/stat ]] || { echo ""; return 0; }
	sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

# median: median of the numbers on stdin (empty lines ignored); prints
# nothing when there are none.
median() {
	{ grep -E '^[0-9.eE+-]+$' || true; } | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) exit
			if (NR % 2) print v[(NR + 1) / 2]
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

# fmt FORMAT VALUE: printf VALUE, or "n/a" if it is empty.
fmt() { if [[ -n $2 ]]; then printf "$1" "$2"; else printf 'n/a'; fi; }

# pratio MODE CLIENTS A B COLUMN: the median of A's COLUMN over B's in the
# same round and cell, or "n/a"; CLIENTS "*" pools every client count. Runs
# of one cell follow each other, so each ratio compares two targets under
# the same conditions, and the machine's drift from round to round cancels.
pratio() {
	local r
	r=$(awk -F, -v m="$1" -v c="$2" -v a="$3" -v b="$4" -v col="$5" '
		NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
		$2 != m || (c != "*" && $3 != c) || $12 != "ok" { next }
		$4 == a { va[$1 "/" $3] = $idx[col] }
		$4 == b { vb[$1 "/" $3] = $idx[col] }
		END { for (k in va) if ((k in vb) && vb[k] > 0) print va[k] / vb[k] }' "$RAW" | median)
	fmt %.2f "$r"
}

port_of() {
	case $1 in
	direct) echo "$BENCH_PGPORT" ;;
	proxy) echo "$BENCH_PROXY_PORT" ;;
	baseline) echo "$BENCH_BASELINE_PORT" ;;
	pgbouncer) echo "$BENCH_BOUNCER_PORT" ;;
	*) die "unknown target $1" ;;
	esac
}

pid_of() {
	case $1 in
	proxy) echo "$PROXY_PID" ;;
	baseline) echo "$BASELINE_PID" ;;
	pgbouncer) echo "$BOUNCER_PID" ;;
	*) echo "" ;;
	esac
}

# ---------------------------------------------------------------------------
# Cleanup: stop everything we started, on success, error or Ctrl-C.
# ---------------------------------------------------------------------------
# alive PID: the process exists and is not a zombie awaiting its reaper.
alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null &&
		[[ $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]
}

stop_pid() {
	local pid=$1 name=$2 i
	alive "$pid" || return 0
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "$name did not stop on SIGTERM, killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	stop_targets
	if [[ $PG_STARTED -eq 1 ]]; then
		log "stopping PostgreSQL"
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
check_tools() {
	command -v awk >/dev/null || die "awk not found"
	[[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl ]] || die "PostgreSQL binaries not found in $PGBIN (set BENCH_PGBIN)"
	[[ -x $PGBENCH ]] || die "pgbench not found"
	if has_target pgbouncer && ! command -v pgbouncer >/dev/null; then
		[[ $EUID -eq 0 ]] || die "pgbouncer not installed (apt-get install pgbouncer)"
		log "installing pgbouncer"
		apt-get install -y pgbouncer >/dev/null 2>&1 ||
			{ apt-get update >/dev/null && apt-get install -y pgbouncer >/dev/null; } ||
			die "apt-get install pgbouncer failed"
	fi
	if has_target pgbouncer; then
		# The Debian package starts a system instance on 6432; ours runs on
		# its own port, but stop the service so it does not share the CPU.
		if [[ $EUID -eq 0 ]] && pgrep -x pgbouncer >/dev/null 2>&1; then
			service pgbouncer stop >/dev/null 2>&1 || true
		fi
	fi
	local t
	for t in $BENCH_TARGETS; do port_of "$t" >/dev/null; done
}

build_proxy() {
	has_target proxy || return 0
	log "building pgmigrate-proxy"
	(cd "$ROOT" && CGO_ENABLED=1 go build -o bin/pgmigrate-proxy ./cmd/pgmigrate-proxy) ||
		die "proxy build failed (skip it with BENCH_TARGETS=\"direct pgbouncer\")"
}

# A stale cluster from an interrupted run would hold the port: stop it.
stop_stale_cluster() {
	if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
		log "stopping stale cluster in $PGDATA_DIR"
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [[ -f $DATA/pgbouncer.pid ]]; then
		local pid
		pid=$(cat "$DATA/pgbouncer.pid" 2>/dev/null || true)
		if [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == pgbouncer ]]; then
			log "stopping stale pgbouncer (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			sleep 0.5
		fi
		rm -f "$DATA/pgbouncer.pid"
	fi
}

check_ports_free() {
	local p
	for p in "$BENCH_PGPORT" "$BENCH_PROXY_PORT" "$BENCH_ADMIN_PORT" "$BENCH_BOUNCER_PORT" ${BENCH_BASELINE_BIN:+"$BENCH_BASELINE_PORT" "$BENCH_BASELINE_ADMIN_PORT"}; do
		if port_open "$p"; then die "port $p on $HOST is already in use"; fi
	done
}

start_cluster() {
	log "initialising PostgreSQL cluster in $PGDATA_DIR"
	rm -rf "$PGDATA_DIR" "$SOCK_DIR"
	mkdir -p "$DATA" "$SOCK_DIR"
	if [[ $EUID -eq 0 ]]; then chown postgres: "$DATA" "$SOCK_DIR"; fi
	as_pg test -w "$DATA" || die "$DATA is not writable by the postgres user (is every parent directory searchable?)"
	as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C >"$DATA/initdb.log" 2>&1 ||
		{ tail -n 20 "$DATA/initdb.log" >&2; die "initdb failed"; }
	as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<-EOF
		# pgmigrate-proxy passthrough benchmark
		listen_addresses = '$HOST'
		port = $BENCH_PGPORT
		unix_socket_directories = '$SOCK_DIR'
		max_connections = $((200 + $(max_idle)))
		shared_buffers = $BENCH_SHARED_BUFFERS
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF
	as_pg tee "$PGDATA_DIR/pg_hba.conf" >/dev/null <<-EOF
		local all all trust
		host  all all 127.0.0.1/32 trust
	EOF
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$DATA/postgres.log" -w -t 60 start >/dev/null ||
		{ tail -n 20 "$DATA/postgres.log" >&2; die "PostgreSQL did not start"; }
	PG_STARTED=1
	log "creating database bench, pgbench -i -s $BENCH_SCALE"
	"$PSQL" -X -q -h "$HOST" -p "$BENCH_PGPORT" -U postgres -d postgres -c 'CREATE DATABASE bench' >/dev/null
	"$PGBENCH" -i -q -s "$BENCH_SCALE" -h "$HOST" -p "$BENCH_PGPORT" -U postgres bench >"$DATA/pgbench-init.log" 2>&1 ||
		{ tail -n 20 "$DATA/pgbench-init.log" >&2; die "pgbench -i failed"; }
}

# start_proxy NAME BINARY PORT ADMIN_PORT: runs a proxy serving tenant bench
# and prints its pid.
start_proxy() {
	local name=$1 bin=$2 port=$3 admin=$4 pid
	cat >"$DATA/$name.yaml" <<-EOF
		listen: $HOST:$port
		admin_listen: $HOST:$admin
		upstreams:
		  - name: main
		    dsn: postgres://postgres@$HOST:$BENCH_PGPORT/bench
		tenants:
		  - org: bench
		    database: bench
		    schema: public
		limits:
		  max_client_conns: $((1000 + $(max_idle)))
	EOF
	log "starting $name ($bin) on $HOST:$port"
	# In a session of its own, as PgBouncer (-d) and PostgreSQL (pg_ctl)
	# are: with autogroup scheduling (sched_autogroup_enabled=1) a session
	# shares its CPU with pgbench otherwise. setsid does not fork here (we
	# are no process group leader), so $! is the proxy's own pid.
	setsid "$bin" --config "$DATA/$name.yaml" >"$DATA/$name.log" 2>&1 </dev/null &
	pid=$!
	wait_port "$port" "$pid" "$name" "$DATA/$name.log" >&2
	echo "$pid"
}

start_pgbouncer() {
	has_target pgbouncer || return 0
	echo '"postgres" ""' >"$DATA/userlist.txt"
	cat >"$DATA/pgbouncer.ini" <<-EOF
		[databases]
		bench = host=$HOST port=$BENCH_PGPORT dbname=bench

		[pgbouncer]
		listen_addr = $HOST
		listen_port = $BENCH_BOUNCER_PORT
		unix_socket_dir =
		pool_mode = session
		auth_type = trust
		auth_file = $DATA/userlist.txt
		max_client_conn = $((200 + $(max_idle)))
		default_pool_size = 64
		ignore_startup_parameters = extra_float_digits
		logfile = $DATA/pgbouncer.log
		pidfile = $DATA/pgbouncer.pid
	EOF
	if [[ $EUID -eq 0 ]]; then chown postgres: "$DATA/pgbouncer.ini" "$DATA/userlist.txt"; fi
	log "starting pgbouncer on $HOST:$BENCH_BOUNCER_PORT"
	rm -f "$DATA/pgbouncer.pid" "$DATA/pgbouncer.log"
	# The logfile is pgbouncer's own (it must be able to write it); our
	# redirection only catches what it prints before daemonising.
	# runuser's login session lowers the open files limit to its default
	# (1024); PgBouncer gets the one this shell has, as the proxies do.
	as_pg sh -c 'ulimit -n "$1" && exec pgbouncer -d "$2"' sh "$(ulimit -n)" "$DATA/pgbouncer.ini" >"$DATA/pgbouncer.stderr" 2>&1 ||
		{ cat "$DATA/pgbouncer.stderr" >&2; die "pgbouncer did not start"; }
	# -d daemonises; the pidfile names the process whose CPU we measure.
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $DATA/pgbouncer.pid ]] && break
		sleep 0.1
	done
	BOUNCER_PID=$(cat "$DATA/pgbouncer.pid" 2>/dev/null || true)
	[[ -n $BOUNCER_PID ]] || { cat "$DATA/pgbouncer.stderr" >&2; die "pgbouncer wrote no pidfile (log: $DATA/pgbouncer.log)"; }
	wait_port "$BENCH_BOUNCER_PORT" "$BOUNCER_PID" pgbouncer "$DATA/pgbouncer.log"
}

# start_targets starts PgBouncer and the proxies, then checks and warms up
# every target.
start_targets() {
	start_pgbouncer
	if has_target proxy; then
		PROXY_PID=$(start_proxy proxy "$PROXY_BIN" "$BENCH_PROXY_PORT" "$BENCH_ADMIN_PORT")
	fi
	if has_target baseline; then
		BASELINE_PID=$(start_proxy baseline "$BENCH_BASELINE_BIN" "$BENCH_BASELINE_PORT" "$BENCH_BASELINE_ADMIN_PORT")
	fi
	log "checking and warming up targets"
	smoke_targets
}

stop_targets() {
	stop_pid "$PROXY_PID" pgmigrate-proxy
	stop_pid "$BASELINE_PID" "baseline pgmigrate-proxy"
	stop_pid "$BOUNCER_PID" pgbouncer
	PROXY_PID="" BASELINE_PID="" BOUNCER_PID=""
}

# Check each target answers pgbench before spending time on the matrix, then
# warm it up (buffer cache, plan caches, the proxy's runtime) unrecorded.
smoke_targets() {
	local t out
	for t in $BENCH_TARGETS; do
		if ! out=$("$PGBENCH" -S -n -t 200 -c 1 -h "$HOST" -p "$(port_of "$t")" -U postgres bench 2>&1) ||
			{ [[ $BENCH_WARMUP -gt 0 ]] && ! out=$("$PGBENCH" -S -n -T "$BENCH_WARMUP" -c 8 -j 2 \
				-h "$HOST" -p "$(port_of "$t")" -U postgres bench 2>&1); }; then
			echo "$out" | tail -n 10 >&2
			[[ $t == proxy ]] && { log "proxy log tail:"; tail -n 20 "$DATA/proxy.log" >&2; }
			die "target $t does not serve pgbench"
		fi
	done
}

# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------

# run_one ROUND MODE CLIENTS TARGET ORDER: one pgbench run, appended to raw.csv.
run_one() {
	local round=$1 mode=$2 c=$3 t=$4 order=$5
	local port pid jobs out rc=0 before after tps lat txns cpu_s="" cpu_us="" status=ok
	port=$(port_of "$t")
	pid=$(pid_of "$t")
	jobs=$((c < 2 ? c : 2))

	before=$(cpu_ticks "$pid")
	out=$("$PGBENCH" -S -n -T "$BENCH_SECONDS" -c "$c" -j "$jobs" -M "$mode" \
		-h "$HOST" -p "$port" -U postgres bench 2>&1) || rc=$?
	after=$(cpu_ticks "$pid")

	echo "$out" >"$DATA/runs/r${round}-${mode}-c${c}-${t}.log"
	tps=$(awk '/^tps = / && /(without initial connection time|excluding connections establishing)/ { print $3 }' <<<"$out")
	lat=$(awk '/^latency average = / { print $4 }' <<<"$out")
	txns=$(awk -F': *' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1] }' <<<"$out")

	if [[ $rc -ne 0 || -z $tps ]]; then
		status="fail(rc=$rc)"
		FAILED_RUNS=$((FAILED_RUNS + 1))
		log "  $(printf '%-9s' "$t") FAILED (see $DATA/runs/r${round}-${mode}-c${c}-${t}.log)"
		echo "$round,$mode,$c,$t,$order,$BENCH_SECONDS,,,,,,$status" >>"$RAW"
		return 0
	fi
	# CPU of the proxy / pgbouncer process during this run; per transaction
	# over the transactions pgbench processed (= tps x duration).
	if [[ -n $before && -n $after ]]; then
		cpu_s=$(awk -v a="$after" -v b="$before" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (a - b) / hz }')
		cpu_us=$(awk -v s="$cpu_s" -v n="$txns" 'BEGIN { if (n > 0) printf "%.2f", s * 1e6 / n }')
	fi
	echo "$round,$mode,$c,$t,$order,$BENCH_SECONDS,$tps,$lat,$txns,$cpu_s,$cpu_us,$status" >>"$RAW"
	log "  $(printf '%-9s' "$t") tps=$(fmt %.0f "$tps") lat=$(fmt %.3f "$lat")ms${pid:+ cpu=${cpu_s:-?}s µs/txn=${cpu_us:-?}}"
}

# max_idle is the largest count of BENCH_IDLE (0 if none).
max_idle() {
	local n max=0
	for n in $BENCH_IDLE; do ((n > max)) && max=$n; done
	echo "$max"
}

# raise_fd_limit: every idle client of a proxy holds two descriptors
# there (its own and its upstream's), more than the default limit allows
# at 10,000 clients; the servers started from here inherit the limit.
raise_fd_limit() {
	local want=$((2 * $(max_idle) + 4096))
	((want > $(ulimit -n))) || return 0
	if ! { ulimit -Hn "$want" && ulimit -n "$want"; } 2>/dev/null; then
		log "cannot raise the open files limit to $want (run as root); idle counts near $(($(ulimit -n) / 2)) may fail"
	fi
}

# rss_kib PID: the resident memory of a process, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# idle_memory: for each count of BENCH_IDLE and each target but direct, on
# fresh processes, the resident memory before and while that many clients
# are connected and idle (pgbench clients that only sleep), per client.
idle_memory() {
	local n t pid before during hold=$((BENCH_SECONDS + 4))
	printf '\\sleep %d s\n' "$hold" >"$DATA/idle.sql"
	echo
	echo "| idle clients | target | RSS before (KiB) | RSS with the clients (KiB) | per client (KiB) |"
	echo "|---:|---|---:|---:|---:|"
	for n in $BENCH_IDLE; do
		stop_targets
		start_targets
		for t in $BENCH_TARGETS; do
			[[ $t == direct ]] && continue
			pid=$(pid_of "$t")
			before=$(rss_kib "$pid")
			"$PGBENCH" -n -c "$n" -j 8 -T "$hold" -f "$DATA/idle.sql" \
				-h "$HOST" -p "$(port_of "$t")" -U postgres bench >"$DATA/idle-$t-$n.log" 2>&1 &
			# pgbench's -T counts from when every client is connected,
			# which takes a while for thousands: measure then.
			until (($(ss -Htn state established "( sport = :$(port_of "$t") )" | wc -l) >= n)) || ! kill -0 $! 2>/dev/null; do
				sleep 1
			done
			sleep "$BENCH_SECONDS"
			during=$(rss_kib "$pid")
			wait $! || log "idle clients on $t: pgbench failed (see $DATA/idle-$t-$n.log)"
			echo "| $n | $t | $before | $during | $(awk -v a="$before" -v b="$during" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }') |"
		done
	done
}

# syscalls_per_txn: the system calls per transaction of each target but
# direct, counted by strace -c -f over one pgbench run per mode and client
# count.
syscalls_per_txn() {
	local mode c t pid st out txns calls
	echo
	echo "| mode | clients | target | system calls | transactions | calls per txn |"
	echo "|---|---:|---|---:|---:|---:|"
	for mode in $BENCH_MODES; do
		for c in $BENCH_CLIENTS; do
			for t in $BENCH_TARGETS; do
				[[ $t == direct ]] && continue
				pid=$(pid_of "$t")
				strace -c -f -p "$pid" -o "$DATA/strace-$t-$mode-$c.txt" 2>/dev/null &
				st=$!
				sleep 1
				out=$("$PGBENCH" -S -n -T "$BENCH_SECONDS" -c "$c" -j "$((c < 2 ? c : 2))" -M "$mode" \
					-h "$HOST" -p "$(port_of "$t")" -U postgres bench 2>&1) || true
				kill -INT "$st"
				wait "$st" || true
				txns=$(awk -F': *' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1] }' <<<"$out")
				calls=$(awk '$NF == "total" { print $4 }' "$DATA/strace-$t-$mode-$c.txt")
				echo "| $mode | $c | $t | ${calls:-?} | ${txns:-?} | $(awk -v a="$calls" -v n="$txns" 'BEGIN { if (n > 0) printf "%.2f", a / n; else printf "?" }') |"
			done
		done
	done
}

run_matrix() {
	local -a targets=($BENCH_TARGETS)
	local n=${#targets[@]} round mode c k cell=0 t
	echo "round,mode,clients,target,order,seconds,tps,latency_ms,txns,cpu_s,cpu_us_per_txn,status" >"$RAW"
	rm -rf "$DATA/runs"
	mkdir -p "$DATA/runs"
	for ((round = 1; round <= BENCH_ROUNDS; round++)); do
		# Fresh processes every round: a process keeps for its lifetime
		# the luck of its start (its threads' placement, its memory
		# layout), which set two copies of one binary up to 5% apart
		# over a whole run.
		stop_targets
		start_targets
		cell=0
		for mode in $BENCH_MODES; do
			for c in $BENCH_CLIENTS; do
				log "round $round/$BENCH_ROUNDS: -M $mode -c $c"
				# Rotate the target order by round (and by cell, so the
				# first target differs across cells within a round too).
				for ((k = 0; k < n; k++)); do
					t=${targets[$(((k + round - 1 + cell) % n))]}
					run_one "$round" "$mode" "$c" "$t" "$((k + 1))"
				done
				cell=$((cell + 1))
			done
		done
	done
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

# med MODE CLIENTS TARGET COLUMN: median of a raw.csv column over the rounds.
med() {
	awk -F, -v m="$1" -v c="$2" -v t="$3" -v col="$4" '
		NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
		$2 == m && $3 == c && $4 == t && $12 == "ok" { print $idx[col] }' "$RAW" | median
}

report() {
	local mode c
	local td tp tb ld lp lb cp cb up ub
	{
		echo "### Passthrough: pgbench -S, ${BENCH_SECONDS}s per run, median of $BENCH_ROUNDS round(s)"
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), scale $BENCH_SCALE," \
			"$("$PGBIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /')," \
			"$(command -v pgbouncer >/dev/null && pgbouncer --version | head -n1 || echo 'no pgbouncer')," \
			"proxy $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
		echo
		echo "| mode | clients | TPS direct | TPS proxy | TPS pgbouncer | lat ms direct | lat ms proxy | lat ms pgbouncer | proxy CPU s | pgbouncer CPU s | proxy CPU µs/txn | pgbouncer CPU µs/txn | proxy/direct TPS | proxy/pgbouncer TPS | proxy/pgbouncer CPU/txn |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for mode in $BENCH_MODES; do
			for c in $BENCH_CLIENTS; do
				td=$(med "$mode" "$c" direct tps)
				tp=$(med "$mode" "$c" proxy tps)
				tb=$(med "$mode" "$c" pgbouncer tps)
				ld=$(med "$mode" "$c" direct latency_ms)
				lp=$(med "$mode" "$c" proxy latency_ms)
				lb=$(med "$mode" "$c" pgbouncer latency_ms)
				cp=$(med "$mode" "$c" proxy cpu_s)
				cb=$(med "$mode" "$c" pgbouncer cpu_s)
				up=$(med "$mode" "$c" proxy cpu_us_per_txn)
				ub=$(med "$mode" "$c" pgbouncer cpu_us_per_txn)
				printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
					"$mode" "$c" \
					"$(fmt %.0f "$td")" "$(fmt %.0f "$tp")" "$(fmt %.0f "$tb")" \
					"$(fmt %.3f "$ld")" "$(fmt %.3f "$lp")" "$(fmt %.3f "$lb")" \
					"$(fmt %.2f "$cp")" "$(fmt %.2f "$cb")" \
					"$(fmt %.1f "$up")" "$(fmt %.1f "$ub")" \
					"$(pratio "$mode" "$c" proxy direct tps)" \
					"$(pratio "$mode" "$c" proxy pgbouncer tps)" \
					"$(pratio "$mode" "$c" proxy pgbouncer cpu_us_per_txn)"
			done
		done
		mode_summary proxy pgbouncer
		has_target baseline && baseline_report
		echo
		echo "Raw runs: bench/.data/raw.csv"
		[[ $FAILED_RUNS -eq 0 ]] || echo "**$FAILED_RUNS run(s) failed** (status column of raw.csv; logs in bench/.data/runs/)"
	} | tee "$RESULTS"
}

# mode_summary A B: per mode, the median of A/B over every client count and
# round.
mode_summary() {
	local mode
	has_target "$1" && has_target "$2" || return 0
	echo
	echo "Per mode, all client counts and rounds pooled (medians of per-run ratios):"
	echo
	echo "| mode | $1/$2 TPS | $1/$2 CPU/txn |"
	echo "|---|---:|---:|"
	for mode in $BENCH_MODES; do
		printf '| %s | %s | %s |\n' "$mode" \
			"$(pratio "$mode" '*' "$1" "$2" tps)" "$(pratio "$mode" '*' "$1" "$2" cpu_us_per_txn)"
	done
}

# baseline_report compares the proxy with the baseline build.
baseline_report() {
	local mode c tp tb up ub
	echo
	echo "Against the baseline build ($BENCH_BASELINE_BIN):"
	echo
	echo "| mode | clients | TPS proxy | TPS baseline | CPU µs/txn proxy | CPU µs/txn baseline | proxy/baseline TPS | proxy/baseline CPU/txn |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for mode in $BENCH_MODES; do
		for c in $BENCH_CLIENTS; do
			tp=$(med "$mode" "$c" proxy tps)
			tb=$(med "$mode" "$c" baseline tps)
			up=$(med "$mode" "$c" proxy cpu_us_per_txn)
			ub=$(med "$mode" "$c" baseline cpu_us_per_txn)
			printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$c" \
				"$(fmt %.0f "$tp")" "$(fmt %.0f "$tb")" "$(fmt %.1f "$up")" "$(fmt %.1f "$ub")" \
				"$(pratio "$mode" "$c" proxy baseline tps)" \
				"$(pratio "$mode" "$c" proxy baseline cpu_us_per_txn)"
		done
	done
	mode_summary proxy baseline
}

# ---------------------------------------------------------------------------
main() {
	cd "$ROOT"
	log "targets: $BENCH_TARGETS | modes: $BENCH_MODES | clients: $BENCH_CLIENTS | ${BENCH_SECONDS}s x $BENCH_ROUNDS round(s)"
	check_tools
	build_proxy
	mkdir -p "$DATA"
	stop_stale_cluster
	check_ports_free
	raise_fd_limit
	start_cluster
	if [[ $BENCH_IDLE_ONLY != 1 ]]; then
		run_matrix
		report
	fi
	if [[ $BENCH_SYSCALLS == 1 && $BENCH_IDLE_ONLY != 1 ]]; then
		command -v strace >/dev/null || die "BENCH_SYSCALLS=1 needs strace (apt-get install -y strace)"
		syscalls_per_txn >"$DATA/syscalls.md"
		tee -a "$RESULTS" <"$DATA/syscalls.md"
	fi
	if [[ -n $BENCH_IDLE ]]; then
		# Not in a pipeline: the targets it starts must stay this
		# shell's, for cleanup to stop them.
		idle_memory >"$DATA/idle.md"
		tee -a "$RESULTS" <"$DATA/idle.md"
	fi
	[[ $FAILED_RUNS -eq 0 ]] || exit 2
}

main "$@"
