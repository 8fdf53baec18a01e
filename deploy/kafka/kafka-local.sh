#!/usr/bin/env bash
# A single-node Apache Kafka 4.x (KRaft, combined broker+controller) for
# development, tests and CI on machines without a Docker engine.
#
# Why this exists: the Kafka tarball lives on Apache download mirrors, which CI
# machines cannot reach, but Maven Central can. The broker is a plain JVM
# program, so its jars from Maven Central plus a generated config are a full
# Kafka; no container is needed.
#
# Usage: deploy/kafka/kafka-local.sh {install|start [--fresh]|stop|status|bootstrap}
#
# Environment (all optional):
#   CALLQUAL_KAFKA_VERSION          broker version (default 4.4.0)
#   CALLQUAL_KAFKA_HOME             cache for jars and run dirs (default ~/.cache/callqual/kafka)
#   CALLQUAL_KAFKA_PORT             client (PLAINTEXT) port on 127.0.0.1 (default 9092)
#   CALLQUAL_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   CALLQUAL_KAFKA_RUN_DIR          data, config, pid and log (default $HOME/run-$PORT)
#   CALLQUAL_KAFKA_HEAP             JVM heap options (default "-Xms256m -Xmx512m")
#   CALLQUAL_KAFKA_START_TIMEOUT    seconds to wait for clients to be served (default 60)
#   CALLQUAL_KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 30)
#   CALLQUAL_MVN                    maven command (default mvn)
#   CALLQUAL_KAFKA_SASL_SSL_PORT    also serve SASL_SSL (SCRAM-SHA-512 over TLS) on this port; needs:
#     CALLQUAL_KAFKA_SSL_KEYSTORE               the broker's key and certificate, PKCS12
#     CALLQUAL_KAFKA_SSL_KEYSTORE_PASSWORD_FILE file holding the keystore's password
#     CALLQUAL_KAFKA_SCRAM_USER                 the SCRAM-SHA-512 user, created when storage is formatted
#     CALLQUAL_KAFKA_SCRAM_PASSWORD_FILE        file holding that user's password
#                                   (PLAINTEXT stays on CALLQUAL_KAFKA_PORT, for the broker's own use)
#   PYTHON                          python with confluent-kafka for the readiness probe (default python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${CALLQUAL_KAFKA_VERSION:-4.4.0}"
KAFKA_HOME="${CALLQUAL_KAFKA_HOME:-${HOME}/.cache/callqual/kafka}"
PORT="${CALLQUAL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CALLQUAL_KAFKA_CONTROLLER_PORT:-9093}"
RUN_DIR="${CALLQUAL_KAFKA_RUN_DIR:-${KAFKA_HOME}/run-${PORT}}"
HEAP="${CALLQUAL_KAFKA_HEAP:--Xms256m -Xmx512m}"
START_TIMEOUT="${CALLQUAL_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${CALLQUAL_KAFKA_STOP_TIMEOUT:-30}"
MVN="${CALLQUAL_MVN:-mvn}"
PYTHON="${PYTHON:-python3}"

LIB_DIR="${KAFKA_HOME}/${KAFKA_VERSION}/lib"
# Written last by install: a lib/ without it is a half-finished download.
MARKER="${KAFKA_HOME}/${KAFKA_VERSION}/.installed"
PID_FILE="${RUN_DIR}/kafka.pid"
LOG_FILE="${RUN_DIR}/logs/server.log"
STDOUT_FILE="${RUN_DIR}/logs/stdout.log"
DATA_DIR="${RUN_DIR}/data"
BOOTSTRAP="127.0.0.1:${PORT}"
SASL_SSL_PORT="${CALLQUAL_KAFKA_SASL_SSL_PORT:-}"

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

running_pid() {
    # Prints the broker's pid if the pid file names a live kafka.Kafka process.
    # Checking the command line guards against a recycled pid after a reboot.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    printf '%s\n' "$pid"
}

