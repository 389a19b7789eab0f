#!/usr/bin/env bash
# Builds the Sluice container image for real, without a Docker engine or a registry, and tests it:
#   1. debootstrap a Debian 12 root filesystem from the apt mirror this machine uses and import it
#      as the local debian:bookworm and debian:bookworm-slim (cached between runs);
#   2. podman build the Dockerfile with --pull=never;
#   3. run `sluice --version` and `sluice-backend --help` in the image;
#   4. run the image as the pods do (read-only root, no capabilities, UID 10001, the config mounted
#      as a directory at /etc/sluice) on the host network, in front of two backends on loopback: a
#      host process (python3 http.server) and the image's own sluice-backend (entrypoint override);
#      check connections through it, /healthz, /metrics, JSON logs on stdout and the SIGTERM drain;
#   5. report the image size, and remove the containers and the image.
# Installs podman, runc, debootstrap and uidmap with apt-get if missing. Needs root.
#
# Usage: scripts/image-test.sh [--keep] [--purge]
#   --keep   leave the image (localhost/sluice:image-test) in the test's storage
#   --purge  delete the cache (base images, build layers: $SLUICE_IMAGE_CACHE) and exit
#   SLUICE_IMAGE_CACHE  cache and podman storage (default /var/tmp/sluice-image-test)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${SLUICE_IMAGE_CACHE:-/var/tmp/sluice-image-test}
image=localhost/sluice:image-test
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1; shift ;;
    --purge) rm -rf "$cache"; echo "image-test: removed $cache"; exit 0 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "image-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image-test: run as root (podman storage, debootstrap)" >&2; exit 1; }
