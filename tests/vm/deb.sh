#!/bin/bash
# tests/vm/deb.sh -- runs INSIDE the test VM (run-in-vm.sh --init systemd),
# cwd = the repository (read-only share), $JKB_DEB = the .deb built on the
# host (path relative to the repository).  The package under systemd:
# install (enabled, not started on the shipped example), a replay config on
# vcan0, restart, sd_notify status, journal priorities, reload refused and
# accepted, stop, remove, reinstall (started: the config is now edited),
# purge.  Prints "ok"/"FAIL" lines and ends with "N passed, N failed".
set -u
. tests/vm/lib.sh

DEB=$PWD/${JKB_DEB:-build/jkbridged.deb}
CONF=/etc/jkbridged/jkbridged.conf
U=jkbridged
W=/tmp/jkb
PYLON_IDS="351 355 356 359 35C 35E"
VER=$(dpkg-deb -f "$DEB" Version 2>/dev/null)
export DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= SYSTEMD_COLORS=0
mkdir -p "$W"

active() { [ "$(systemctl is-active "$U")" = "$1" ]; }
status_text() { systemctl show -p StatusText --value "$U"; }
status_has() { status_text | grep -q -F -- "$1"; }
# journal_has PRIORITY TEXT: a line of this unit, this boot, at exactly PRIORITY.
journal_has() { journalctl -b -u "$U" -p "$1..$1" -o cat --no-pager | grep -q -F -- "$2"; }
# The PRIORITY= field journald stored for the first entry with TEXT.
priority_of() {
	journalctl -b -u "$U" -o verbose --no-pager |
		awk -v text="$1" '/^[^ ]/ { p = "" } /^    PRIORITY=/ { sub(/.*=/, ""); p = $0 }
			/^    MESSAGE=/ && index($0, text) && !found { m = 1 }
			m && p != "" { print p; found = 1; m = 0 }'
}
show_journal() { echo "   --- journalctl -u $U"; journalctl -b -u "$U" -o short-monotonic --no-pager | sed 's/^/   | /'; }

section setup
uname -r
echo "   system: $(systemctl is-system-running)"
check "vector files shared" mount_vectors
check "package file $DEB" [ -r "$DEB" ]
check "vcan0 created and up" vcan_add vcan0

# --------------------------------------------------------------- install --
section "apt-get install"
apt-get install -y "$DEB" > "$W/install.log" 2>&1
rc=$?
sed 's/^/   | /' "$W/install.log" | tail -n 12
check "apt-get install ./jkbridged_*.deb (offline)" [ "$rc" -eq 0 ]
check "dpkg: installed" sh -c "dpkg-query -W -f='\${Status}' $U | grep -q 'install ok installed'"
check "$CONF exists" [ -f "$CONF" ]
check "$CONF is a registered conffile" sh -c "dpkg-query -W -f='\${Conffiles}' $U | grep -q '$CONF'"
check "unit enabled" [ "$(systemctl is-enabled "$U")" = enabled ]
check "not started on the shipped example config" active inactive
check "postinst says why" has "still the shipped example" "$W/install.log"
check "jkbms decodes a capture" sh -c "jkbms decode '$JKB_VECTORS/jk02_32s_session_frag_esphome_1.txt' 2>/dev/null | grep -q cell_info"

# --------------------------------------------------------- replay config --
section "replay config on vcan0, restart"
write_conf "$W/good.conf" vcan0 /var/lib/jkbridged
cp "$W/good.conf" "$CONF"
check "jkbridged -n accepts it" jkbridged -n -c "$CONF"
check "systemctl restart" systemctl restart "$U"
check "is-active = active" active active
check "StatusText shows 'packs fresh'" wait_until 20 status_has "2/2 packs fresh"
echo "   StatusText: $(status_text)"
check "StatusText shows 'CAN up'" status_has "CAN up"
capture vcan0 3 "$W/dump.log"
check "frames on vcan0 from the service ($(ids "$W/dump.log"))" [ "$(ids "$W/dump.log")" = "$PYLON_IDS" ]

