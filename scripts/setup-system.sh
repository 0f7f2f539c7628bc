#!/usr/bin/env bash
# System prerequisites for the local environment, installed only when missing:
#   - PostgreSQL 15 server binaries (initdb, pg_ctl, postgres) from Debian's packages
#   - the Go toolchain (>= 1.26) is expected on the machine; it builds the control plane
set -euo pipefail

need_pg=1
for d in /usr/lib/postgresql/15/bin; do [ -x "$d/initdb" ] && need_pg=0; done
if [ "$need_pg" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql-15 from Debian's packages ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
    # The package starts a system cluster we do not use; tests start their own servers.
    (command -v pg_ctlcluster >/dev/null && pg_ctlcluster 15 main stop) >/dev/null 2>&1 || true
  else
    echo "PostgreSQL 15 server binaries are missing: install postgresql-15 (as root: apt-get install postgresql-15)" >&2
    exit 1
  fi
fi

GO=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$GO" ]; then
  echo "the Go toolchain (>= 1.26) is required to build kube-apiserver/etcd; none found" >&2
  exit 1
fi
"$GO" version
