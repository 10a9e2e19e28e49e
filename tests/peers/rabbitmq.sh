#!/usr/bin/env bash
# A private rabbitmq-server for Sluice's AMQP tests and benchmarks: its own
# node name, ports, Erlang cookie, mnesia and log directories under one state
# directory, no plugins, never the Debian package's own service.
#
#   rabbitmq.sh start        starts the broker (or finds it running) and prints its AMQP port
#   rabbitmq.sh stop         stops it (nothing to do when it is not running)
#   rabbitmq.sh status       exit 0 when it answers, 1 otherwise
#   rabbitmq.sh port         prints the AMQP port of the running broker
#   rabbitmq.sh tls-port     prints the AMQPS port (CA certificate: $DIR/tls/ca.pem)
#   rabbitmq.sh ctl ARGS...  runs rabbitmqctl -n NODE ARGS against it (same cookie)
#
# Environment: SLUICE_RABBITMQ_DIR (state directory; default
# /tmp/sluice-rabbitmq-UID), SLUICE_RABBITMQ_NODE (default sluice-test@localhost;
# give each concurrent broker its own), SLUICE_RABBITMQ_PORT (default: a free port).
# Runs as root or any user: the rabbitmq scripts are called directly, not through
# Debian's su wrapper, with HOME set to the state directory so that the server and
# rabbitmqctl share a cookie of our own whatever the caller's HOME is.
set -euo pipefail

DIR="${SLUICE_RABBITMQ_DIR:-/tmp/sluice-rabbitmq-$(id -u)}"
NODE="${SLUICE_RABBITMQ_NODE:-sluice-test@localhost}"
BIN=/usr/lib/rabbitmq/bin
START_TIMEOUT=120

die() {
    echo "rabbitmq.sh: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Exports everything the rabbitmq scripts read, pointing into $DIR.
setup_env() {
    export HOME="$DIR/home"
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
    export RABBITMQ_LOG_BASE="$DIR/log"
    export RABBITMQ_PID_FILE="$DIR/rabbitmq.pid"
    export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
    export RABBITMQ_ENABLED_PLUGINS=""
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export LANG=C.UTF-8 LC_ALL=C.UTF-8
    if [ -f "$DIR/port" ]; then
        RABBITMQ_NODE_PORT="$(cat "$DIR/port")"
        export RABBITMQ_NODE_PORT
    fi
    if [ -f "$DIR/dist_port" ]; then
        RABBITMQ_DIST_PORT="$(cat "$DIR/dist_port")"
        export RABBITMQ_DIST_PORT
    fi
}

ctl() {
    "$BIN/rabbitmqctl" -n "$NODE" "$@"
}

# The pid of our server process when it is alive, else nothing.
server_pid() {
    local pid
    pid="$(cat "$DIR/server.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    fi
}

is_up() {
    [ -n "$(server_pid)" ] && [ -f "$DIR/port" ] && ctl -q await_startup --timeout 5 >/dev/null 2>&1
}

prepare_dir() {
    mkdir -p "$DIR/home" "$DIR/mnesia" "$DIR/log"
    if [ ! -s "$DIR/home/.erlang.cookie" ]; then
        # 32 random upper-case letters, readable by us only (Erlang insists).
        (umask 077 && python3 -c 'import secrets, string
print("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)), end="")' \
            >"$DIR/home/.erlang.cookie")
    fi
    chmod 400 "$DIR/home/.erlang.cookie"
    : >"$DIR/rabbitmq-env.conf"
    echo '[].' >"$DIR/enabled_plugins"
    echo '[].' >"$DIR/advanced.config"
    cat >"$DIR/rabbitmq.conf" <<'EOF'
# Private test broker: loopback only, small disk alarm threshold so a busy
# CI disk does not block publishers, no stats collection to speak of.
loopback_users.guest = false
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.6
collect_statistics_interval = 60000
log.console = false
log.file.level = warning
EOF
    if [ ! -f "$DIR/port" ]; then
        echo "${SLUICE_RABBITMQ_PORT:-$(free_port)}" >"$DIR/port"
    fi
    if [ ! -f "$DIR/dist_port" ]; then
        free_port >"$DIR/dist_port"
    fi
    make_tls
}

# A throw-away CA and a server certificate for localhost / 127.0.0.1, and a
# TLS listener with them (amqps:// tests verify against $DIR/tls/ca.pem).
# Skipped when openssl is missing.
make_tls() {
    command -v openssl >/dev/null 2>&1 || return 0
    local t="$DIR/tls"
    if [ ! -s "$t/server.pem" ]; then
        mkdir -p "$t"
        (
            cd "$t"
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sluice-test-ca" \
                -keyout ca.key -out ca.pem
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
                -out server.csr
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 3650 -extfile ext.cnf -out server.pem
        ) >"$DIR/log/tls.out" 2>&1 || {
            echo "rabbitmq.sh: TLS setup failed, see $DIR/log/tls.out" >&2
            return 0
        }
    fi
    if [ ! -f "$DIR/tls_port" ]; then
        free_port >"$DIR/tls_port"
    fi
    cat >>"$DIR/rabbitmq.conf" <<EOF
listeners.ssl.1 = 127.0.0.1:$(cat "$DIR/tls_port")
ssl_options.cacertfile = $t/ca.pem
ssl_options.certfile = $t/server.pem
ssl_options.keyfile = $t/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
}

cmd_start() {
    setup_env
    if is_up; then
        cat "$DIR/port"
        return 0
    fi
    if [ -n "$(server_pid)" ]; then
        # Alive but not answering: maybe still booting. Wait for it below.
        :
    else
        prepare_dir
        setup_env
        [ -x "$BIN/rabbitmq-server" ] || die "rabbitmq-server is not installed ($BIN)"
        # setsid: its own session, so that the caller's Ctrl-C or process group
        # kill does not reach the broker half way; `stop` ends it properly.
        setsid "$BIN/rabbitmq-server" >>"$DIR/log/server.out" 2>&1 </dev/null &
        echo $! >"$DIR/server.pid"
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if [ -z "$(server_pid)" ]; then
            tail -n 30 "$DIR/log/server.out" >&2 || true
            die "rabbitmq-server exited during start (log: $DIR/log)"
        fi
        if ctl -q await_startup --timeout 10 >/dev/null 2>&1; then
            break
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$DIR/log/server.out" >&2 || true
            die "rabbitmq-server did not start within ${START_TIMEOUT}s (log: $DIR/log)"
        fi
        sleep 0.5
    done
    cat "$DIR/port"
}

cmd_stop() {
    setup_env
    local pid
    pid="$(server_pid)"
    if [ -z "$pid" ]; then
        return 0
    fi
    ctl -q stop >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        # The server script did not exit: end its session (ours alone: setsid).
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/server.pid"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status)
        [ -d "$DIR/home" ] || exit 1
        setup_env
        is_up
        ;;
    port)
        [ -f "$DIR/port" ] || die "not started"
        cat "$DIR/port"
        ;;
    tls-port)
        [ -f "$DIR/tls_port" ] || die "no TLS listener (openssl missing?)"
        cat "$DIR/tls_port"
        ;;
    ctl)
        shift
        [ -s "$DIR/home/.erlang.cookie" ] || die "no broker in $DIR (start it first)"
        setup_env
        ctl "$@"
        ;;
    *)
        echo "usage: $0 start|stop|status|port|ctl ARGS..." >&2
        exit 2
        ;;
esac
