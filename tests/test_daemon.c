/*
 * jkbridged end to end: the real binary ($JKBRIDGED, default
 * build/jkbridged) runs with replay packs built by jk_encode and the CAN log
 * sink; the tests read back the candump lines it wrote and check the
 * merged battery, the start-up rule, staleness, reload and the -n check.
 * The runs last a few seconds of real time because the daemon's tick is
 * one second; nothing here measures speed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"
#include "tests.h"

#define MAX_LINES 4096


static char dir[64];
static struct can_line lines[MAX_LINES];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/jkb-daemon-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_capture(const char *name, const struct e2e_pack *p)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	e2e_write_capture(path, p);
}

static size_t read_can_log(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/can.log", dir);
	return e2e_read_can_log(path, lines, MAX_LINES);
}

static const struct can_line *last_frame(size_t n, unsigned id)
{
	return e2e_last_frame(lines, n, id, 0);
}

static const char *write_conf(const char *name, const char *extra_packs, const char *battery)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"state_dir = \"%s/state\";\n"
		"packs = ( %s );\n"
		"battery = { cells = 16; max_charge_current = 500.0; max_discharge_current = 500.0; %s };\n"
		"charge = { ramp = 1000.0; };\n"
		"can = { interface = \"log:%s/can.log\"; profile = \"pylon\"; };\n",
		dir, extra_packs, battery, dir);
	fclose(f);
	return path;
}

static pid_t start_daemon(const char *conf)
{
	char logpath[128];
	pid_t pid;

	snprintf(logpath, sizeof(logpath), "%s/daemon.log", dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		FILE *log = freopen(logpath, "a", stderr);

		(void)log;
		execl(e2e_daemon_bin(), e2e_daemon_bin(), "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int stop_daemon(pid_t pid)
{
	int status;

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "jkbridged did not exit cleanly");
	return WEXITSTATUS(status);
}

/* Parse the candump log: "(sec.usec) IFACE ID#HEX". */
static const struct e2e_pack pack_a = { .proto = JK_PROTO_JK02_32S, .cell_mv = 3300, .current_ma = -10500,
					 .soc_pct = 60, .capacity_mah = 280000, .temp_dc = 250,
					 .max_charge_ma = 100000, .max_discharge_ma = 150000, .cell_frames = 3 };
static const struct e2e_pack pack_b = { .proto = JK_PROTO_JK02_24S, .cell_mv = 3310, .current_ma = 2000,
					 .soc_pct = 80, .capacity_mah = 100000, .temp_dc = 260,
					 .max_charge_ma = 50000, .max_discharge_ma = 80000, .cell_frames = 3 };

START_TEST(test_two_replay_packs_merge_into_one_battery)
{
	const struct can_line *l;
	const char *conf;
	size_t n;
	pid_t pid;

	make_dir();
	write_capture("a.hex", &pack_a);
	write_capture("b.hex", &pack_b);
	conf = write_conf("jkbridged.conf",
			  "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; },"
			  "{ name = \"b\"; replay = \"b.hex\"; loop = true; speed = 10.0; }", "");
	pid = start_daemon(conf);
	e2e_sleep_ms(3600);
	ck_assert_int_eq(stop_daemon(pid), 0);
	n = read_can_log();
	ck_assert_msg(n >= 12, "only %zu CAN frames written", n);

	l = last_frame(n, 0x355);	/* SOC = (168 + 80) / 380 Ah = 65 %, SOH 100 */
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(e2e_u16le(l->data), 65);
	ck_assert_uint_eq(e2e_u16le(l->data + 2), 100);
	l = last_frame(n, 0x356);	/* mean voltage, summed current, mean of min/max temp */
	ck_assert_uint_eq(e2e_u16le(l->data), (52800 + 52960) / 2 / 10);
	ck_assert_int_eq((int16_t)e2e_u16le(l->data + 2), -85);
	ck_assert_int_eq((int16_t)e2e_u16le(l->data + 4), 255);
	l = last_frame(n, 0x359);
	ck_assert_uint_eq(l->data[4], 2);
	ck_assert_uint_eq(l->data[0] | l->data[1] | l->data[2] | l->data[3], 0);
	l = last_frame(n, 0x351);	/* CVL 16 x 3.45 V; CCL 90 % of 100 + 50 A; DCL 0.5 C of 380 Ah */
	ck_assert_uint_eq(e2e_u16le(l->data), 552);
	ck_assert_uint_eq(e2e_u16le(l->data + 2), 1350);
	ck_assert_uint_eq(e2e_u16le(l->data + 4), 1900);
	l = last_frame(n, 0x35C);
	ck_assert_uint_eq(l->data[0], 0xC0);
	l = last_frame(n, 0x35E);
	ck_assert_mem_eq(l->data, "PYLON   ", 8);
	for (size_t i = 1; i < n; i++)	/* paced: never two frames within 10 ms */
		ck_assert_msg(lines[i].t - lines[i - 1].t >= 0.009, "frames %zu and %zu %.4f s apart",
			      i - 1, i, lines[i].t - lines[i - 1].t);
}
END_TEST

