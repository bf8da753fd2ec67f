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
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 PATH/TO/assistant_VERSION_ARCH.deb" >&2; exit 2; }
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
stop_app() {  # the app and its engine: the whole session setsid gave them
  [ -n "${app:-}" ] && { kill -TERM -- "-$app" 2>/dev/null || true; wait "$app" 2>/dev/null || true; }
  app=
}
cleanup() {
  stop_app
  [ -n "${xvfb:-}" ] && kill "$xvfb" 2>/dev/null || true
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    while mountpoint -q "${mounted[i]}"; do umount -l "${mounted[i]}" || break; done
  done
}
trap cleanup EXIT
for m in proc dev tmp/.X11-unix; do
  mkdir -p "$root/$m" "/$m"
  mounted+=("$root/$m")
  mountpoint -q "$root/$m" && continue  # left by an interrupted run
  case $m in proc) mount -t proc proc "$root/proc" ;; *) mount --bind "/$m" "$root/$m" ;; esac
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
# The app runs as a person would: an ordinary user, not root.
person=(chroot --userspec=1000:1000 "$root" env -i PATH=/usr/bin:/bin HOME=/home/person
  LANG=C.UTF-8 DISPLAY="$display")
as_person() { "${person[@]}" "$@"; }

# What a desktop has: X and Wayland client libraries, fonts; nothing of Qt's own needs.
in_root apt-get update -qq
in_root apt-get purge -y -qq assistant >/dev/null 2>&1 || true
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  libx11-6 libxcb1 libwayland-client0 fonts-dejavu-core >/dev/null
in_root apt-get autoremove -y -qq >/dev/null
in_root id person >/dev/null 2>&1 || in_root useradd -m -u 1000 -s /bin/sh person
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
in_root rm -rf /home/person/.local/share/Assistant /home/person/.cache/Assistant
check "assistant --self-test as an ordinary user (engine, bundled starter, database, Qt; the X11 plugin's libraries)" \
  as_person assistant --self-test

setsid "${person[@]}" assistant > "$out/app.log" 2>&1 &
app=$!
if DISPLAY=$display timeout 90 xdotool search --sync --onlyvisible --name '^Assistant$' >/dev/null; then
  sleep 5  # the starter model loads
  DISPLAY=$display import -window root "$out/window.png"
  check "the window opens on the X server (screenshot: $out/window.png)" true
else
  check "the window opens on the X server" false
  cat "$out/app.log"
fi
stop_app

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
