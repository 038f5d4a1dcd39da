#!/bin/bash
# tests/vm/ble.sh -- runs INSIDE the test VM (run-in-vm.sh --init systemd),
# cwd = the repository (read-only share), build/ built on the host.
# The daemon against the REAL bluetoothd: btvirt makes two virtual
# controllers on one emulated air; `jkbms sim --peripheral hci1` serves a
# JK-BMS (GATT FFE0/FFE1 + advertisement) through bluetoothd on hci1, and
# build/jkbridged connects to it from hci0 as a central.  Checks: the
# peripheral registers, `jkbms scan --adapter hci0` lists it with why,
# the daemon reaches "streaming", the CAN log (log:FILE) carries 0x359 with
# module count 1 and 0x355 with the pack's SOC, and the daemon reconnects
# after the peripheral is killed and restarted.  Prints "ok"/"FAIL" lines
# and ends with "N passed, N failed".
set -u
. tests/vm/lib.sh

BIN=${JKBRIDGED:-$PWD/build/jkbridged}
TOOL=${JKBMS:-$PWD/build/jkbms}
W=/tmp/jkb
SOC=60
mkdir -p "$W"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

show_log() { echo "   --- $1"; sed 's/^/   | /' "$1" | tail -n "${2:-60}"; }
adapter_prop() { busctl --system get-property org.bluez "/org/bluez/$1" org.bluez.Adapter1 "$2" 2>/dev/null; }
powered() { [ "$(adapter_prop "$1" Powered)" = "b true" ]; }
power_on() { busctl --system set-property org.bluez "/org/bluez/$1" org.bluez.Adapter1 Powered b true; }
bluez_up() { busctl --system status org.bluez > /dev/null 2>&1; }
adapters_on_bus() { adapter_prop hci0 Address > /dev/null && adapter_prop hci1 Address > /dev/null; }

# The CAN log lines "(ts) log 359#DATA": DATA of the last frame with ID.
last_data() { awk -v id="$1" '{ split($3, a, "#"); if (a[1] == id) d = a[2] } END { print d }' "$2"; }
has_id() { [ -n "$(last_data "$1" "$2")" ]; }

start_peripheral() {  # LOG
	"$TOOL" sim -c "$W/sim.conf" --peripheral hci1 2> "$1" &
	SIM=$!
	PIDS="$PIDS $SIM"
}

section setup
uname -r
check "build/jkbridged and build/jkbms present" [ -x "$BIN" -a -x "$TOOL" ]
check "systemd running" [ -d /run/systemd/system ]
check "modprobe hci_vhci" modprobe hci_vhci
btvirt -l2 > "$W/btvirt.log" 2>&1 &
PIDS="$PIDS $!"
check "btvirt: hci0 and hci1" wait_until 10 [ -e /sys/class/bluetooth/hci1 -a -e /sys/class/bluetooth/hci0 ]
wait_until 10 systemctl -q is-active bluetooth || systemctl start bluetooth
check "bluetoothd active" systemctl -q is-active bluetooth
check "org.bluez on the system bus" wait_until 10 bluez_up
check "both adapters on D-Bus" wait_until 10 adapters_on_bus
power_on hci0
power_on hci1
check "hci0 powered" wait_until 10 powered hci0
check "hci1 powered" wait_until 10 powered hci1
ADDR0=$(adapter_prop hci0 Address | tr -d '"' | awk '{ print $2 }')
ADDR1=$(adapter_prop hci1 Address | tr -d '"' | awk '{ print $2 }')
echo "   hci0 $ADDR0 (central), hci1 $ADDR1 (peripheral)"
bluetoothctl --version
check "two different addresses" [ -n "$ADDR0" -a -n "$ADDR1" -a "$ADDR0" != "$ADDR1" ]

# ------------------------------------------------------------ peripheral --
section "peripheral on hci1 (jkbms sim --peripheral)"
cat > "$W/sim.conf" <<CONF
sim_packs = (
  { address = "$ADDR1"; name = "JK_PB2A16S20P"; protocol = "jk02_32s";
    cells = 16; capacity_ah = 280.0; soc = $SOC.0; current = -10.5; temperature = 25.0; }
);
CONF
t=$(now_ms)
start_peripheral "$W/sim1.log"
if check "GATT application and advertisement registered" \
	wait_until 15 has "registered: advertising on hci1" "$W/sim1.log"; then
	echo "   registered after $(( $(now_ms) - t )) ms"
fi
show_log "$W/sim1.log"

