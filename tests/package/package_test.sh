#!/usr/bin/env bash
# The install rules and the Debian packages, checked the way an operator meets them. One check a
# run (each a ctest entry of tests/package/CMakeLists.txt):
#
#   package_test.sh stage   BUILD        cmake --install into an empty folder: exactly the expected
#                                        files; the sluice component alone; --check on the config
#   package_test.sh timeout SOURCE       the unit's TimeoutStopSec is above the config's drain_timeout
#   package_test.sh deb     BUILD OUT    cpack builds sluice and sluice-tools into OUT; dpkg-deb -c
#                                        and -f show the files, conffile, dependencies, scripts;
#                                        systemd-analyze verify on the unit as the package ships it
#   package_test.sh lintian OUT          lintian reports no error and no warning (info is printed)
#   package_test.sh chroot  OUT          apt install ./sluice_*.deb in a fresh Debian 12 root
#                                        (debootstrap): --check passes, user and enabled unit exist,
#                                        an edited config survives a reinstall, purge removes them
set -euo pipefail

fail() { echo "FAILED: $*" >&2; exit 1; }
# Where a check cannot run (not root): ctest's skip marker, or a failure under CI=true, as
# scripts/validate-deploy.sh does.
skip() {
  if [ "${CI:-}" = true ] || [ "${SLUICE_REQUIRE_ALL:-}" = 1 ]; then fail "$1 (CI=true or SLUICE_REQUIRE_ALL=1 requires this check)"; fi
  echo "[sluice-test-skipped] $1"
  exit 0
}

work=$(mktemp -d -t sluice-package-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The value in seconds of a duration such as 25s, 1m, 1500ms (the config's units; systemd's too).
seconds() {
  case "$1" in
    *ms) echo "$(( ${1%ms} / 1000 ))" ;;
    *s) echo "${1%s}" ;;
    *min) echo "$(( ${1%min} * 60 ))" ;;
    *m) echo "$(( ${1%m} * 60 ))" ;;
    *h) echo "$(( ${1%h} * 3600 ))" ;;
    *) echo "$1" ;;
  esac
}

# The files under a folder, one relative path a line, sorted.
file_list() { (cd "$1" && find . -type f -o -type l | sed 's|^\./||' | LC_ALL=C sort); }

check_stage() {
  local build=$1
  cmake --install "$build" --prefix "$work/all" > /dev/null
  file_list "$work/all" > "$work/all.txt"
  cat > "$work/expected.txt" << 'EOF'
bin/sluice
bin/sluice-backend
bin/sluice-loadgen
etc/sluice/sluice.yaml
lib/systemd/system/sluice.service
share/doc/sluice-tools/changelog.Debian.gz
share/doc/sluice-tools/copyright
share/doc/sluice/README.md.gz
share/doc/sluice/changelog.Debian.gz
share/doc/sluice/copyright
share/lintian/overrides/sluice
share/lintian/overrides/sluice-tools
share/man/man1/sluice-backend.1.gz
share/man/man1/sluice-loadgen.1.gz
share/man/man1/sluice.1.gz
EOF
  diff -u "$work/expected.txt" "$work/all.txt" || fail "cmake --install did not install exactly the expected files"
  echo "cmake --install --prefix: $(wc -l < "$work/all.txt") files, as expected"

  cmake --install "$build" --prefix "$work/daemon" --component sluice > /dev/null
  if grep -q 'bin/sluice-backend\|bin/sluice-loadgen' <<< "$(file_list "$work/daemon")"; then fail "the sluice component holds the tools"; fi
  [ -x "$work/daemon/bin/sluice" ] || fail "the sluice component has no bin/sluice"
  "$work/all/bin/sluice" --check --config "$work/all/etc/sluice/sluice.yaml" || fail "the installed config fails --check"
  gzip -t "$work/all/share/man/man1/sluice.1.gz" || fail "the man page is not valid gzip"
  echo "component sluice alone: the daemon without the tools; the installed config passes --check"
}

check_timeout() {
  local source=$1
  local stop drain
  stop=$(sed -n 's/^TimeoutStopSec=//p' "$source/packaging/sluice.service")
  drain=$(sed -n 's/^drain_timeout: *\([0-9a-z]*\).*/\1/p' "$source/config/host.yaml")
  [ -n "$stop" ] || fail "packaging/sluice.service has no TimeoutStopSec="
  [ -n "$drain" ] || fail "config/host.yaml has no drain_timeout"
  echo "TimeoutStopSec=$stop ($(seconds "$stop") s), drain_timeout: $drain ($(seconds "$drain") s)"
  [ "$(seconds "$stop")" -gt "$(seconds "$drain")" ] ||
    fail "TimeoutStopSec ($stop) must exceed drain_timeout ($drain): systemd would kill a draining sluice"
}

