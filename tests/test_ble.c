/*
 * The Bluetooth path end to end, without a radio: a private dbus-daemon,
 * `jkbms sim` serving simulated packs as org.bluez on it, and the real
 * jkbridged (or `jkbms scan|dump`) with DBUS_SYSTEM_BUS_ADDRESS pointing
 * there and the CAN log sink.  Faults go in through the sim's stdin; the
 * checks read the daemon's log lines (one per state change) and the
 * candump lines it wrote.
 *
 * Every child gets PR_SET_PDEATHSIG, so a failed assertion (which ends
 * the forked test process) never leaves a bus, a sim or a daemon behind.
 * The runs take seconds of real time: the BMS streams every 500 ms, the
 * daemon ticks once a second and back-off starts at 1 s.
 */
#define _GNU_SOURCE		/* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"
#include "tests.h"

#define MAX_LINES 8192
#define LOG_MAX (1 << 20)


struct world {
	char dir[64];
	char bus[128];
	pid_t dbus, sim, daemon;
	int sim_in;		/* the sim's stdin: fault injection */
};

static struct world w;
static struct can_line lines[MAX_LINES];
static char logbuf[LOG_MAX];

/* Three packs, one per protocol; addresses pick the BLE module generation. */
#define A24 "C8:47:8C:00:00:01"	/* JK02_24S, old module: one FFE1 */
#define A32 "20:21:11:00:00:02"	/* JK02_32S, new module: two FFE1 */
#define A04 "C8:47:80:00:00:03"	/* JK04, old module */

static const char *tool(void)
{
	const char *b = getenv("JKBMS");

	return b && *b ? b : "build/jkbms";
}

static const char *path_in(const char *name)
{
	static char paths[8][160];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", w.dir, name);
	return p;
}