cmd_install() {
    if [[ -f "$MARKER" ]]; then
        log "Kafka ${KAFKA_VERSION} already installed in ${LIB_DIR}"
        return 0
    fi
    command -v java >/dev/null || die "java not found (Kafka 4.x needs Java 17+)"
    command -v "$MVN" >/dev/null || die "maven ('${MVN}') not found"
    mkdir -p "${KAFKA_HOME}/${KAFKA_VERSION}"
    # Parallel test sessions may race to install; one lock keeps lib/ whole.
    exec 8>"${KAFKA_HOME}/${KAFKA_VERSION}/.install.lock"
    if command -v flock >/dev/null; then flock 8; fi
    if [[ -f "$MARKER" ]]; then
        exec 8>&-
        log "Kafka ${KAFKA_VERSION} installed by a concurrent run"
        return 0
    fi
    local tmp="${LIB_DIR}.tmp.$$"
    rm -rf "$tmp"
    log "fetching org.apache.kafka:kafka_2.13:${KAFKA_VERSION} and its runtime dependencies with maven"
    # Maven's output goes to a file, shown on failure only: `start` prints
    # nothing but the bootstrap line on stdout.
    local mvn_log="${KAFKA_HOME}/${KAFKA_VERSION}/mvn.log"
    if ! "$MVN" -B -ntp -Dstyle.color=never -f "${SCRIPT_DIR}/pom.xml" \
        -Dkafka.version="${KAFKA_VERSION}" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
        tail -n 40 "$mvn_log" >&2
        rm -rf "$tmp"
        die "maven could not fetch Kafka ${KAFKA_VERSION} (full log: ${mvn_log})"
    fi
    ls "$tmp"/kafka_2.13-"${KAFKA_VERSION}".jar >/dev/null 2>&1 || die "broker jar missing after maven run"
    rm -rf "$LIB_DIR"
    mv "$tmp" "$LIB_DIR"
    touch "$MARKER"
    # Closed so the broker started next does not inherit (and hold) the lock.
    exec 8>&-
    log "installed Kafka ${KAFKA_VERSION} ($(find "$LIB_DIR" -name '*.jar' | wc -l) jars) in ${LIB_DIR}"
}

read_secret() {
    # A secret comes from a file, never from the environment or a command line we print.
    [[ -n "${1:-}" && -r "$1" ]] || die "secret file '${1:-}' not readable"
    head -n 1 "$1" | tr -d '\r\n'
}

sasl_ssl_config() {
    # The SASL_SSL listener: SCRAM-SHA-512 over TLS with the caller's keystore.
    [[ -n "$SASL_SSL_PORT" ]] || return 0
    [[ -r "${CALLQUAL_KAFKA_SSL_KEYSTORE:-}" ]] || die "CALLQUAL_KAFKA_SSL_KEYSTORE not readable"
    local keystore_password
    keystore_password="$(read_secret "${CALLQUAL_KAFKA_SSL_KEYSTORE_PASSWORD_FILE:-}")"
    cat <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=${CALLQUAL_KAFKA_SSL_KEYSTORE}
listener.name.sasl_ssl.ssl.keystore.password=${keystore_password}
EOF
}