section "journal priorities"
check "start-up line at notice (5)" wait_until 5 journal_has 5 "jkbridged $VER starting"
check "'vcan0: up' at notice (5)" journal_has 5 "vcan0: up"
check "'replaying' at info (6)" journal_has 6 "pack rack-top: replaying"
check "'transmitting' at info (6)" journal_has 6 "battery: 2/2 packs, transmitting"
p=$(priority_of "jkbridged $VER starting")
check "-o verbose: PRIORITY=5 on the start-up line (got '$p')" [ "$p" = 5 ]
check "'replaying' not shown with -p notice" sh -c "! journalctl -b -u $U -p notice -o cat | grep -q replaying"
check "no raw <N> prefixes in messages" sh -c "! journalctl -b -u $U -o cat | grep -q '^<[0-9]>'"

# ---------------------------------------------------------------- reload --
section "reload with a bad config"
printf '\nthis is = not libconfig;\n' >> "$CONF"
pid=$(systemctl show -p MainPID --value "$U")
systemctl reload "$U" > "$W/reload.log" 2>&1
rc=$?
check "systemctl reload refused (rc $rc)" [ "$rc" -ne 0 ]
check "still active" active active
check "same main PID" [ "$(systemctl show -p MainPID --value "$U")" = "$pid" ]
check "journal shows the refusal (line of the error)" \
	wait_until 5 sh -c "journalctl -b -u $U -o cat | grep -q 'jkbridged.conf:[0-9]*: syntax error'"
echo "   (that message, from ExecReload's jkbridged -n, is stored at PRIORITY=$(priority_of 'syntax error'))"
# SIGHUP straight to the daemon: its own refusal, the configuration stays.
systemctl kill -s HUP --kill-who=main "$U"
check "daemon refuses on SIGHUP" wait_until 5 journal_has 3 "refused, the running configuration stays"
check "still active after SIGHUP" active active
sleep 2
check "still 2/2 packs fresh" status_has "2/2 packs fresh"

section "reload with a good config"
cp "$W/good.conf" "$CONF"
check "systemctl reload" systemctl reload "$U"
check "journal: reload applied" wait_until 5 journal_has 5 "reload: $CONF applied"
check "still active" active active

# ------------------------------------------------------------------ stop --
section stop
check "systemctl stop" systemctl stop "$U"
check "is-active = inactive" active inactive
check "Result = success" [ "$(systemctl show -p Result --value "$U")" = success ]
check "ExecMainStatus = 0" [ "$(systemctl show -p ExecMainStatus --value "$U")" = 0 ]
check "'stopped' in the journal at notice" sh -c "journalctl -b -u $U -p 5..5 -o cat | grep -qx stopped"
check "charge state saved" [ -s /var/lib/jkbridged/charge.json ]
show_journal

# ---------------------------------------------------- remove, reinstall --
section "apt-get remove"
apt-get remove -y "$U" > "$W/remove.log" 2>&1
rc=$?
check "apt-get remove (rc $rc)" [ "$rc" -eq 0 ]
check "binaries gone" sh -c '[ ! -e /usr/sbin/jkbridged ] && [ ! -e /usr/bin/jkbms ]'
check "unit file gone" [ ! -e /lib/systemd/system/jkbridged.service ]
check "edited conffile kept" cmp -s "$W/good.conf" "$CONF"

section "reinstall with the edited config"
apt-get install -y "$DEB" > "$W/reinstall.log" 2>&1
rc=$?
check "apt-get install again (rc $rc)" [ "$rc" -eq 0 ]
check "enabled" [ "$(systemctl is-enabled "$U")" = enabled ]
check "started by postinst (config edited, jkbridged -n accepts it)" wait_until 5 active active
check "StatusText shows 'packs fresh'" wait_until 20 status_has "packs fresh"

section "apt-get purge"
apt-get purge -y "$U" > "$W/purge.log" 2>&1
rc=$?
check "apt-get purge (rc $rc)" [ "$rc" -eq 0 ]
check "stopped" sh -c "! systemctl -q is-active $U"
check "/etc/jkbridged gone" [ ! -e /etc/jkbridged ]
check "/var/lib/jkbridged gone" [ ! -e /var/lib/jkbridged ]
check "no enablement left" [ ! -e /etc/systemd/system/multi-user.target.wants/jkbridged.service ]

summary
