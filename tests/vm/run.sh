#!/bin/bash
# tests/vm/run.sh -- the daemon and its package on a real Debian kernel
# (host side; `make vm-check`).  Needs root the first time (the image build)
# and ../shared/testbed (or $JKB_SHARED/testbed).
#
#   tests/vm/run.sh [can] [deb] [ble]   (default: all three)
#
# 1. `make all deb` on the host (the guest is bookworm too, same glibc).
# 2. The test image (/tmp/testbed/image, or $TESTBED_IMAGE), built with
#    build-image.sh when it is missing or lacks a package the .deb depends on.
# 3. In throw-away VMs (run-in-vm.sh), the repository and the vectors shared
#    read-only: tests/vm/can.sh (--init minimal: vcan, frames, link down/up,
#    missing interface) and tests/vm/deb.sh (--init systemd: apt install, the
#    service, journal, reload, remove/purge) and tests/vm/ble.sh (--init
#    systemd: btvirt's two controllers and the real bluetoothd; `jkbms sim
#    --peripheral hci1` as the BMS, the daemon's central on hci0).
# Logs: build/vm/<suite>.log, and console/journal in build/vm/<suite>/.
# Ends with "N passed, N failed"; the exit status is 1 when anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
SHARED=${JKB_SHARED:-$ROOT/../shared}
TESTBED=$SHARED/testbed
VECTORS=${JKB_VECTORS:-$SHARED/vectors}
IMAGE=${TESTBED_IMAGE:-/tmp/testbed/image}
OUT=$ROOT/build/vm
GUEST_VECTORS=/srv/jkb-vectors
SUITES=${*:-can deb ble}

die() { echo "vm: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

T0=$(now)
[ -x "$TESTBED/run-in-vm.sh" ] || die "no $TESTBED/run-in-vm.sh (set JKB_SHARED to the shared/ folder)"
VECTORS=$(cd "$ROOT" && cd "$VECTORS" 2>/dev/null && pwd) || die "no vectors folder (set JKB_VECTORS)"
mkdir -p "$OUT"

# ---- 1. build ---------------------------------------------------------------
echo "== make all deb"
make -C "$ROOT" -s -j"$(nproc)" all > "$OUT/build.log" 2>&1 &&
	make -C "$ROOT" -s deb >> "$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; die "build failed"; }
cat "$OUT/build.log"
VERSION=$(sed -n 's/^VERSION ?= *//p' "$ROOT/Makefile")
DEB=build/jkbridged_${VERSION}_$(dpkg --print-architecture).deb
[ -r "$ROOT/$DEB" ] || die "no $DEB after make deb"
echo "   build: $(since "$T0") s"

# ---- 2. image -----------------------------------------------------------------
# Every package the .deb depends on must be in the image: the guest has no
# network, and apt installs the .deb offline.
deps=$(dpkg-deb -f "$ROOT/$DEB" Depends | tr ',|' '\n\n' | sed 's/(.*//; s/:any//; s/ //g' | grep . | sort -u)
missing() {
	[ -r "$IMAGE/rootfs.ext4" ] && [ -r "$IMAGE/initrd.img" ] && [ -r "$IMAGE/packages.txt" ] ||
		{ echo "(no image)"; return; }
	for p in $deps; do
		awk -v p="$p" '$1 == p || $1 ~ "^" p ":" { f = 1 } END { exit !f }' "$IMAGE/packages.txt" ||
			echo "$p"
	done
}
need=$(missing | tr '\n' ' ')
if [ -n "$need" ]; then
	echo "== test image $IMAGE: building (missing: $need)"
	[ "$(id -u)" = 0 ] || die "building the image needs root (sudo $0)"
	T1=$(now)
	"$TESTBED/build-image.sh" --out "$IMAGE" --extra "$(echo $deps | tr ' ' ,)" > "$OUT/image.log" 2>&1 ||
		{ tail -n 40 "$OUT/image.log" >&2; die "build-image.sh failed (log: $OUT/image.log)"; }
	echo "   image: $(since "$T1") s"
	need=$(missing | tr '\n' ' ')
	[ -z "$need" ] || die "the image still lacks: $need"
else
	echo "== test image $IMAGE: present"
fi

# ---- 3. the suites --------------------------------------------------------------
PASSED=0
FAILED=0
run_suite() {  # NAME INIT TIMEOUT
	local name=$1 init=$2 timeout=$3 t rc line p f
	echo
	echo "== $name (VM, --init $init)"
	t=$(now)
	"$TESTBED/run-in-vm.sh" --image "$IMAGE" --init "$init" --timeout "$timeout" \
		--share "$ROOT" --ro \
		--qemu-arg -virtfs \
		--qemu-arg "local,path=${VECTORS//,/,,},mount_tag=jkb_vectors,security_model=none,readonly=on" \
		-e JKB_VECTORS="$GUEST_VECTORS" -e JKB_VECTORS_TAG=jkb_vectors -e JKB_DEB="$DEB" \
		--keep "$OUT/$name" "$HERE/$name.sh" 2>&1 | tee "$OUT/$name.log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$OUT/$name.log" | tail -n 1)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*, }
		f=${f%% failed}
	else
		p=0
		f=0
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: the VM run ended with status $rc (see $OUT/$name/)"
		f=1
	fi
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	echo "   $name: $p passed, $f failed, $(since "$t") s"
}

for s in $SUITES; do
	case "$s" in
	can) run_suite can minimal 300 ;;
	deb) run_suite deb systemd 480 ;;
	ble) run_suite ble systemd 480 ;;
	*) echo "vm: unknown suite $s (can, deb, ble)"; FAILED=$((FAILED + 1)) ;;
	esac
done

echo
echo "vm: total $(since "$T0") s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
