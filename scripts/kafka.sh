#!/usr/bin/env bash
# Run throw-away Apache Kafka brokers (KRaft, broker+controller in one JVM,
# loopback only) for runledger's tests: one node, or a cluster of several. No Docker,
# no apache.org downloads: the broker's classpath comes from Maven Central via
# scripts/kafka/pom.xml. See docs/testing.md.
#
# Usage:
#   scripts/kafka.sh install          fetch the broker jars into .cache/kafka/lib (idempotent)
#   scripts/kafka.sh start DIR        start a broker whose files live in DIR; prints 127.0.0.1:<port>
#   scripts/kafka.sh stop DIR         stop it (SIGTERM, SIGKILL after 20 s); idempotent
#   scripts/kafka.sh restart DIR      stop + start on the same port and the same data
#   scripts/kafka.sh status DIR       exit 0 (and print the bootstrap) if running, else 1
#   scripts/kafka.sh kill DIR         SIGKILL the broker (a crash); `start DIR` brings it back
#   scripts/kafka.sh pause DIR        SIGSTOP it: it hangs (connections stay open, nothing answers)
#   scripts/kafka.sh resume DIR       SIGCONT it
#   scripts/kafka.sh start-cluster DIR [N]   N nodes (default 3) in DIR/node1..N, each broker and
#                                     controller; replication factor N (at most 3) and
#                                     min.insync.replicas 2 for new topics and the internal
#                                     ones; prints the bootstrap list 127.0.0.1:<p1>,...
#   scripts/kafka.sh stop-cluster DIR stop every node (SIGTERM, SIGKILL after KAFKA_CLUSTER_STOP_TIMEOUT)
#   Each node of a cluster is a broker DIR of its own: kill / pause / resume / start /
#   stop / status DIR/node2 act on that node alone.
#
# Files in DIR: server.properties, cluster.id, data/ (log.dirs), server.log
# (log4j2, WARN + readiness lines), console.log (JVM stdout/stderr), pid, bootstrap.
#
# `start` on a DIR that already holds server.properties reuses its ports and data
# (that is how `restart` works); a new DIR gets two fresh free loopback ports.
#
# Environment:
#   KAFKA_HEAP_OPTS        JVM heap (default "-Xms256m -Xmx768m"; a cluster's nodes
#                          "-Xms128m -Xmx384m" each)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 20)
#   KAFKA_CLUSTER_STOP_TIMEOUT   the same for stop-cluster (default 5)
#   JAVA                   java binary (default: java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J2_CONF="$SCRIPT_DIR/kafka/log4j2.properties"
CACHE_DIR="$REPO_ROOT/.cache/kafka"
LIB_DIR="$CACHE_DIR/lib"
STAMP="$CACHE_DIR/lib.stamp"
JAVA="${JAVA:-java}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# Stamp = hash of the pom: the lib dir is stale whenever the pom changes.
lib_stamp() {
    sha256sum "$POM" | cut -d' ' -f1
}

lib_is_fresh() {
    local v
    v="$(kafka_version)"
    [[ -d "$LIB_DIR" && -f "$STAMP" && -f "$LIB_DIR/kafka_2.13-$v.jar" ]] &&
        [[ "$(cat "$STAMP")" == "$(lib_stamp)" ]]
}

cmd_install() {
    if lib_is_fresh; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    command -v "$JAVA" >/dev/null || die "java not found (apt-get install -y openjdk-17-jre-headless)"
    mkdir -p "$CACHE_DIR"
    # Serialise concurrent installs (two test sessions starting at once).
    exec 9>"$CACHE_DIR/install.lock"
    flock 9
    if lib_is_fresh; then
        exec 9>&-
        return 0
    fi
    log "fetching Kafka $(kafka_version) jars from Maven Central into $LIB_DIR"
    rm -rf "$LIB_DIR" "$STAMP"
    local out
    if ! out="$(mvn -B -q -f "$POM" package 2>&1)"; then
        echo "$out" | tail -n 40 >&2
        rm -rf "$LIB_DIR"
        die "mvn package failed (see above)"
    fi
    lib_stamp >"$STAMP"
    exec 9>&-
}