write_config() {
    mkdir -p "${RUN_DIR}/logs" "$DATA_DIR"
    local listeners="PLAINTEXT://127.0.0.1:${PORT}" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [[ -n "$SASL_SSL_PORT" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:${SASL_SSL_PORT}"
        protocols+=",SASL_SSL:SASL_SSL"
    fi
    # With a keystore password in it, the file is for its owner only.
    (umask 077 && : >"${RUN_DIR}/server.properties")
    cat >"${RUN_DIR}/server.properties" <<EOF
# Generated by kafka-local.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${CONTROLLER_PORT}
listeners=${listeners},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}
advertised.listeners=${listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=${protocols}
log.dirs=${DATA_DIR}
num.partitions=1
auto.create.topics.enable=false
# One node: every internal topic must fit on one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start consumers right away; the default 3 s delay only slows them.
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
EOF
    sasl_ssl_config >>"${RUN_DIR}/server.properties"
    cat >"${RUN_DIR}/log4j2.properties" <<EOF
# Generated by kafka-local.sh: everything to one file, nothing to the terminal,
# so a background broker never writes into a test runner's output.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${LOG_FILE}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

format_storage() {
    if [[ -f "${DATA_DIR}/meta.properties" ]]; then
        return 0
    fi
    # A Kafka Uuid is 16 random bytes in unpadded base64url (what
    # `StorageTool random-uuid` prints, without a second JVM start). Like
    # Kafka, avoid a leading '-', which the CLI would read as an option.
    local cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    local scram=()
    if [[ -n "$SASL_SSL_PORT" ]]; then
        [[ -n "${CALLQUAL_KAFKA_SCRAM_USER:-}" ]] || die "CALLQUAL_KAFKA_SCRAM_USER not set"
        local password
        password="$(read_secret "${CALLQUAL_KAFKA_SCRAM_PASSWORD_FILE:-}")"
        # KRaft keeps SCRAM credentials in its metadata log: they are written at format time.
        scram=(--add-scram "SCRAM-SHA-512=[name=${CALLQUAL_KAFKA_SCRAM_USER},password=${password}]")
    fi
    java -Dlog4j2.configurationFile="${RUN_DIR}/log4j2.properties" -cp "${LIB_DIR}/*" \
        kafka.tools.StorageTool format --standalone -t "$cluster_id" "${scram[@]}" \
        -c "${RUN_DIR}/server.properties" >>"$STDOUT_FILE" 2>&1 ||
        die "storage format failed: $(tail -n 20 "$STDOUT_FILE")"
}

probe() {
    # Succeeds once the broker answers a metadata request from a real client,
    # which is what callers need; an open port alone is not enough.
    if "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
        "$PYTHON" - "$BOOTSTRAP" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0, "socket.connection.setup.timeout.ms": 1000})
md = admin.list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
EOF
    else
        grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null
    fi
}

show_failure() {
    # The cause is usually the first ERROR (e.g. a port in use), long before
    # the shutdown noise at the end of the log: show both.
    log "first errors in ${LOG_FILE}:"
    grep -m 5 -A 2 -E '\] (ERROR|FATAL) ' "$LOG_FILE" >&2 || true
    log "log tail:"
    tail -n 30 "$LOG_FILE" "$STDOUT_FILE" >&2 || true
}

cmd_start() {
    local fresh=0
    [[ "${1:-}" == "--fresh" ]] && fresh=1
    [[ -f "$MARKER" ]] || cmd_install
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid ${pid}) on ${BOOTSTRAP}"
        printf 'KAFKA_BOOTSTRAP_SERVERS=%s\n' "$BOOTSTRAP"
        return 0
    fi
    if ((fresh)); then rm -rf "$DATA_DIR" "${RUN_DIR}/logs"; fi
    write_config
    format_storage
    : >"$LOG_FILE"
    local t0=$SECONDS
    # setsid: the broker must not get the Ctrl-C meant for the shell or pytest
    # that started it; shutdown goes through `stop` and SIGTERM only.
    # shellcheck disable=SC2086
    (exec setsid java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="${RUN_DIR}/log4j2.properties" \
        -Dkafka.logs.dir="${RUN_DIR}/logs" \
        -cp "${LIB_DIR}/*" kafka.Kafka "${RUN_DIR}/server.properties" \
        >>"$STDOUT_FILE" 2>&1 </dev/null) &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    log "started pid ${pid}, waiting up to ${START_TIMEOUT}s for ${BOOTSTRAP}"
    while ((SECONDS - t0 < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            log "broker exited during startup"
            show_failure
            exit 1
        fi
        if probe; then
            log "ready on ${BOOTSTRAP} after $((SECONDS - t0))s (Kafka ${KAFKA_VERSION}, log ${LOG_FILE})"
            printf 'KAFKA_BOOTSTRAP_SERVERS=%s\n' "$BOOTSTRAP"
            return 0
        fi
        sleep 0.5
    done
    log "not ready after ${START_TIMEOUT}s"
    show_failure
    cmd_stop
    exit 1
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid"
    local t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < STOP_TIMEOUT)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "no exit ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL to ${pid}"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped pid ${pid} after $((SECONDS - t0))s"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if probe; then
            log "running (pid ${pid}) and serving ${BOOTSTRAP}"
        else
            log "running (pid ${pid}) but not answering on ${BOOTSTRAP}"
        fi
        printf 'KAFKA_BOOTSTRAP_SERVERS=%s\n' "$BOOTSTRAP"
        return 0
    fi
    log "not running (run dir ${RUN_DIR})"
    # LSB: 3 = program is not running.
    return 3
}

case "${1:-}" in
install) cmd_install ;;
start)
    shift
    cmd_start "$@"
    ;;
stop) cmd_stop ;;
status) cmd_status ;;
bootstrap) printf '%s\n' "$BOOTSTRAP" ;;
*)
    printf 'usage: %s {install|start [--fresh]|stop|status|bootstrap}\n' "$0" >&2
    exit 2
    ;;
esac
