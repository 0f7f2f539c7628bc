#!/usr/bin/env bash
# System prerequisites for the local environment, installed only when missing (idempotent):
#   - PostgreSQL 15 server binaries (initdb, pg_ctl, postgres) from Debian's packages
#   - the node's host parts from Debian's packages: runc (the OCI runtime containerd runs
#     containers with), buildah (builds the Dockerfile without a daemon or registry),
#     mmdebstrap (the image's base from Debian's packages), iproute2 and util-linux
#     (the node's bridge and mount namespace)
#   - the Go toolchain (>= 1.26) is expected on the machine; it builds the control plane, the
#     node's kubelet, containerd and CNI plugins, and helm
set -euo pipefail

apt_install() {
  # $@: Debian packages to install as root; fails with the command to run otherwise.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* from Debian's packages ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "missing: $* (as root: apt-get install $*)" >&2
    exit 1
  fi
}

if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  apt_install postgresql-15
  # The package starts a system cluster we do not use; tests start their own servers.
  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster 15 main stop) >/dev/null 2>&1 || true
fi

missing=()
for tool in runc:runc buildah:buildah mmdebstrap:mmdebstrap ip:iproute2 unshare:util-linux \
            nsenter:util-linux; do
  command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # shellcheck disable=SC2207
  apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
fi

GO=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$GO" ]; then
  echo "the Go toolchain (>= 1.26) is required to build kube-apiserver/etcd; none found" >&2
  exit 1
fi
"$GO" version