# ------------------------------------------------------------------ scan --
section "jkbms scan --adapter hci0"
# Under software emulation the first advertisements can take a while to
# reach the other controller: up to three scans of 8 s, until it is seen.
t=$(now_ms)
for attempt in 1 2 3; do
	timeout 30 "$TOOL" scan --adapter hci0 --timeout 8 > "$W/scan.out" 2> "$W/scan.err"
	rc=$?
	grep -qi -- "$ADDR1" "$W/scan.out" && break
done
echo "   scan took $(( $(now_ms) - t )) ms ($attempt scan(s)), exit $rc"
sed 's/^/   | /' "$W/scan.out"
tail -n 5 "$W/scan.err" | sed 's/^/   ! /'
check "scan lists $ADDR1" grep -qi -- "$ADDR1" "$W/scan.out"
line=$(grep -i -- "$ADDR1" "$W/scan.out" | head -n 1)
check "scan says why it matched (FFE0 / 0x0B65 / name)" \
	bash -c "grep -i -- '$ADDR1' '$W/scan.out' | grep -qiE 'ffe0|0x0b65|JK_'"
check "scan shows the name" bash -c "grep -i -- '$ADDR1' '$W/scan.out' | grep -q 'JK_PB2A16S20P'"

# ---------------------------------------------------------------- daemon --
section "jkbridged on hci0 -> the peripheral on hci1"
cat > "$W/jkbridged.conf" <<CONF
state_dir = "$W/state";
packs = (
  { name = "real-bluez"; address = "$ADDR1"; adapter = "hci0"; }
);
battery = { chemistry = "lfp"; cells = 16; max_charge_current = 100.0; max_discharge_current = 150.0; };
can = { interface = "log:$W/can.log"; profile = "pylon"; };
CONF
check "config accepted by jkbridged -n" "$BIN" -n -c "$W/jkbridged.conf"
t=$(now_ms)
"$BIN" -c "$W/jkbridged.conf" 2> "$W/daemon.log" &
PID=$!
PIDS="$PIDS $PID"
if check "daemon reaches 'streaming'" wait_until 90 has "streaming" "$W/daemon.log"; then
	echo "   streaming after $(( $(now_ms) - t )) ms"
fi
check "0x359 and 0x355 in the CAN log" wait_until 20 bash -c \
	"[ -n \"\$(awk '{ split(\$3, a, \"#\"); if (a[1] == \"359\") print }' '$W/can.log')\" ] &&
	 [ -n \"\$(awk '{ split(\$3, a, \"#\"); if (a[1] == \"355\") print }' '$W/can.log')\" ]"
d359=$(last_data 359 "$W/can.log")
d355=$(last_data 355 "$W/can.log")
echo "   last 359#$d359  355#$d355"
check "0x359 module count (byte 4) = 1" [ "${d359:8:2}" = "01" ]
check "0x355 SOC = $SOC % (got 0x${d355:2:2}${d355:0:2})" [ "$((16#${d355:2:2}${d355:0:2}))" -eq "$SOC" ]
check "daemon still running" kill -0 "$PID"

# ------------------------------------------------------- restart the BMS --
section "peripheral killed and restarted"
n_stream=$(count "streaming" "$W/daemon.log")
kill -TERM "$SIM"
wait "$SIM"
echo "   peripheral exit status $?"
show_log "$W/sim1.log" 12
# A BMS that reboots drops the link; the app leaving the bus alone does not.
busctl --system call org.bluez "/org/bluez/hci1/dev_${ADDR0//:/_}" org.bluez.Device1 Disconnect 2>&1 |
	sed 's/^/   disconnect from hci1: /'
sleep 3
t=$(now_ms)
start_peripheral "$W/sim2.log"
check "peripheral registered again" wait_until 15 has "registered: advertising on hci1" "$W/sim2.log"
more_streams() { [ "$(count "streaming" "$W/daemon.log")" -gt "$n_stream" ]; }
if check "daemon reconnects: 'streaming' again" wait_until 120 more_streams; then
	echo "   streaming again after $(( $(now_ms) - t )) ms from the restart"
fi
check "daemon still running" kill -0 "$PID"
kill -TERM "$PID"
wait "$PID"
rc=$?
check "SIGTERM -> exit status 0 (got $rc)" [ "$rc" -eq 0 ]
kill -TERM "$SIM" 2>/dev/null
wait "$SIM" 2>/dev/null
show_log "$W/sim2.log" 20
show_log "$W/daemon.log" 80
journalctl -u bluetooth --no-pager -o cat 2>/dev/null | tail -n 30 | sed 's/^/   bluetoothd| /'

summary