static void write_file(const char *name, const char *text)
{
	FILE *f = fopen(path_in(name), "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* fork + exec with stdout and stderr appended to `log`, stdin from a pipe
 * (*in gets its write end) or /dev/null; the child dies with the test. */
static pid_t spawn(char *const argv[], const char *log, int *in)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (in)
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int nul = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in ? p[0] : nul, 0);
		dup2(out, 1);
		dup2(out, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	if (in) {
		close(p[0]);
		*in = p[1];
	}
	return pid;
}

static int stop(pid_t pid)
{
	int status;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static size_t read_file(const char *name, char *buf, size_t cap)
{
	FILE *f = fopen(path_in(name), "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return n;
}

static unsigned count_in(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Wait until `file` holds `needle` at least `times` times. */
static bool wait_for(const char *file, const char *needle, unsigned times, unsigned timeout_ms)
{
	for (unsigned waited = 0;; waited += 100) {
		read_file(file, logbuf, sizeof(logbuf));
		if (count_in(logbuf, needle) >= times)
			return true;
		if (waited >= timeout_ms)
			return false;
		e2e_sleep_ms(100);
	}
}

#define assert_wait(file, needle, times, ms)                                                       \
	ck_assert_msg(wait_for(file, needle, times, ms), "%s: no %u x '%s' within %u ms:\n%s", file,   \
		      (unsigned)(times), needle, (unsigned)(ms), logbuf)

static void sim_cmd(const char *fmt, const char *addr, const char *arg)
{
	char line[128];
	int n = snprintf(line, sizeof(line), fmt, addr, arg);

	ck_assert_int_eq(write(w.sim_in, line, (size_t)n), n);
}

/* ------------------------------------------------------------- the world */

static void start_bus(void)
{
	char conf[1024];
	struct stat st;

	snprintf(w.dir, sizeof(w.dir), "/tmp/jkb-ble-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(w.dir));
	snprintf(w.bus, sizeof(w.bus), "unix:path=%s/bus", w.dir);
	snprintf(conf, sizeof(conf),
		 "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
		 " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		 "<busconfig>\n"
		 "  <type>session</type>\n"
		 "  <listen>%s</listen>\n"
		 "  <auth>EXTERNAL</auth>\n"
		 "  <policy context=\"default\">\n"
		 "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
		 "    <allow eavesdrop=\"true\"/>\n"
		 "    <allow own=\"*\"/>\n"
		 "  </policy>\n"
		 "</busconfig>\n", w.bus);
	write_file("bus.conf", conf);
	{
		char arg[200];
		char *argv[] = { "/usr/bin/dbus-daemon", arg, "--nofork", "--nopidfile", NULL };

		snprintf(arg, sizeof(arg), "--config-file=%s", path_in("bus.conf"));
		w.dbus = spawn(argv, path_in("dbus.log"), NULL);
	}
	for (unsigned i = 0; i < 100 && stat(path_in("bus"), &st) != 0; i++)
		e2e_sleep_ms(20);
	ck_assert_msg(stat(path_in("bus"), &st) == 0, "dbus-daemon did not come up");
	setenv("DBUS_SYSTEM_BUS_ADDRESS", w.bus, 1);
	w.sim_in = -1;
}

static void start_sim(const char *conf_text)
{
	char *argv[] = { (char *)tool(), "sim", "-c", NULL, NULL };

	write_file("sim.conf", conf_text);
	argv[3] = (char *)path_in("sim.conf");
	w.sim = spawn(argv, path_in("sim.log"), &w.sim_in);
	assert_wait("sim.log", "serving", 1, 5000);
}

static void start_daemon(const char *packs, const char *battery)
{
	char conf[2048];
	char *argv[] = { (char *)e2e_daemon_bin(), "-c", NULL, NULL };

	snprintf(conf, sizeof(conf),
		 "state_dir = \"%s/state\";\n"
		 "packs = ( %s );\n"
		 "battery = { cells = 16; max_charge_current = 500.0; max_discharge_current = 500.0; %s };\n"
		 "charge = { ramp = 1000.0; };\n"
		 "can = { interface = \"log:%s/can.log\"; profile = \"pylon\"; };\n",
		 w.dir, packs, battery, w.dir);
	write_file("jkbridged.conf", conf);
	argv[2] = (char *)path_in("jkbridged.conf");
	w.daemon = spawn(argv, path_in("daemon.log"), NULL);
}

static void stop_world(void)
{
	if (w.daemon > 0)
		ck_assert_msg(stop(w.daemon) == 0, "jkbridged did not exit cleanly");
	w.daemon = 0;
	if (w.sim_in >= 0)
		close(w.sim_in);
	stop(w.sim);
	stop(w.dbus);
	w.sim = w.dbus = 0;
}

/* Run `jkbms ARGS...` to completion; its stdout into out, exit status back. */
static int run_tool(char *out, size_t cap, const char *log, char *const args[])
{
	char *argv[16] = { (char *)tool() };
	unsigned n = 1;
	int status;
	pid_t pid;

	while (args[n - 1] && n < 15) {
		argv[n] = args[n - 1];
		n++;
	}
	argv[n] = NULL;
	pid = spawn(argv, path_in(log), NULL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	read_file(log, out, cap);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ------------------------------------------------------------ CAN log */

static size_t read_can_log(void)
{
	return e2e_read_can_log(path_in("can.log"), lines, MAX_LINES);
}

static const struct can_line *last_frame(size_t n, unsigned id, double after)
{
	return e2e_last_frame(lines, n, id, after);
}

/* ----------------------------------------------------------- scenarios */

/* 100 Ah at 50 % + 200 Ah at 80 % = 70 %; the JK04 unit's 20 % never counts. */
static const char sim_three[] =
	"sim_packs = (\n"
	"  { address = \"" A24 "\"; name = \"JK-B2A24S15P\"; protocol = \"jk02_24s\"; cells = 16;\n"
	"    capacity_ah = 100.0; soc = 50.0; current = 0.0; temperature = 25.0; },\n"
	"  { address = \"" A32 "\"; name = \"JK_PB2A16S20P\"; protocol = \"jk02_32s\"; cells = 16;\n"
	"    capacity_ah = 200.0; soc = 80.0; current = 0.0; temperature = 25.0; },\n"
	"  { address = \"" A04 "\"; name = \"JK-B2A16S\"; protocol = \"jk04\"; cells = 16;\n"
	"    capacity_ah = 100.0; soc = 20.0; current = 0.0; temperature = 25.0; }\n"
	");\n";

#define PACK24 "{ name = \"p24\"; address = \"" A24 "\"; }"
#define PACK32 "{ name = \"p32\"; address = \"" A32 "\"; }"
#define PACK04 "{ name = \"p04\"; address = \"" A04 "\"; }"
#define BATTERY "stale_after = 3; startup_timeout = 20;"

static void start_three(void)
{
	start_bus();
	start_sim(sim_three);
	start_daemon(PACK24 "," PACK32 "," PACK04, BATTERY);
	assert_wait("daemon.log", "pack p24: streaming, JK02_24S", 1, 15000);
	assert_wait("daemon.log", "pack p32: streaming, JK02_32S", 1, 15000);
	assert_wait("daemon.log", "pack p04: streaming, JK04", 1, 15000);
	assert_wait("daemon.log", "battery: 3/3 packs, transmitting", 1, 5000);
}

/* From the sim's log, in order: one Connect in flight at a time, and
 * discovery stopped whenever one is sent. */
static void check_connects_serialised(void)
{
	int in_flight = 0, max = 0;
	bool discovering = false;

	read_file("sim.log", logbuf, sizeof(logbuf));
	for (char *line = strtok(logbuf, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, "hci0: discovery started")) {
			discovering = true;
		} else if (strstr(line, "hci0: discovery stopped")) {
			discovering = false;
		} else if (strstr(line, "connecting (Connect from")) {
			ck_assert_msg(!discovering, "Connect sent while discovering: %s", line);
			if (++in_flight > max)
				max = in_flight;
		} else if (strstr(line, ": connected (") || strstr(line, "disconnected (refused")) {
			in_flight--;
		}
	}
	ck_assert_int_eq(max, 1);
}

START_TEST(test_three_protocols_stream_and_merge_into_one_battery)
{
	const struct can_line *l;
	double t;
	size_t n;

	start_three();
	t = e2e_wall_now();
	e2e_sleep_ms(2500);
	n = read_can_log();
	l = last_frame(n, 0x359, t);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(l->data[4], 3);	/* three modules */
	l = last_frame(n, 0x355, t);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(e2e_u16le(l->data), 70);	/* the two JK02 packs' weighted SOC */
	check_connects_serialised();
	ck_assert_int_eq(stop(w.daemon), 0);
	w.daemon = 0;
	/* On the way out every pack was disconnected: the BMS is free again. */
	assert_wait("sim.log", "disconnected (Disconnect from", 3, 3000);
	stop_world();
}
END_TEST

START_TEST(test_dropped_link_reconnects)
{
	start_three();
	sim_cmd("drop %s\n", A32, "");
	assert_wait("daemon.log", "pack p32: back-off, retry in", 1, 3000);
	assert_wait("daemon.log", "pack p32: streaming, JK02_32S", 2, 10000);
	ck_assert_int_eq(count_in(logbuf, "pack p24: back-off"), 0);	/* the others never noticed */
	stop_world();
}
END_TEST

/* "retry in X s" of each back-off line of the pack, in order. */
static unsigned backoff_delays(const char *pack, double *out, unsigned max)
{
	char needle[64];
	unsigned n = 0;

	snprintf(needle, sizeof(needle), "pack %s: back-off, retry in ", pack);
	read_file("daemon.log", logbuf, sizeof(logbuf));
	for (const char *p = logbuf; n < max && (p = strstr(p, needle)); p += strlen(needle))
		out[n++] = strtod(p + strlen(needle), NULL);
	return n;
}

START_TEST(test_refused_connects_back_off_longer_each_time_then_power_cycle)
{
	double delays[8];
	unsigned n;

	start_bus();
	start_sim(sim_three);
	start_daemon(PACK24, BATTERY);
	assert_wait("daemon.log", "pack p24: streaming", 1, 15000);
	sim_cmd("refuse %s %s\n", A24, "on");
	sim_cmd("drop %s\n", A24, "");
	/* drop, then four refused connects: 1, 2, 4, 8, 16 s (less up to 20 %) */
	assert_wait("daemon.log", "le-connection-abort-by-local", 4, 25000);
	n = backoff_delays("p24", delays, 8);
	ck_assert_uint_ge(n, 5);
	for (unsigned i = 1; i < n; i++)
		ck_assert_msg(delays[i] > delays[i - 1], "back-off %u (%.1f s) not longer than %.1f s", i,
			      delays[i], delays[i - 1]);
	ck_assert(delays[0] >= 0.8 && delays[0] <= 1.0);
	/* The fifth failure in a row, no other pack on hci0: the adapter is reset once. */
	assert_wait("daemon.log", "adapter hci0: power-cycling it, pack p24 failed 5 times", 1, 2000);
	assert_wait("sim.log", "hci0: powered off", 1, 3000);
	assert_wait("sim.log", "hci0: powered on", 1, 3000);
	sim_cmd("refuse %s %s\n", A24, "off");
	assert_wait("daemon.log", "pack p24: streaming", 2, 8000);
	stop_world();
}
END_TEST

START_TEST(test_corrupt_frames_are_counted_and_never_used)
{
	size_t n;
	double t;

	start_three();
	t = e2e_wall_now();
	sim_cmd("corrupt %s %s\n", A32, "on");
	assert_wait("daemon.log", "pack p32: 1 bad checksums on the link so far", 1, 3000);
	e2e_sleep_ms(1500);
	sim_cmd("corrupt %s %s\n", A32, "off");
	e2e_sleep_ms(1200);
	n = read_can_log();
	for (size_t i = 0; i < n; i++) {
		if (lines[i].t < t)
			continue;
		if (lines[i].id == 0x355)	/* no garbage ever reached the battery */
			ck_assert_uint_eq(e2e_u16le(lines[i].data), 70);
		if (lines[i].id == 0x359)
			ck_assert_uint_eq(lines[i].data[4], 3);
	}
	ck_assert_int_eq(count_in(logbuf, "pack p32: stale"), 0);
	stop_world();
}
END_TEST

START_TEST(test_silent_pack_goes_stale_and_leaves_the_battery)
{
	const struct can_line *l;
	double t;
	size_t n;

	start_three();
	sim_cmd("silence %s %s\n", A24, "on");
	assert_wait("daemon.log", "pack p24: stale", 1, 6000);
	t = e2e_wall_now();
	e2e_sleep_ms(1500);
	n = read_can_log();
	l = last_frame(n, 0x359, t);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(l->data[4], 2);
	l = last_frame(n, 0x355, t);
	ck_assert_uint_eq(e2e_u16le(l->data), 80);	/* p32 alone */
	/* The link stayed up; 0x96 is asked again until the BMS answers. */
	assert_wait("daemon.log", "pack p24: subscribed, no cell-info frame for", 1, 6000);
	sim_cmd("silence %s %s\n", A24, "off");
	assert_wait("daemon.log", "pack p24: fresh", 2, 8000);
	stop_world();
}
END_TEST

START_TEST(test_stale_connection_from_an_earlier_run_is_disconnected_first)
{
	static const char conf[] =
		"sim_packs = ( { address = \"" A32 "\"; name = \"JK_PB2A16S20P\"; protocol = \"jk02_32s\";\n"
		"  cells = 16; capacity_ah = 200.0; soc = 80.0; current = 0.0; temperature = 25.0; stale = true; } );\n";

	start_bus();
	start_sim(conf);
	start_daemon(PACK32, BATTERY);
	assert_wait("daemon.log", "pack p32: still connected from an earlier session", 1, 10000);
	assert_wait("daemon.log", "pack p32: streaming, JK02_32S", 1, 10000);
	stop_world();
}
END_TEST

START_TEST(test_pack_bound_to_an_adapter_connects_through_it)
{
	static const char conf[] =
		"sim_packs = (\n"
		"  { address = \"" A24 "\"; protocol = \"jk02_24s\"; cells = 16; capacity_ah = 100.0; soc = 50.0;\n"
		"    adapter = \"hci0\"; },\n"
		"  { address = \"" A32 "\"; protocol = \"jk02_32s\"; cells = 16; capacity_ah = 200.0; soc = 80.0;\n"
		"    adapter = \"hci1\"; }\n"
		");\n";

	start_bus();
	start_sim(conf);
	start_daemon(PACK24 ", { name = \"p32\"; address = \"" A32 "\"; adapter = \"hci1\"; }", BATTERY);
	assert_wait("daemon.log", "pack p32: connecting, via hci1", 1, 10000);
	assert_wait("daemon.log", "pack p24: connecting, via hci0", 1, 10000);
	assert_wait("daemon.log", "pack p32: streaming", 1, 10000);
	assert_wait("daemon.log", "pack p24: streaming", 1, 10000);
	stop_world();
}
END_TEST

START_TEST(test_switch_write_reaches_the_pack_and_the_settings_confirm_it)
{
	static char out[65536];
	char *args[] = { "dump", A32, "--switch", "charging=off", "--timeout", "15", NULL };

	start_bus();
	start_sim(sim_three);
	/* The daemon's only writer is the MQTT control; the tool drives the
	 * same ble_link_switch() and waits for the settings frame. */
	ck_assert_int_eq(run_tool(out, sizeof(out), "dump.log", args), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"charging_switch\":false"));
	ck_assert_ptr_nonnull(strstr(out, "the settings frame confirms the switch is off"));
	assert_wait("sim.log", A32 ": command received: 0x1D charging switch off", 1, 1000);
	stop_world();
}
END_TEST

START_TEST(test_scan_lists_the_units_and_why_they_matched)
{
	static char out[65536];
	char *args[] = { "scan", "--timeout", "2", NULL };

	start_bus();
	start_sim(sim_three);
	ck_assert_int_eq(run_tool(out, sizeof(out), "scan.log", args), 0);
	ck_assert_ptr_nonnull(strstr(out, A24));
	ck_assert_ptr_nonnull(strstr(out, A32));
	ck_assert_ptr_nonnull(strstr(out, A04));
	ck_assert_uint_eq(count_in(out, "service FFE0, manufacturer 0x0B65"), 3);
	ck_assert_ptr_nonnull(strstr(out, "3 JK-BMS units"));
	stop_world();
}
END_TEST

START_TEST(test_daemon_without_bluez_waits_for_it)
{
	start_bus();
	start_daemon(PACK32, BATTERY);
	assert_wait("daemon.log", "org.bluez is not on the system bus; waiting for it", 1, 5000);
	start_sim(sim_three);
	assert_wait("daemon.log", "pack p32: streaming", 1, 15000);
	stop_world();
}
END_TEST

TCase *tcase_ble(void);	/* for tests.h */

TCase *tcase_ble(void)
{
	TCase *tc = tcase_create("ble");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_three_protocols_stream_and_merge_into_one_battery);
	tcase_add_test(tc, test_dropped_link_reconnects);
	tcase_add_test(tc, test_refused_connects_back_off_longer_each_time_then_power_cycle);
	tcase_add_test(tc, test_corrupt_frames_are_counted_and_never_used);
	tcase_add_test(tc, test_silent_pack_goes_stale_and_leaves_the_battery);
	tcase_add_test(tc, test_stale_connection_from_an_earlier_run_is_disconnected_first);
	tcase_add_test(tc, test_pack_bound_to_an_adapter_connects_through_it);
	tcase_add_test(tc, test_switch_write_reaches_the_pack_and_the_settings_confirm_it);
	tcase_add_test(tc, test_scan_lists_the_units_and_why_they_matched);
	tcase_add_test(tc, test_daemon_without_bluez_waits_for_it);
	return tc;
}