classpath() { echo "$LIB_DIR/*"; }

# Absolute path of DIR (created if needed).
abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# pid of the broker of DIR if it is alive (and really is that broker), else "".
running_pid() {
    local dir="$1" pid
    [[ -f "$dir/pid" ]] || return 0
    pid="$(cat "$dir/pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [[ -r "/proc/$pid/cmdline" ]] || return 0
    # Guard against pid reuse: it must be kafka.Kafka with this DIR's config.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties"; then
        # A zombie (exited, not yet reaped) counts as gone.
        if alive "$pid"; then echo "$pid"; fi
    fi
}

# N distinct free loopback ports (default 2: "PORT CTRL_PORT").
free_ports() { # free_ports [N]
    python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
for s in held:
    s.close()' "${1:-2}"
}

prop() { # prop FILE KEY
    sed -n "s/^$2=//p" "$1" | tail -n1
}

# write_config DIR PORT CTRL_PORT [NODE_ID VOTERS REPLICAS MIN_ISR]: the defaults are a single node.
write_config() {
    local dir="$1" port="$2" ctrl="$3" id="${4:-1}" voters="${5:-1@127.0.0.1:$3}" replicas="${6:-1}" isr="${7:-1}"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: KRaft broker+controller on loopback (node $id of voters $voters).
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
auto.create.topics.enable=false
log.retention.ms=-1
default.replication.factor=$replicas
min.insync.replicas=$isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# Faster than Kafka's defaults, to keep fault tests short: a follower that stops fetching
# leaves the in-sync set after 10 s (default 30 s), so an acks=all write waits at most that
# long for a hung follower; a broker silent for 6 s (default 9 s) is fenced and its partitions
# get new leaders.
replica.lag.time.max.ms=10000
broker.session.timeout.ms=6000
# The log cleaner (compaction of __consumer_offsets) preallocates this buffer; 128 MiB by default.
log.cleaner.dedupe.buffer.size=16777216
EOF
}

# JVM options shared by the broker and the tool invocations; sets the array JAVA_OPTS.
set_java_opts() { # set_java_opts DIR LOGFILE
    JAVA_OPTS=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$LOG4J2_CONF" "-Dkafka.logs.dir=$1" "-Dkafka.log.file=$2")
}

# Run a Kafka tool main class with a small heap; its own log goes to DIR/tools.log.
run_tool() { # run_tool DIR MAINCLASS ARGS...
    local dir="$1"
    shift
    set_java_opts "$dir" tools.log
    "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 "${JAVA_OPTS[@]}" -cp "$(classpath)" "$@"
}

