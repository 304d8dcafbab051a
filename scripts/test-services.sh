#!/usr/bin/env bash
# Make sure the services the tests talk to are running on loopback; install them if missing.
# Safe to run again: it only acts on what is absent. (SecantusDB, the MongoDB wire server, is a
# pip dev dependency that the tests start themselves on a free port. InfluxDB is only
# installed: each test that needs it starts its own influxd on free ports.)
set -euo pipefail

APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "test-services: need root to apt-get install $*; install them and re-run" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  # The outage tests run private clusters (initdb, pg_ctl), even beside a running server.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || no_service_starts apt_install postgresql
  if command -v pg_isready >/dev/null && postgres_ready; then
    return
  fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Debian's default cluster listens on localhost:5432 and trusts local connections.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do
    postgres_ready && break
    sleep 0.2
  done
  postgres_ready || { echo "test-services: PostgreSQL did not start" >&2; exit 1; }
  # Tests connect as postgres over TCP without a password, as on the CI machine.
  local hba
  hba=$(su postgres -c "psql -tAc 'SHOW hba_file'")
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
  fi
}

# Debian's maintainer scripts ask policy-rc.d before starting a service; 101 means "do not".
# Installing influxdb must not leave a system influxd holding ports 8086/8088.
no_service_starts() {
  local policy=/usr/sbin/policy-rc.d created=0
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
  fi
  local status=0
  "$@" || status=$?
  if [ "$created" = 1 ]; then rm -f "$policy"; fi
  return "$status"
}

ensure_influxd() {
  command -v influxd >/dev/null || no_service_starts apt_install influxdb
}

ensure_wrk() {
  command -v wrk >/dev/null || apt_install wrk
}

ensure_nginx() {
  # bench/load_throughput.py runs its own nginx on a free port; the package must not start one.
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || no_service_starts apt_install nginx
}

redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  # The outage tests run private redis-servers, even beside a running one.
  command -v redis-server >/dev/null || no_service_starts apt_install redis-server
  if command -v redis-cli >/dev/null && redis_ready; then
    return
  fi
  command -v redis-server >/dev/null || no_service_starts apt_install redis-server
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis_ready && break
    sleep 0.1
  done
  redis_ready || { echo "test-services: Redis did not start" >&2; exit 1; }
}

ensure_chromium() {
  # The offline-docs test drives Debian's Chromium through Playwright (no browser download).
  command -v chromium >/dev/null || no_service_starts apt_install --no-install-recommends chromium
}

ensure_unshare() {
  # The fuzz and target-policy tests run in a network namespace with only loopback.
  command -v unshare >/dev/null || apt_install util-linux
  command -v ip >/dev/null || apt_install iproute2
}

ensure_postgres
echo "test-services: PostgreSQL ready on 127.0.0.1:5432"
ensure_redis
echo "test-services: Redis ready on 127.0.0.1:6379"
ensure_influxd
echo "test-services: influxd installed (the tests start their own)"
ensure_wrk
echo "test-services: wrk installed (make bench)"
ensure_nginx
echo "test-services: nginx installed (make bench)"
ensure_chromium
echo "test-services: chromium installed (offline docs test)"
ensure_unshare
echo "test-services: unshare and ip installed (network-namespace tests)"