check_deb() {
  local build=$1 out=$2
  rm -rf "$out"
  mkdir -p "$out"
  cpack --config "$build/CPackConfig.cmake" -B "$out" > "$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; fail "cpack"; }
  rm -rf "$out/_CPack_Packages"
  local deb tools_deb
  deb=$(ls "$out"/sluice_*.deb) || fail "no sluice_*.deb"
  tools_deb=$(ls "$out"/sluice-tools_*.deb) || fail "no sluice-tools_*.deb"
  echo "built: $(cd "$out" && ls ./*.deb | xargs)"

  dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||; /\/$/d' | LC_ALL=C sort > "$work/deb.txt"
  cat > "$work/expected.txt" << 'EOF'
etc/sluice/sluice.yaml
lib/systemd/system/sluice.service
usr/bin/sluice
usr/share/doc/sluice/README.md.gz
usr/share/doc/sluice/changelog.Debian.gz
usr/share/doc/sluice/copyright
usr/share/lintian/overrides/sluice
usr/share/man/man1/sluice.1.gz
EOF
  diff -u "$work/expected.txt" "$work/deb.txt" || fail "dpkg-deb -c sluice: not the expected files"
  local tools_files
  tools_files=$(dpkg-deb -c "$tools_deb")  # whole, not piped into grep -q (tar would get SIGPIPE)
  for tool in sluice-backend sluice-loadgen; do
    grep -q "\./usr/bin/$tool\$" <<< "$tools_files" || fail "sluice-tools lacks usr/bin/$tool"
  done
  echo "dpkg-deb -c: the expected files"

  local field
  [ "$(dpkg-deb -f "$deb" Package)" = sluice ] || fail "Package is not sluice"
  [ "$(dpkg-deb -f "$tools_deb" Package)" = sluice-tools ] || fail "Package is not sluice-tools"
  field=$(dpkg-deb -f "$deb" Depends)
  echo "Depends: $field"
  for dependency in adduser procps libc6 libuv1 libyaml-cpp0.7 libc-ares2; do
    [[ ",$field" == *", $dependency"* || "$field" == "$dependency"* ]] || fail "Depends lacks $dependency"
  done
  [ "$(dpkg-deb -I "$deb" conffiles)" = /etc/sluice/sluice.yaml ] || fail "/etc/sluice/sluice.yaml is not a conffile"
  for script in postinst prerm postrm; do
    dpkg-deb -I "$deb" "$script" > /dev/null || fail "no $script in the package"
  done
  echo "dpkg-deb -f/-I: Package, Depends (from dpkg-shlibdeps), conffile, maintainer scripts"

  # systemd-analyze verify on the unit as shipped: the package's tree, with the host's systemd
  # units (sysinit.target and the rest that every service depends on) beside it, and MANPATH so
  # that the unit's Documentation=man:sluice(1) is checked too. Any output is a finding.
  dpkg-deb -x "$deb" "$work/root"
  cp -a /lib/systemd/system/. "$work/root/lib/systemd/system/"
  local verify
  verify=$(MANPATH="$work/root/usr/share/man" systemd-analyze verify --root="$work/root" \
           "$work/root/lib/systemd/system/sluice.service" 2>&1) || { echo "$verify"; fail "systemd-analyze verify"; }
  [ -z "$verify" ] || { echo "$verify"; fail "systemd-analyze verify printed findings"; }
  echo "systemd-analyze verify: clean"
}

check_lintian() {
  local out=$1
  command -v lintian > /dev/null || fail "lintian is missing: run scripts/install-deps.sh"
  # Every tag is shown (info included); errors and warnings fail.
  lintian --display-info --fail-on error,warning "$out"/*.deb || fail "lintian reports errors or warnings"
  echo "lintian: no error, no warning (overrides: packaging/lintian-overrides)"
}

check_chroot() {
  local out=$1
  [ "$(id -u)" -eq 0 ] || skip "debootstrap and chroot need root"
  command -v debootstrap > /dev/null || fail "debootstrap is missing: run scripts/install-deps.sh"
  local root=$work/bookworm deb
  deb=$(ls "$out"/sluice_*.deb)
  local started=$SECONDS
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  echo "debootstrap --variant=minbase bookworm: $((SECONDS - started)) s"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp "$deb" "$root/tmp/"
  in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
  in_root apt-get update -q > "$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get update in the root"; }
  in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" >> "$work/apt.log" 2>&1 ||
    { cat "$work/apt.log"; fail "apt install ./$(basename "$deb") in a fresh Debian 12 root"; }
  echo "apt install ./$(basename "$deb"): installed with its dependencies ($((SECONDS - started)) s so far)"

  in_root sluice --check --config /etc/sluice/sluice.yaml || fail "sluice --check on the shipped config in the root"
  in_root getent passwd sluice || fail "no user sluice"
  in_root getent group sluice > /dev/null || fail "no group sluice"
  [ -L "$root/etc/systemd/system/multi-user.target.wants/sluice.service" ] || fail "the unit is not enabled (no symlink)"
  echo "in the root: --check passes, user and group sluice exist, the unit is enabled"

  # The config is a conffile: an edit survives a reinstall (dpkg keeps the administrator's version).
  echo "# edited by the administrator" >> "$root/etc/sluice/sluice.yaml"
  in_root dpkg -i "/tmp/$(basename "$deb")" < /dev/null > "$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "reinstall"; }
  grep -q "edited by the administrator" "$root/etc/sluice/sluice.yaml" || fail "the edited config was replaced on reinstall"
  echo "reinstall: the edited config is kept"

  in_root apt-get purge -y -q sluice > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "apt-get purge sluice"; }
  ! in_root getent passwd sluice > /dev/null || fail "user sluice left after purge"
  [ ! -e "$root/etc/systemd/system/multi-user.target.wants/sluice.service" ] || fail "unit symlink left after purge"
  [ ! -e "$root/etc/sluice" ] || fail "/etc/sluice left after purge"
  echo "purge: user, unit symlink and /etc/sluice gone ($((SECONDS - started)) s in all)"
}

case "${1:-}" in
  stage) check_stage "$2" ;;
  timeout) check_timeout "$2" ;;
  deb) check_deb "$2" "$3" ;;
  lintian) check_lintian "$2" ;;
  chroot) check_chroot "$2" ;;
  *) echo "usage: package_test.sh stage|timeout|deb|lintian|chroot ARGS (see the top of this file)" >&2; exit 2 ;;
esac
