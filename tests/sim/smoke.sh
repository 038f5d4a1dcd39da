#!/bin/bash
# Smoke test of `jkbms sim`: a private D-Bus bus, the simulator on it as
# org.bluez (through DBUS_SYSTEM_BUS_ADDRESS, as the daemon will find it),
# and checks of what a BlueZ client sees: objects, properties, errors, fault
# injection on stdin.  When `jkbms scan` / `jkbms dump` (the BlueZ client)
# are built, they are run against it too.
#
#	tests/sim/smoke.sh            (from the repository root, after make)
#
# Needs dbus-daemon and busctl.  Prints "ok - ..." / "FAIL - ..." and exits
# 1 when anything failed.
set -u
cd "$(dirname "$0")/../.."
JKBMS=${JKBMS:-build/jkbms}
CONF=tests/sim/packs.conf
OLD=C8:47:8C:00:00:01 NEW=20:21:11:00:12:34 JK04=C8:47:80:0F:D5:C5
OLD_PATH=/org/bluez/hci0/dev_C8_47_8C_00_00_01
NEW_PATH=/org/bluez/hci1/dev_20_21_11_00_12_34
failed=0
dir=$(mktemp -d)
bus_pid= sim_pid=

cleanup() {
	exec 4>&- 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	[ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; failed=1; }
check() {	# check DESCRIPTION COMMAND...: the command must succeed
	local what=$1; shift
	if "$@" >"$dir/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' "$dir/out"; fi
}
expect() {	# expect DESCRIPTION TEXT COMMAND...: the output must contain TEXT
	local what=$1 text=$2; shift 2
	"$@" >"$dir/out" 2>&1
	if grep -qF -- "$text" "$dir/out"; then ok "$what"; else fail "$what (no '$text')"; sed 's/^/    /' "$dir/out"; fi
}
bz() { busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" "$@"; }
prop() { bz get-property org.bluez "$@"; }
sim_cmd() { echo "$*" >&4; sleep 0.3; }
wait_for() {	# wait_for TEXT COMMAND...: poll up to 5 s
	local text=$1; shift
	for _ in $(seq 50); do "$@" 2>/dev/null | grep -qF -- "$text" && return 0; sleep 0.1; done
	return 1
}

[ -x "$JKBMS" ] || { echo "build $JKBMS first (make)"; exit 1; }
command -v dbus-daemon >/dev/null && command -v busctl >/dev/null || { echo "needs dbus-daemon and busctl"; exit 1; }

# --- configuration
check "the example configuration is valid" "$JKBMS" sim -c "$CONF" --check
printf 'sim_packs = ( { address = "C8:47:8C:00:01"; cells = 40; colour = "red"; } );\n' >"$dir/bad.conf"
"$JKBMS" sim -c "$dir/bad.conf" --check >"$dir/out" 2>&1 && fail "a bad configuration is refused" ||
	{ grep -q "bad.conf:1: unknown key 'colour'" "$dir/out" && grep -q "cells = 40 is out of range" "$dir/out" &&
	  ok "a bad configuration is refused, every problem with file:line" ||
	  { fail "bad configuration messages"; cat "$dir/out"; }; }

# --- a private bus and the simulator on it
dbus-daemon --session --nofork --print-address=3 3>"$dir/addr" 2>/dev/null &
bus_pid=$!
for _ in $(seq 50); do [ -s "$dir/addr" ] && break; sleep 0.1; done
export DBUS_SYSTEM_BUS_ADDRESS=$(head -1 "$dir/addr")
mkfifo "$dir/ctl"
exec 4<>"$dir/ctl"
"$JKBMS" sim -c "$CONF" <"$dir/ctl" 2>"$dir/sim.log" &
sim_pid=$!
wait_for "/org/bluez/hci1" bz tree org.bluez && ok "org.bluez is owned; hci0 and hci1 exported" ||
	{ fail "simulator did not come up"; cat "$dir/sim.log"; exit 1; }

# --- adapters, before discovery
expect "Adapter1.Powered is true" "b true" prop /org/bluez/hci0 org.bluez.Adapter1 Powered
expect "Adapter1.Discovering is false" "b false" prop /org/bluez/hci0 org.bluez.Adapter1 Discovering
bz tree org.bluez | grep -q dev_ && fail "no device object before discovery" || ok "no device object before discovery"
expect "StopDiscovery without a session fails" "No discovery started" \
	bz call org.bluez /org/bluez/hci0 org.bluez.Adapter1 StopDiscovery
expect "SetDiscoveryFilter refuses an unknown Transport" "Invalid arguments" \
	bz call org.bluez /org/bluez/hci0 org.bluez.Adapter1 SetDiscoveryFilter 'a{sv}' 1 Transport s usb
check "SetDiscoveryFilter takes Transport le and UUIDs" \
	bz call org.bluez /org/bluez/hci0 org.bluez.Adapter1 SetDiscoveryFilter 'a{sv}' 2 Transport s le \
	UUIDs as 1 0000ffe0-0000-1000-8000-00805f9b34fb
expect "RemoveDevice of an unknown path: DoesNotExist" "Does Not Exist" \
	bz call org.bluez /org/bluez/hci0 org.bluez.Adapter1 RemoveDevice o /org/bluez/hci0/dev_00_00_00_00_00_00

# --- the BlueZ client, if built
if "$JKBMS" scan --help >/dev/null 2>&1; then
	timeout 20 "$JKBMS" scan --timeout 2 >"$dir/scan" 2>&1
	grep -q "$OLD" "$dir/scan" && grep -q "$NEW" "$dir/scan" && grep -q "$JK04" "$dir/scan" &&
		ok "jkbms scan finds the three packs on two adapters" || { fail "jkbms scan"; cat "$dir/scan"; }
	for a in "$OLD" "$NEW" "$JK04"; do
		timeout 30 "$JKBMS" dump "$a" --count 3 --timeout 20 >"$dir/dump" 2>&1
		grep -q '"type":"device_info"' "$dir/dump" && grep -q '"type":"settings"' "$dir/dump" &&
			grep -q '"type":"cell_info"' "$dir/dump" &&
			ok "jkbms dump $a: device info, settings, cell info" || { fail "jkbms dump $a"; cat "$dir/dump"; }
	done
else
	echo "skip - jkbms scan/dump not built: the client checks"
	# Discovery by hand: a session lives as long as its client is on the bus.
	(busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.bluez /org/bluez/hci0 org.bluez.Adapter1 StartDiscovery &&
		sleep 2) &
	(busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.bluez /org/bluez/hci1 org.bluez.Adapter1 StartDiscovery &&
		sleep 2) &
	wait_for "dev_20_21_11_00_12_34" bz tree org.bluez
fi

# --- devices and GATT objects: Connect replies once services are resolved
check "Connect the old-module pack" bz call org.bluez $OLD_PATH org.bluez.Device1 Connect
check "Connect the new-module pack" bz call org.bluez $NEW_PATH org.bluez.Device1 Connect
expect "Device1.ManufacturerData is 0x0B65: 88 A0 + MAC" "a{qv} 1 2917 ay 8 136 160 200 71 140 0 0 1" \
	prop $OLD_PATH org.bluez.Device1 ManufacturerData
expect "Device1.UUIDs lists FFE0" "0000ffe0-0000-1000-8000-00805f9b34fb" prop $OLD_PATH org.bluez.Device1 UUIDs
expect "Device1.Connected is true" "b true" prop $OLD_PATH org.bluez.Device1 Connected
expect "Device1.ServicesResolved is true" "b true" prop $OLD_PATH org.bluez.Device1 ServicesResolved
expect "old module: one FFE1, write-without-response + write + notify" \
	'as 3 "write-without-response" "write" "notify"' \
	prop $OLD_PATH/service000e/char000f org.bluez.GattCharacteristic1 Flags
expect "new module: FFE1 to write" 'as 2 "write-without-response" "write"' \
	prop $NEW_PATH/service0001/char0002 org.bluez.GattCharacteristic1 Flags
expect "new module: FFE1 to read and notify" 'as 2 "read" "notify"' \
	prop $NEW_PATH/service0001/char0004 org.bluez.GattCharacteristic1 Flags
expect "GattService1.UUID is FFE0" "0000ffe0" prop $NEW_PATH/service0001 org.bluez.GattService1 UUID
expect "AcquireNotify on the write-only FFE1: NotSupported" "Operation is not supported" \
	bz call org.bluez $NEW_PATH/service0001/char0002 org.bluez.GattCharacteristic1 AcquireNotify 'a{sv}' 0
expect "AcquireNotify hands out an fd and the MTU" "hq " \
	bz call org.bluez $OLD_PATH/service000e/char000f org.bluez.GattCharacteristic1 AcquireNotify 'a{sv}' 0
check "Connect on a connected LE device succeeds at once" \
	bz call org.bluez $OLD_PATH org.bluez.Device1 Connect

# --- fault injection
sim_cmd drop $OLD
expect "drop: Connected becomes false" "b false" prop $OLD_PATH org.bluez.Device1 Connected
expect "GATT objects stay cached after a disconnect" "0000ffe1" \
	prop $OLD_PATH/service000e/char000f org.bluez.GattCharacteristic1 UUID
expect "AcquireNotify when disconnected: Not connected" "Not connected" \
	bz call org.bluez $OLD_PATH/service000e/char000f org.bluez.GattCharacteristic1 AcquireNotify 'a{sv}' 0
sim_cmd refuse $OLD on
expect "refuse: Connect fails with le-connection-abort-by-local" "le-connection-abort-by-local" \
	bz call org.bluez $OLD_PATH org.bluez.Device1 Connect
sim_cmd refuse $OLD off
sim_cmd stale $OLD on
expect "stale: the device shows Connected" "b true" prop $OLD_PATH org.bluez.Device1 Connected
if "$JKBMS" dump --help >/dev/null 2>&1; then
	timeout 30 "$JKBMS" dump "$OLD" --count 3 --timeout 20 >"$dir/dump" 2>&1
	grep -q '"type":"cell_info"' "$dir/dump" && ok "jkbms dump recovers a stale link" ||
		{ fail "jkbms dump on a stale link"; cat "$dir/dump"; }
fi
check "Disconnect on a disconnected device succeeds (as bluetoothd)" \
	sh -c "busctl --address='$DBUS_SYSTEM_BUS_ADDRESS' call org.bluez $OLD_PATH org.bluez.Device1 Disconnect &&
	       busctl --address='$DBUS_SYSTEM_BUS_ADDRESS' call org.bluez $OLD_PATH org.bluez.Device1 Disconnect"
sim_cmd frobnicate $OLD
grep -q "unknown command 'frobnicate'" "$dir/sim.log" && ok "an unknown command is reported and ignored" ||
	fail "unknown command message"
sim_cmd set $OLD soc=20 current=-3
grep -q "set: SOC 20.0 %, load -3.000 A" "$dir/sim.log" && ok "set changes SOC and current" || fail "set"

# --- adapter power and RemoveDevice
bz set-property org.bluez /org/bluez/hci1 org.bluez.Adapter1 Powered b false
expect "Powered off: the adapter's devices are disconnected" "b false" prop $NEW_PATH org.bluez.Device1 Connected
expect "Powered off: Connect fails NotReady" "Resource Not Ready" bz call org.bluez $NEW_PATH org.bluez.Device1 Connect
bz set-property org.bluez /org/bluez/hci1 org.bluez.Adapter1 Powered b true
check "RemoveDevice removes a known device" \
	bz call org.bluez /org/bluez/hci1 org.bluez.Adapter1 RemoveDevice o $NEW_PATH
bz tree org.bluez | grep -q dev_20_21 && fail "the device object is gone" || ok "the device object is gone"

echo "--- simulator log"
sed 's/^/    /' "$dir/sim.log"
[ "$failed" = 0 ] && echo "all passed" || echo "some checks FAILED"
exit "$failed"
