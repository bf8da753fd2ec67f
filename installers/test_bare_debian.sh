#!/usr/bin/env bash
# Try the .deb as a person would, on a bare Debian 12: a minimal root (debootstrap) with only what
# a desktop has (X and Wayland client libraries, fonts), where apt installs the package and what
# it depends on; then `assistant --self-test` on the desktop's display, and the window itself on
# an X server (Xvfb), photographed.
#
#   sudo installers/test_bare_debian.sh dist/assistant_0.1.0_amd64.deb
#
# Prints what apt had to bring in for the package, and ends with "N passed, N failed". Needs root,
# Debian's package mirror, debootstrap, Xvfb, xdotool and ImageMagick (`import`). The root is
# kept in $ROOT (build/bare-debian) for the next run; each run installs the package afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "$1")
root=$(realpath -m "${ROOT:-build/bare-debian}")
out=$(realpath -m "${OUT:-build/bare-debian-results}")
display=:${DISPLAY_NUMBER:-93}
mkdir -p "$out"
passed=0 failed=0
check() {  # check NAME COMMAND...: run it, count it, say it
  if "${@:2}"; then passed=$((passed + 1)); echo "PASS $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

if [ ! -x "$root/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
mounted=()
cleanup() {
  [ -n "${app:-}" ] && kill "$app" 2>/dev/null || true
  [ -n "${xvfb:-}" ] && kill "$xvfb" 2>/dev/null || true
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc dev tmp/.X11-unix; do
  mkdir -p "$root/$m" "/$m"
  case $m in proc) mount -t proc proc "$root/proc" ;; *) mount --bind "/$m" "$root/$m" ;; esac
  mounted+=("$root/$m")
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# What a desktop has: X and Wayland client libraries, fonts; nothing of Qt's own needs.
in_root apt-get update -qq
in_root apt-get purge -y -qq assistant >/dev/null 2>&1 || true
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  libx11-6 libxcb1 libwayland-client0 fonts-dejavu-core >/dev/null
in_root apt-get autoremove -y -qq >/dev/null
in_root dpkg-query -W -f '${Package}\n' | sort > "$out/before.txt"

cp "$deb" "$root/tmp/assistant.deb"
check "the .deb installs with apt" \
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/assistant.deb
in_root dpkg-query -W -f '${Package}\n' | sort > "$out/after.txt"
comm -13 "$out/before.txt" "$out/after.txt" > "$out/needed.txt"
echo "What the package needed from Debian ($(($(wc -l < "$out/needed.txt") - 1)) packages besides itself):"
grep -v '^assistant$' "$out/needed.txt" | paste -sd' ' | fold -s -w 100
check "a desktop entry and an icon" test -f "$root/usr/share/applications/assistant.desktop" \
  -a -f "$root/usr/share/icons/hicolor/scalable/apps/assistant.svg"

Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
sleep 1
home=/tmp/assistant-home
in_root rm -rf "$home"
check "assistant --self-test, on the X display, with the bundled starter" \
  in_root env DISPLAY="$display" ASSISTANT_HOME="$home" assistant --self-test

in_root env DISPLAY="$display" ASSISTANT_HOME="$home" assistant > "$out/app.log" 2>&1 &
app=$!
if DISPLAY=$display timeout 90 xdotool search --sync --onlyvisible --name '^Assistant$' >/dev/null; then
  sleep 5  # the starter model loads
  DISPLAY=$display import -window root "$out/window.png"
  check "the window opens on the X server (screenshot: $out/window.png)" true
else
  check "the window opens on the X server" false
  cat "$out/app.log"
fi
kill "$app" 2>/dev/null || true
wait "$app" 2>/dev/null || true
app=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