log() { echo "image-test: $*"; }
die() { echo "image-test: FAILED: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------------
packages=(podman runc debootstrap uidmap python3 curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -q
  timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- podman configuration: private storage under the cache, nothing system-wide changed ----------------
work=$(mktemp -d -t sluice-image-test.XXXXXX)
containers=()
backend_pid=""
cleanup() {
  set +e
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" > /dev/null 2>&1; done
  [ -n "$backend_pid" ] && kill "$backend_pid" 2> /dev/null && wait "$backend_pid" 2> /dev/null
  [ "$keep" -eq 1 ] || podman rmi -f "$image" > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$cache/storage" "$cache/run"
hard_limit() { local v; v=$(ulimit -H "$1"); [ "$v" = unlimited ] && v=1048576; echo "$v"; }
nofile=$(hard_limit -n)
nproc=$(hard_limit -u)
[ "$nproc" -gt 32768 ] && nproc=32768  # runc is refused even the shell's own hard limit here
cat > "$work/containers.conf" << EOF
[containers]
# podman's defaults for these limits are above this machine's hard limits, which runc cannot raise.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"   # no systemd here
events_logger = "file"
EOF
cat > "$work/storage.conf" << EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$cache/run"
EOF
# Short names (FROM debian:bookworm) resolve to docker.io/library/..., found locally (--pull=never).
cat > "$work/registries.conf" << 'EOF'
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf

# --- base images: debootstrap from this machine's Debian mirror ------------------------------------------
# The "URIs:" of the deb822 stanza for bookworm (not bookworm-security), else a one-line sources.list.
mirror=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ { print uri; exit }' \
  /etc/apt/sources.list.d/*.sources 2> /dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2> /dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && /bookworm-security/ { print uri; exit }' \
  /etc/apt/sources.list.d/*.sources 2> /dev/null || true)
security=${security:-http://deb.debian.org/debian-security}

build_base_tarballs() {
  local rootfs=$work/rootfs
  log "debootstrap bookworm (minbase) from $mirror"
  timeout 1200 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; die "debootstrap"; }
  # As Debian's official images: the three suites, no caches.
  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" << EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" << 'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner -cf "$cache/bookworm.tar.partial" . && mv "$cache/bookworm.tar.partial" "$cache/bookworm.tar"
  # -slim as Debian makes it: no documentation, manuals or translations, now or from later installs.
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" << 'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -cf "$cache/bookworm-slim.tar.partial" . && mv "$cache/bookworm-slim.tar.partial" "$cache/bookworm-slim.tar"
  rm -rf "$rootfs"
}
# Bump when build_base_tarballs changes: cached tarballs and imported images of another recipe are redone.
recipe=2
if [ "$(cat "$cache/base-recipe" 2> /dev/null)" != "$recipe" ]; then
  rm -f "$cache"/bookworm*.tar
  build_base_tarballs
  echo "$recipe" > "$cache/base-recipe"
fi
for tag in bookworm bookworm-slim; do
  label=$(podman image inspect --format '{{index .Config.Labels "sluice.base-recipe"}}' "docker.io/library/debian:$tag" 2> /dev/null || true)
  if [ "$label" != "$recipe" ]; then
    log "importing $cache/$tag.tar as debian:$tag"
    podman import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' --change "LABEL sluice.base-recipe=$recipe" \
      "$cache/$tag.tar" "docker.io/library/debian:$tag" > /dev/null
  fi
done

# --- build ---------------------------------------------------------------------------------------------
# Earlier builds' layers stay as a cache for an hour; older ones go, so the cache does not grow forever.
podman image prune -f --filter until=1h > /dev/null
log "podman build -t $image ."
start=$SECONDS
timeout 3600 podman build --pull=never --network=host -t "$image" -f Dockerfile . > "$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; die "podman build"; }
log "built in $((SECONDS - start)) s ($(grep -c '^--> Using cache' "$work/build.log" || true) steps from the layer cache)"

# --- the binaries ------------------------------------------------------------------------------------------
expected_version=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
version=$(timeout 60 podman run --rm --network=host "$image" --version)
log "sluice --version: $version"
[[ "$version" == *"$expected_version"* ]] || die "expected version $expected_version"
timeout 60 podman run --rm --network=host --entrypoint /usr/local/bin/sluice-backend "$image" --help |
  grep -q "usage: sluice-backend" || die "sluice-backend --help"
log "sluice-backend --help: ok (entrypoint override)"
timeout 60 podman run --rm --network=host --entrypoint /bin/sleep "$image" 0 ||
  die "/bin/sleep (the pod's preStop hook) is missing"
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "10001:10001" ] || die "image user is '$user', not 10001:10001"
log "image user: $user"

# --- the image as the pods run it ----------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS COMMAND...: polls every 0.2 s
  local deadline=$((SECONDS + $1))
  shift
  until "$@" > /dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
# As in the pods: no writable path at all (podman would add tmpfs mounts), no capabilities.
restricted=(--network=host --read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt=no-new-privileges)

host_port=$(free_port)
mkdir -p "$work/www"
echo "backend=host-python" > "$work/www/index.html"
python3 -m http.server "$host_port" --bind 127.0.0.1 --directory "$work/www" > "$work/python.log" 2>&1 &
backend_pid=$!
image_port=$(free_port)
containers+=(sluice-image-test-backend)
podman run -d --name sluice-image-test-backend "${restricted[@]}" -e NODE_NAME=image-node \
  --entrypoint /usr/local/bin/sluice-backend "$image" --listen "127.0.0.1:$image_port" --name image-backend > /dev/null
wait_for 10 curl -sf "http://127.0.0.1:$host_port/" || die "python3 http.server did not start"
wait_for 10 curl -sf "http://127.0.0.1:$image_port/" || die "sluice-backend in the image did not start"

mkdir -p "$work/config"
cat > "$work/config/sluice.yaml" << EOF
drain_timeout: 5s
log: { level: info, format: json, access_log: true }
admin: { bind: "127.0.0.1:0" }
listeners:
  - { name: web, bind: "127.0.0.1:0", service: web }
services:
  - name: web
    policy: round_robin
    backends:
      - { name: host-python, address: "127.0.0.1:$host_port", node: host, max_connections: 4 }
      - { name: image-backend, address: "127.0.0.1:$image_port", node: image-node, max_connections: 4 }
EOF
containers+=(sluice-image-test)
podman run -d --name sluice-image-test "${restricted[@]}" -v "$work/config:/etc/sluice:ro" "$image" > /dev/null
address_of() {  # the address of the first matching JSON log line: a field, or address= in a message
  podman logs sluice-image-test 2>&1 | grep "$1" | grep -oE '("address":"|address=)[0-9.]+:[0-9]+' | head -1 |
    sed -E 's/^("address":"|address=)//'
}
wait_for 10 sh -c "podman logs sluice-image-test 2>&1 | grep -q 'admin listening'" ||
  { podman logs sluice-image-test; die "sluice did not start"; }
listener=$(address_of '"event":"listening","listener":"web"')
admin=$(address_of "admin listening")
log "sluice in the image: listener $listener, admin $admin (config mounted at /etc/sluice, read-only root)"

for i in 1 2 3 4; do
  curl -sS --max-time 5 "http://$listener/" >> "$work/answers.txt" || die "request $i through sluice"
done
grep -q "backend=host-python" "$work/answers.txt" || die "no answer from the host backend"
grep -q "backend=image-backend node=image-node" "$work/answers.txt" || die "no answer from the image's backend"
log "4 requests through sluice: $(grep -o 'backend=[a-z-]*' "$work/answers.txt" | sort | uniq -c | xargs)"
[ "$(curl -sS --max-time 5 "http://$admin/healthz")" = ok ] || die "/healthz"
log "/healthz: ok"
curl -sS --max-time 5 "http://$admin/metrics" > "$work/metrics.txt" || die "/metrics"
for backend in host-python image-backend; do
  grep -Eq "^sluice_backend_connections_total\{[^}]*backend=\"$backend\"[^}]*\} 2(\.0*)?$" "$work/metrics.txt" ||
    die "/metrics: sluice_backend_connections_total of $backend is not 2"
done
promtool_note=""
if command -v promtool > /dev/null; then
  promtool check metrics < "$work/metrics.txt" || die "promtool check metrics"
  promtool_note=", promtool check metrics clean"
fi
log "/metrics: $(grep -c '^# TYPE' "$work/metrics.txt") families, 2 connections to each backend$promtool_note"
podman logs sluice-image-test > "$work/stdout.log" 2> "$work/stderr.log"
[ ! -s "$work/stderr.log" ] || { cat "$work/stderr.log"; die "sluice wrote to stderr"; }
# Every line one JSON object with the common fields; the access log: one line per connection, with its backend.
access_lines=$(python3 -c '
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
assert all(isinstance(r.get(k), str) for r in lines for k in ("time", "level", "event")), "a line lacks time, level or event"
print(sum(1 for r in lines if r["event"] == "access" and r.get("backend")))' "$work/stdout.log") ||
  die "logs on stdout are not all JSON lines"
[ "$access_lines" -eq 4 ] || die "expected 4 access-log lines on stdout, found $access_lines"
log "logs: JSON lines on stdout, one access-log line per connection ($access_lines)"
timeout 60 podman stop -t 20 sluice-image-test > /dev/null
exit_code=$(podman inspect --format '{{.State.ExitCode}}' sluice-image-test)
[ "$exit_code" = 0 ] || { podman logs --tail 5 sluice-image-test; die "exit code $exit_code after SIGTERM"; }
log "SIGTERM: drained and exited 0"

# --- size ------------------------------------------------------------------------------------------------
size=$(podman image inspect --format '{{.Size}}' "$image")
base=$(podman image inspect --format '{{.Size}}' docker.io/library/debian:bookworm-slim)
log "image size: $((size / 1000000)) MB ($size bytes; the debian:bookworm-slim base is $((base / 1000000)) MB)"
log "passed"
