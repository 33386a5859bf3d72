#!/bin/sh
# ctest `package.deb` (issue 13): builds the Debian package from the built tree with CPack
# (as `make deb` does, into a temporary directory), checks its contents and control fields
# with dpkg-deb, runs the packaged vartalapctl on the packaged topology, and runs lintian,
# which must report no error (warnings are allowed; packaging/lintian-overrides lists the
# tags overridden and why).
#
#   check_deb.sh BUILD_DIR VERSION
set -eu

build=$1
version=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack"; }
deb="$work/out/vartalap_${version}_amd64.deb"
[ -f "$deb" ] || { ls -l "$work/out"; fail "no $deb"; }
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# Contents: the binaries, every kind's template unit and the target, sysusers.d, tmpfiles.d,
# the default topology and its instances' env files; nothing of the tests.
dpkg-deb -c "$deb" >"$work/contents"
expect_file() {
    grep -Eq "^-[rwx-]{9} root/root +[0-9]+ [0-9-]+ [0-9:]+ \.$1\$" "$work/contents" ||
        { cat "$work/contents"; fail "the package has no $1 (root-owned file)"; }
}
expect_file /usr/bin/vartalapd
expect_file /usr/bin/vartalapctl
for kind in ws-gateway rest-gateway message-router session persistence profile push group group-router; do
    expect_file "/lib/systemd/system/vartalap-$kind@.service"
done
expect_file /lib/systemd/system/vartalap.target
expect_file /usr/lib/sysusers.d/vartalap.conf
expect_file /usr/lib/tmpfiles.d/vartalap.conf
expect_file /etc/vartalap/topology.toml
for instance in ws-1 rest-1 router-1 session-1 persistence-1 profile-1 group-1 group-router-1; do
    expect_file "/etc/vartalap/$instance.env"
done
expect_file /usr/share/doc/vartalap/copyright
expect_file /usr/share/vartalap/web/index.html
expect_file /usr/share/vartalap/web/app.js
if grep -Eq 'test|bench|chaos|loadgen' "$work/contents"; then
    cat "$work/contents"; fail "the package holds test or benchmark files"
fi

# Control: name, version, architecture; Depends from the binaries' shared libraries
# (dpkg-shlibdeps) and systemd; every /etc file a conffile.
dpkg-deb -I "$deb" >"$work/info"
field() { sed -n "s/^ $1: //p" "$work/info"; }
[ "$(field Package)" = vartalap ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version)"
[ "$(field Architecture)" = amd64 ] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
for library in 'libzmq5' 'liblmdb0' 'libssl3' 'libspdlog1[.0-9a-z-]*' 'libsystemd0' 'libc6' \
               'libstdc\+\+6' 'systemd'; do
    echo "$depends" | grep -Eq "(^|, )$library( |,|$)" || fail "Depends lacks $library: $depends"
done
dpkg-deb -e "$deb" "$work/control"
[ "$(grep -c '^/etc/' "$work/control/conffiles")" = "$(grep -c ' \./etc/vartalap/.' "$work/contents")" ] ||
    fail "not every /etc file is a conffile: $(cat "$work/control/conffiles")"

# The packaged files work together: units run /usr/bin/vartalapd, the target wants every
# instance of the default topology, and the packaged vartalapctl accepts that topology.
dpkg-deb -x "$deb" "$work/root"
grep -q '^ExecStart=/usr/bin/vartalapd session ' "$work/root/lib/systemd/system/vartalap-session@.service" ||
    fail "the session unit does not run /usr/bin/vartalapd"
for instance in ws-1 rest-1 router-1 session-1 persistence-1 profile-1 group-1 group-router-1; do
    grep -q "^Wants=vartalap-[a-z-]*@$instance.service\$" "$work/root/lib/systemd/system/vartalap.target" ||
        fail "vartalap.target does not want $instance"
done
grep -qx 'VARTALAP_TOPOLOGY=/etc/vartalap/topology.toml' "$work/root/etc/vartalap/session-1.env" ||
    fail "session-1.env does not name /etc/vartalap/topology.toml"
"$work/root/usr/bin/vartalapctl" validate "$work/root/etc/vartalap/topology.toml" >"$work/validate" 2>&1 ||
    { cat "$work/validate"; fail "vartalapctl validate refuses the packaged topology"; }

# lintian: no error. Its tags are printed, warnings included.
command -v lintian >/dev/null || fail "lintian is not installed (make test installs it)"
status=0
lintian --fail-on error --info "$deb" >"$work/lintian" 2>&1 || status=$?
cat "$work/lintian"
[ "$status" = 0 ] || fail "lintian reported errors (exit $status)"
echo "package.deb: ok"