START_TEST(test_stale_pack_leaves_the_battery_within_stale_after)
{
	struct e2e_pack once = pack_b;
	bool saw_two = false;
	const struct can_line *l;
	size_t n;
	pid_t pid;

	once.cell_frames = 1;
	make_dir();
	write_capture("a.hex", &pack_a);
	write_capture("b.hex", &once);
	pid = start_daemon(write_conf("jkbridged.conf",
			  "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; },"
			  "{ name = \"b\"; replay = \"b.hex\"; loop = false; }", "stale_after = 2;"));
	e2e_sleep_ms(5200);
	ck_assert_int_eq(stop_daemon(pid), 0);
	n = read_can_log();
	for (size_t i = 0; i < n; i++)
		saw_two |= lines[i].id == 0x359 && lines[i].data[4] == 2;
	ck_assert_msg(saw_two, "pack b never counted");
	l = last_frame(n, 0x359);
	ck_assert_uint_eq(l->data[4], 1);
	l = last_frame(n, 0x355);
	ck_assert_uint_eq(e2e_u16le(l->data), 60);	/* pack a alone */
	l = last_frame(n, 0x351);
	ck_assert_uint_le(e2e_u16le(l->data + 2), 900);	/* only pack a's limit is left */
}
END_TEST

START_TEST(test_nothing_is_sent_before_every_pack_reported_or_timed_out)
{
	struct e2e_pack silent = pack_b;
	double start;
	size_t n;
	pid_t pid;

	silent.junk_only = true;
	make_dir();
	write_capture("a.hex", &pack_a);
	write_capture("b.hex", &silent);
	start = e2e_wall_now();
	pid = start_daemon(write_conf("jkbridged.conf",
			  "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; },"
			  "{ name = \"b\"; replay = \"b.hex\"; loop = true; }", "startup_timeout = 3;"));
	e2e_sleep_ms(5300);
	ck_assert_int_eq(stop_daemon(pid), 0);
	n = read_can_log();
	ck_assert_msg(n > 0, "nothing sent after the start-up timeout");
	ck_assert_msg(lines[0].t - start >= 2.9, "first frame %.2f s after start, before the timeout",
		      lines[0].t - start);
	ck_assert_uint_eq(last_frame(n, 0x359)->data[4], 1);
}
END_TEST

START_TEST(test_bad_reload_keeps_running_configuration_and_transmission)
{
	const char *conf;
	double hup;
	size_t n, after = 0;
	pid_t pid;
	FILE *f;

	make_dir();
	write_capture("a.hex", &pack_a);
	conf = write_conf("jkbridged.conf", "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "");
	pid = start_daemon(conf);
	e2e_sleep_ms(1500);
	f = fopen(conf, "a");
	fputs("this is not libconfig\n", f);
	fclose(f);
	hup = e2e_wall_now();
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	e2e_sleep_ms(2200);
	ck_assert_int_eq(stop_daemon(pid), 0);
	n = read_can_log();
	for (size_t i = 0; i < n; i++)
		after += lines[i].t > hup + 0.1 && lines[i].id == 0x351;
	ck_assert_msg(after >= 2, "transmission paused after a bad reload (%zu sets)", after);
}
END_TEST

START_TEST(test_good_reload_applies_without_pausing_transmission)
{
	const struct can_line *l;
	const char *conf;
	double hup;
	size_t n, after = 0;
	pid_t pid;

	make_dir();
	write_capture("a.hex", &pack_a);
	write_capture("b.hex", &pack_b);
	conf = write_conf("jkbridged.conf", "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "");
	pid = start_daemon(conf);
	e2e_sleep_ms(1600);
	/* the new file adds pack b */
	write_conf("jkbridged.conf",
		   "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; },"
		   "{ name = \"b\"; replay = \"b.hex\"; loop = true; speed = 10.0; }", "");
	hup = e2e_wall_now();
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	e2e_sleep_ms(2600);
	ck_assert_int_eq(stop_daemon(pid), 0);
	n = read_can_log();
	for (size_t i = 0; i < n; i++)
		after += lines[i].t > hup && lines[i].id == 0x351;
	ck_assert_msg(after >= 2, "transmission paused after a reload (%zu sets)", after);
	l = last_frame(n, 0x359);
	ck_assert_uint_eq(l->data[4], 2);	/* pack b joined */
	l = last_frame(n, 0x355);
	ck_assert_uint_eq(e2e_u16le(l->data), 65);
}
END_TEST

static int run_check(const char *conf, char *out, size_t cap)
{
	char cmd[512];
	FILE *p;
	size_t n;
	int status;

	snprintf(cmd, sizeof(cmd), "%s -n -v -c %s 2>&1", e2e_daemon_bin(), conf);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_check_mode_exit_codes)
{
	static char out[16384];
	const char *conf;

	make_dir();
	conf = write_conf("good.conf", "{ name = \"a\"; replay = \"a.hex\"; }", "");
	ck_assert_int_eq(run_check(conf, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "bulk_cell_voltage"));
	conf = write_conf("bad.conf", "{ name = \"a\"; replay = \"a.hex\"; }", "stale_after = 99999;");
	ck_assert_int_eq(run_check(conf, out, sizeof(out)), 78);
	ck_assert_ptr_nonnull(strstr(out, "bad.conf:3: stale_after = 99999 is out of range"));
}
END_TEST

TCase *tcase_daemon(void)
{
	TCase *tc = tcase_create("daemon");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_two_replay_packs_merge_into_one_battery);
	tcase_add_test(tc, test_stale_pack_leaves_the_battery_within_stale_after);
	tcase_add_test(tc, test_nothing_is_sent_before_every_pack_reported_or_timed_out);
	tcase_add_test(tc, test_bad_reload_keeps_running_configuration_and_transmission);
	tcase_add_test(tc, test_good_reload_applies_without_pausing_transmission);
	tcase_add_test(tc, test_check_mode_exit_codes);
	return tc;
}