alive() { # alive PID: running and not a zombie
    [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}

# Same format as kafka.tools.StorageTool random-uuid (Kafka's Uuid: 16 random
# bytes, URL-safe base64 without padding, never starting with '-'), without a JVM.
new_cluster_id() {
    python3 -c '
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

format_storage() { # format_storage DIR
    local dir="$1" id out
    # Already formatted (restart, or start on an existing DIR): nothing to do,
    # and skipping it saves a JVM launch.
    [[ -f "$dir/data/meta.properties" ]] && return 0
    [[ -s "$dir/cluster.id" ]] || new_cluster_id >"$dir/cluster.id"
    id="$(cat "$dir/cluster.id")"
    if ! out="$(run_tool "$dir" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" --ignore-formatted 2>&1)"; then
        echo "$out" >&2
        die "StorageTool format failed for $dir"
    fi
}

# Metadata round trip against the broker: ApiVersions + Metadata via the admin client.
broker_answers() { # broker_answers DIR BOOTSTRAP
    run_tool "$1" org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$2" \
        >"$1/readiness.out" 2>&1 &
    local tpid=$! t=0
    while alive "$tpid" && ((t < 300)); do sleep 0.1; t=$((t + 1)); done
    if alive "$tpid"; then kill -KILL "$tpid" 2>/dev/null || true; fi
    wait "$tpid"
}

fail_start() { # fail_start DIR MSG
    local dir="$1"
    echo "kafka.sh: ERROR: $2" >&2
    for f in server.log console.log readiness.out; do
        if [[ -s "$dir/$f" ]]; then
            echo "----- tail of $dir/$f -----" >&2
            # Skip Java stack frames: the exception messages are what matter.
            grep -vE '^[[:space:]]+(at |\.\.\. [0-9]+ more)' "$dir/$f" | tail -n 30 >&2
        fi
    done
    stop_broker "$dir" >/dev/null 2>&1 || true
    echo "kafka.sh: ERROR: $2 (full logs in $dir)" >&2
    exit 1
}

# Launch the JVM for DIR (config must exist) in the background; sets LAUNCHED_PID and
# LAUNCHED_OFFSET (the size of server.log before it, for wait_ready).
launch() { # launch DIR
    local dir="$1"
    touch "$dir/server.log"
    LAUNCHED_OFFSET="$(stat -c %s "$dir/server.log")"
    rm -f "$dir/bootstrap" "$dir/readiness.out"
    # setsid: own session, so a Ctrl-C aimed at the test run is delivered by our
    # stop logic (SIGTERM, clean shutdown) rather than half-killing the JVM.
    # All three std streams redirected: a caller capturing our stdout
    # (subprocess.run) must not wait for the JVM to close it.
    set_java_opts "$dir" server.log
    # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of flags
    setsid "$JAVA" $KAFKA_HEAP_OPTS "${JAVA_OPTS[@]}" -cp "$(classpath)" \
        kafka.Kafka "$dir/server.properties" </dev/null >"$dir/console.log" 2>&1 &
    LAUNCHED_PID=$!
    echo "$LAUNCHED_PID" >"$dir/pid"
}

bootstrap_of() { # bootstrap_of DIR: 127.0.0.1:<port> of its PLAINTEXT listener
    echo "127.0.0.1:$(prop "$1/server.properties" listeners | sed -n 's/.*PLAINTEXT:\/\/127.0.0.1:\([0-9]*\).*/\1/p')"
}

# Wait until the broker launched for DIR serves metadata.
wait_ready() { # wait_ready DIR PID LOG_OFFSET -> 0 ready, 2 port in use, else exits
    local dir="$1" pid="$2" log_offset="$3" deadline bootstrap
    bootstrap="$(bootstrap_of "$dir")"
    deadline=$((SECONDS + START_TIMEOUT))
    # 1) the broker says it is up
    while ! tail -c "+$((log_offset + 1))" "$dir/server.log" | grep -q "Kafka Server started"; do
        if ! alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            rm -f "$dir/pid"
            if { tail -c "+$((log_offset + 1))" "$dir/server.log"; cat "$dir/console.log"; } |
                grep -q "Address already in use"; then
                return 2
            fi
            fail_start "$dir" "broker process $pid exited during startup"
        fi
        ((SECONDS < deadline)) || fail_start "$dir" "broker not started after ${START_TIMEOUT}s"
        sleep 0.2
    done
    # 2) and really answers ApiVersions/Metadata requests on the advertised address
    until broker_answers "$dir" "$bootstrap"; do
        alive "$pid" || fail_start "$dir" "broker process $pid died after startup"
        ((SECONDS < deadline)) || fail_start "$dir" "broker does not answer metadata requests after ${START_TIMEOUT}s"
        sleep 0.5
    done
    echo "$bootstrap" >"$dir/bootstrap"
    return 0
}

launch_and_wait() { # launch_and_wait DIR -> 0 ready, 2 port in use, else exits
    launch "$1"
    wait_ready "$1" "$LAUNCHED_PID" "$LAUNCHED_OFFSET"
}

cmd_start() {
    [[ $# -eq 1 ]] || die "usage: kafka.sh start DIR"
    local dir pid attempt rc ports
    dir="$(abs_dir "$1")"
    pid="$(running_pid "$dir")"
    [[ -z "$pid" ]] || die "a broker is already running for $dir (pid $pid, $(cat "$dir/bootstrap" 2>/dev/null))"
    cmd_install
    command -v python3 >/dev/null || die "python3 not found"
    if [[ -f "$dir/server.properties" ]]; then
        # Existing broker dir: same ports, same data (restart semantics).
        format_storage "$dir"
        rc=0
        launch_and_wait "$dir" || rc=$?
        [[ $rc -eq 0 ]] || fail_start "$dir" "port of $dir/server.properties is in use by another process"
    else
        for attempt in 1 2 3; do
            read -r -a ports <<<"$(free_ports)"
            write_config "$dir" "${ports[0]}" "${ports[1]}"
            format_storage "$dir"
            rc=0
            launch_and_wait "$dir" || rc=$?
            [[ $rc -eq 0 ]] && break
            log "port race lost (attempt $attempt), retrying with new ports"
            rm -rf "$dir/data" "$dir/server.properties"
        done
        [[ $rc -eq 0 ]] || fail_start "$dir" "could not bind free ports after 3 attempts"
    fi
    cat "$dir/bootstrap"
}

stop_broker() { # stop_broker DIR
    local dir="$1" pid deadline
    pid="$(running_pid "$dir")"
    if [[ -z "$pid" ]]; then
        rm -f "$dir/pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a paused broker handles SIGTERM once it runs again
    deadline=$((SECONDS + STOP_TIMEOUT))
    while [[ -n "$(running_pid "$dir")" ]] && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if [[ -n "$(running_pid "$dir")" ]]; then
        log "broker pid $pid still alive ${STOP_TIMEOUT}s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while [[ -n "$(running_pid "$dir")" ]]; do sleep 0.1; done
    fi
    rm -f "$dir/pid"
}

cmd_stop() {
    [[ $# -eq 1 ]] || die "usage: kafka.sh stop DIR"
    [[ -d "$1" ]] || return 0
    stop_broker "$(abs_dir "$1")"
}

cmd_restart() {
    [[ $# -eq 1 ]] || die "usage: kafka.sh restart DIR"
    local dir
    dir="$(abs_dir "$1")"
    [[ -f "$dir/server.properties" ]] || die "$dir has no broker to restart (run start first)"
    stop_broker "$dir"
    cmd_start "$dir"
}

cmd_status() {
    [[ $# -eq 1 ]] || die "usage: kafka.sh status DIR"
    [[ -d "$1" ]] || return 1
    local dir
    dir="$(abs_dir "$1")"
    [[ -n "$(running_pid "$dir")" ]] || return 1
    cat "$dir/bootstrap" 2>/dev/null || true
}

cmd_signal() { # cmd_signal SIGNAL DIR: signal the broker of DIR, if it runs
    [[ $# -eq 2 ]] || die "usage: kafka.sh {kill|pause|resume} DIR"
    local dir pid
    dir="$(abs_dir "$2")"
    pid="$(running_pid "$dir")"
    [[ -n "$pid" ]] || die "no broker is running for $dir"
    kill "-$1" "$pid"
    if [[ "$1" == KILL ]]; then
        while [[ -n "$(running_pid "$dir")" ]]; do sleep 0.05; done
        rm -f "$dir/pid"
    fi
}

# The nodes of a cluster in DIR: DIR/node1 .. DIR/nodeN, as many as were configured.
cluster_nodes() { # cluster_nodes DIR
    local node
    for node in "$1"/node*; do
        [[ -f "$node/server.properties" ]] && echo "$node"
    done
}

# stop_cluster DIR: SIGTERM every node at once, SIGKILL what is left after KAFKA_CLUSTER_STOP_TIMEOUT
# (default 5 s): the last nodes of a cluster going down together wait in vain for a controller
# to take their controlled shutdown, and a test cluster's data is thrown away anyway.
stop_cluster() {
    local node pids=() STOP_TIMEOUT="${KAFKA_CLUSTER_STOP_TIMEOUT:-5}"
    for node in $(cluster_nodes "$1"); do
        stop_broker "$node" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
}

configure_cluster() { # configure_cluster DIR N: fresh ports, node dirs and their configs
    local dir="$1" n="$2" i ports voters="" replicas isr
    read -r -a ports <<<"$(free_ports $((2 * n)))"
    for ((i = 1; i <= n; i++)); do
        voters+="${voters:+,}$i@127.0.0.1:${ports[n + i - 1]}"
    done
    replicas=$((n < 3 ? n : 3))
    isr=$((replicas > 2 ? 2 : 1))
    new_cluster_id >"$dir/cluster.id"
    for ((i = 1; i <= n; i++)); do
        mkdir -p "$dir/node$i"
        cp "$dir/cluster.id" "$dir/node$i/cluster.id"
        write_config "$dir/node$i" "${ports[i - 1]}" "${ports[n + i - 1]}" "$i" "$voters" "$replicas" "$isr"
    done
}

# Launch every node, then wait for each: a node's broker only starts once a majority of
# the controllers is up, so they cannot be started one after the other.
launch_cluster() { # launch_cluster DIR -> 0 ready, 2 a port in use, else exits
    local dir="$1" node nodes=() pids=() offsets=() i rc=0
    mapfile -t nodes < <(cluster_nodes "$dir")
    for node in "${nodes[@]}"; do format_storage "$node"; done
    for node in "${nodes[@]}"; do
        launch "$node"
        pids+=("$LAUNCHED_PID")
        offsets+=("$LAUNCHED_OFFSET")
    done
    for i in "${!nodes[@]}"; do
        wait_ready "${nodes[i]}" "${pids[i]}" "${offsets[i]}" || rc=$?
        [[ $rc -eq 0 ]] || return "$rc"
    done
}

cmd_start_cluster() {
    [[ $# -ge 1 && $# -le 2 ]] || die "usage: kafka.sh start-cluster DIR [NODES]"
    local dir n="${2:-3}" node attempt rc
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 2)) || die "a cluster has at least 2 nodes, not $n"
    dir="$(abs_dir "$1")"
    for node in $(cluster_nodes "$dir"); do
        [[ -z "$(running_pid "$node")" ]] || die "node $node is already running"
    done
    cmd_install
    command -v python3 >/dev/null || die "python3 not found"
    KAFKA_HEAP_OPTS="${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx384m}"
    # A node that fails to start ends this script (fail_start): take the others down with it.
    # shellcheck disable=SC2064  # expanded now: fail_start has a `dir` of its own
    trap "stop_cluster '$dir'" EXIT
    for attempt in 1 2 3; do
        [[ -n "$(cluster_nodes "$dir")" ]] || configure_cluster "$dir" "$n"
        rc=0
        launch_cluster "$dir" || rc=$?
        [[ $rc -eq 0 ]] && break
        stop_cluster "$dir"
        log "port race lost (attempt $attempt), retrying with new ports"
        rm -rf "$dir"/node*
    done
    [[ $rc -eq 0 ]] || die "could not bind free ports for the cluster after 3 attempts"
    trap - EXIT
    (for node in $(cluster_nodes "$dir"); do cat "$node/bootstrap"; done) | paste -sd, - | tee "$dir/bootstrap"
}

cmd_stop_cluster() {
    [[ $# -eq 1 ]] || die "usage: kafka.sh stop-cluster DIR"
    [[ -d "$1" ]] || return 0
    stop_cluster "$(abs_dir "$1")"
}

main() {
    local sub="${1:-}"
    shift || true
    case "$sub" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        restart) cmd_restart "$@" ;;
        status) cmd_status "$@" ;;
        kill) cmd_signal KILL "$@" ;;
        pause) cmd_signal STOP "$@" ;;
        resume) cmd_signal CONT "$@" ;;
        start-cluster) cmd_start_cluster "$@" ;;
        stop-cluster) cmd_stop_cluster "$@" ;;
        *) die "usage: kafka.sh {install|start DIR|stop DIR|restart DIR|status DIR|kill DIR|pause DIR|resume DIR|start-cluster DIR [N]|stop-cluster DIR}" ;;
    esac
}

main "$@"
