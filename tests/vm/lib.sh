# tests/vm/lib.sh -- shared by the guest scripts (can.sh, deb.sh), sourced
# from the repository share (the job's cwd).  Bash.

PASS=0
FAIL=0
T0_MS=$(($(date +%s%N) / 1000000))

ok()   { PASS=$((PASS + 1)); echo "ok   $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
# check NAME CMD...: ok when CMD succeeds.
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
section() { echo; echo "== $* (t=$(( ($(now_ms) - T0_MS) / 1000 )) s)"; }
summary() { echo; echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; }

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_until() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# count PATTERN FILE: lines of FILE matching PATTERN (fixed string).
count() { grep -c -F -- "$1" "$2" 2>/dev/null || true; }
has() { grep -q -F -- "$1" "$2" 2>/dev/null; }

# The test vectors: run.sh shares them read-only as the 9p tag
# $JKB_VECTORS_TAG, to be mounted at $JKB_VECTORS.
mount_vectors() {
	: "${JKB_VECTORS:=/srv/jkb-vectors}"
	if [ -n "${JKB_VECTORS_TAG:-}" ] && ! mountpoint -q "$JKB_VECTORS"; then
		mkdir -p "$JKB_VECTORS"
		mount -t 9p -o trans=virtio,version=9p2000.L,ro "$JKB_VECTORS_TAG" "$JKB_VECTORS" || return 1
	fi
	[ -r "$JKB_VECTORS/jk02_32s_session_frag_esphome_1.txt" ] &&
		[ -r "$JKB_VECTORS/jk02_32s_session_frag_esphome_2.txt" ]
}

# write_conf FILE INTERFACE STATE_DIR: two looped replay packs, pylon profile.
write_conf() {
	cat > "$1" <<CONF
state_dir = "$3";
packs = (
  { name = "rack-top";    replay = "$JKB_VECTORS/jk02_32s_session_frag_esphome_1.txt"; loop = true; },
  { name = "rack-bottom"; replay = "$JKB_VECTORS/jk02_32s_session_frag_esphome_2.txt"; loop = true; }
);
battery = { chemistry = "lfp"; cells = 16; max_charge_current = 100.0; max_discharge_current = 150.0; };
can = { interface = "$2"; profile = "pylon"; };
CONF
}

# vcan_add NAME: a vcan interface, up.
vcan_add() {
	[ -d /sys/module/vcan ] || modprobe vcan || return 1
	ip link add dev "$1" type vcan && ip link set "$1" up
}

# capture IFACE SECONDS FILE: candump -L (log format, kernel timestamps).
capture() {
	timeout -s INT "$2" candump -L "$1" > "$3" 2>&1
	local rc=$?
	[ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]
}

# ids FILE: the distinct CAN IDs in a candump -L file, sorted, on one line.
ids() { awk '{ split($3, a, "#"); print a[1] }' "$1" | sort -u | tr '\n' ' ' | sed 's/ $//'; }
