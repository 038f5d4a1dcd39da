/*
 * jkbridged and Home Assistant, end to end: a real mosquitto broker started
 * here on a free loopback port, the real daemon ($JKBRIDGED) on replay packs
 * built by jk_encode, and mosquitto_sub / mosquitto_pub as Home Assistant.
 *
 * What is checked: the discovery documents are the golden files of
 * test_ha.c (the version aside); the states carry what the replayed packs
 * say; "offline" after a clean stop and, as the will, after kill -9;
 * reconnection and discovery again after the broker restarts; discovery
 * again after Home Assistant's birth message, 1-5 s later; a malformed
 * command ignored and logged once; control refused while disabled and
 * working (and persisted) while allowed; a stale pack shown unavailable; a
 * pack removed from the configuration cleared from the broker; TLS with a
 * password.  Every process started here dies with the test (PDEATHSIG).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "e2e.h"
#include "tests.h"

#ifndef JKB_VERSION
#define JKB_VERSION "0.0.0"
#endif


#define MAX_MSGS 512

struct broker {
	pid_t pid;
	int port;
	char client_args[1024];	/* TLS and credentials for mosquitto_sub / _pub */
	char extra[1024];	/* listener options */
};

struct msg {
	double t;
	bool retained;
	char topic[256];
	char *payload;
};

struct msgs {
	size_t n;
	struct msg m[MAX_MSGS];
};


static char dir[64];
static struct msgs snap;

static const struct e2e_pack pack_a = { .name = "a", .proto = JK_PROTO_JK02_32S, .cell_mv = 3300,
					 .current_ma = -10500, .soc_pct = 60, .capacity_mah = 280000, .temp_dc = 250,
					 .max_charge_ma = 100000, .max_discharge_ma = 150000, .cell_frames = 3 };
static const struct e2e_pack pack_b = { .name = "b", .proto = JK_PROTO_JK02_24S, .cell_mv = 3310,
					 .current_ma = 2000, .soc_pct = 80, .capacity_mah = 100000, .temp_dc = 250,
					 .max_charge_ma = 100000, .max_discharge_ma = 150000, .cell_frames = 3 };

/* ------------------------------------------------------------- processes */

/* fork + exec through the shell, dying with the test; output to `log`. */
static pid_t spawn(const char *cmd, const char *log)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr))
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/jkb-mqtt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0755);
}

static const char *path_in(const char *name)
{
	static char paths[8][192];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

static const char *mosquitto_bin(void)
{
	const char *env = getenv("MOSQUITTO");

	if (env && *env)
		return env;
	return access("/usr/sbin/mosquitto", X_OK) == 0 ? "/usr/sbin/mosquitto" : "mosquitto";
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void broker_start(struct broker *b)
{
	char cmd[512];
	FILE *f;

	if (!b->port)
		b->port = free_port();
	f = fopen(path_in("mosquitto.conf"), "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "user root\nlistener %d 127.0.0.1\npersistence false\n%s\n", b->port,
		*b->extra ? b->extra : "allow_anonymous true");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "exec %s -c %s", mosquitto_bin(), path_in("mosquitto.conf"));
	b->pid = spawn(cmd, path_in("mosquitto.log"));
	for (int i = 0; i < 300 && !port_open(b->port); i++)
		e2e_sleep_ms(10);
	ck_assert_msg(port_open(b->port), "mosquitto did not start (is it installed? scripts/install-deps)");
}

static void broker_stop(struct broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGTERM);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

/* ---------------------------------------------------------------- broker */

static void msgs_free(struct msgs *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		free(ms->m[i].payload);
	ms->n = 0;
}

/* One line of mosquitto_sub -F "%U\t%r\t%t\t%p" (or without %U); the
 * payload is the rest of the line, empty for a cleared topic. */
static void msgs_add(struct msgs *ms, char *line, bool with_time)
{
	unsigned want = with_time ? 4 : 3;
	char *f[4] = { line };
	struct msg *m;

	line[strcspn(line, "\n")] = '\0';
	for (unsigned i = 1; i < want && f[i - 1]; i++) {
		char *tab = strchr(f[i - 1], '\t');

		if (tab)
			*tab = '\0';
		f[i] = tab ? tab + 1 : NULL;
	}
	if (!f[want - 1] || ms->n >= MAX_MSGS)
		return;
	m = &ms->m[ms->n++];
	m->t = with_time ? atof(f[0]) : 0;
	m->retained = f[want - 3][0] == '1';
	snprintf(m->topic, sizeof(m->topic), "%s", f[want - 2]);
	m->payload = strdup(f[want - 1]);
}

/* What the broker retains under `filter` now. */
static const struct msgs *retained(const struct broker *b, const char *filter)
{
	char cmd[2048], line[65536];
	FILE *p;

	msgs_free(&snap);
	snprintf(cmd, sizeof(cmd),
		 "mosquitto_sub -h 127.0.0.1 -p %d %s -t '%s' --retained-only -W 1 -F '%%r\\t%%t\\t%%p' 2>/dev/null",
		 b->port, b->client_args, filter);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p))
		msgs_add(&snap, line, false);
	pclose(p);
	return &snap;
}

static const char *find(const struct msgs *ms, const char *topic)
{
	for (size_t i = ms->n; i-- > 0;)
		if (strcmp(ms->m[i].topic, topic) == 0)
			return ms->m[i].payload;
	return NULL;
}

/* The retained payload of one topic, waiting up to `ms` for it to be `want`
 * (NULL: any). */
static const char *wait_retained(const struct broker *b, const char *topic, const char *want, unsigned ms)
{
	double end = e2e_wall_now() + ms / 1000.0;
	const char *v;

	do {
		v = find(retained(b, topic), topic);
		if (v && (!want || strcmp(v, want) == 0))
			return v;
	} while (e2e_wall_now() < end);
	return v;
}

static void mqtt_pub(const struct broker *b, const char *topic, const char *payload)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "mosquitto_pub -h 127.0.0.1 -p %d %s -t '%s' -m '%s'", b->port, b->client_args,
		 topic, payload);
	ck_assert_int_eq(system(cmd), 0);
}

static pid_t recorder_start(const struct broker *b, const char *filter, const char *file)
{
	char cmd[2048];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "exec mosquitto_sub -h 127.0.0.1 -p %d %s -t '%s' -F '%%U\\t%%r\\t%%t\\t%%p'",
		 b->port, b->client_args, filter);
	pid = spawn(cmd, file);
	e2e_sleep_ms(500);
	return pid;
}

static void recording(pid_t pid, const char *file, struct msgs *out)
{
	static char line[65536];
	FILE *f;

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (line[0] >= '0' && line[0] <= '9')
			msgs_add(out, line, true);
	fclose(f);
}

/* ---------------------------------------------------------------- daemon */

static void write_capture(const struct e2e_pack *p)
{
	char name[32];

	snprintf(name, sizeof(name), "%s.hex", p->name);
	e2e_write_capture(path_in(name), p);
}

static const char *write_conf(const struct broker *b, const char *packs, const char *battery, const char *mqtt)
{
	const char *path = path_in("jkbridged.conf");
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"state_dir = \"%s/state\";\n"
		"packs = ( %s );\n"
		"battery = { cells = 16; max_charge_current = 500.0; max_discharge_current = 500.0; %s };\n"
		"charge = { ramp = 1000.0; };\n"
		"can = { interface = \"log:%s/can.log\"; profile = \"pylon\"; };\n"
		"mqtt = { host = \"127.0.0.1\"; port = %d; client_id = \"jkb-test\"; interval = 1; %s };\n",
		dir, packs, battery, dir, b->port, mqtt);
	fclose(f);
	return path;
}

#define PACKS_AB "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }," \
		 "{ name = \"b\"; replay = \"b.hex\"; loop = true; speed = 10.0; }"

static pid_t start_daemon(const char *conf)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "exec %s -v -c %s", e2e_daemon_bin(), conf);
	return spawn(cmd, path_in("daemon.log"));
}

static void stop_daemon(pid_t pid)
{
	int status;

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "jkbridged did not exit cleanly");
}

/* Lines of the daemon's log containing `what`. */
static unsigned log_count(const char *what)
{
	static char line[4096];
	unsigned n = 0;
	FILE *f = fopen(path_in("daemon.log"), "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

/* The last 0x351 frame's CCL in 0.1 A (pylon), or -1. */
static int last_ccl(void)
{
	static char line[256];
	int ccl = -1;
	unsigned b[8];
	FILE *f = fopen(path_in("can.log"), "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *hash = strstr(line, " 351#");

		if (hash && sscanf(hash + 5, "%2x%2x%2x%2x", &b[0], &b[1], &b[2], &b[3]) == 4)
			ccl = (int)(b[2] | b[3] << 8);
	}
	fclose(f);
	return ccl;
}

static json_t *json_of(const char *payload, const char *what)
{
	json_t *doc;

	ck_assert_msg(payload != NULL, "nothing retained on %s", what);
	doc = json_loads(payload, 0, NULL);
	ck_assert_msg(doc != NULL, "%s is not JSON: %s", what, payload);
	return doc;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	ck_assert_msg(s != NULL, "%s is not a string", key);
	return s;
}

static double jnum(const json_t *o, const char *key)
{
	ck_assert_msg(json_is_number(json_object_get(o, key)), "%s is not a number", key);
	return json_number_value(json_object_get(o, key));
}

/* A discovery document as published, against test_ha.c's golden file. */
static void check_golden(const struct msgs *ms, const char *device_id, const char *golden)
{
	char topic[128], path[128];
	json_t *got, *want, *dev;
	char *text;

	snprintf(topic, sizeof(topic), "homeassistant/device/%s/config", device_id);
	got = json_of(find(ms, topic), topic);
	snprintf(path, sizeof(path), "tests/golden/%s", golden);
	want = json_load_file(path, 0, NULL);
	ck_assert_msg(want != NULL, "%s missing (make golden)", path);
	json_object_set_new(json_object_get(got, "o"), "sw", json_string("VERSION"));
	dev = json_object_get(got, "dev");
	if (strcmp(json_string_value(json_object_get(dev, "sw")), JKB_VERSION) == 0)
		json_object_set_new(dev, "sw", json_string("VERSION"));
	text = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
	ck_assert_msg(json_equal(got, want), "%s differs from %s:\n%s", topic, path, text);
	free(text);
	json_decref(got);
	json_decref(want);
}

static void setup_two_packs(struct broker *b, const char *battery, const char *mqtt, pid_t *daemon)
{
	make_dir();
	write_capture(&pack_a);
	write_capture(&pack_b);
	broker_start(b);
	*daemon = start_daemon(write_conf(b, PACKS_AB, battery, mqtt));
	ck_assert_msg(wait_retained(b, "jkbridged/status", "online", 5000), "never online");
	ck_assert_msg(wait_retained(b, "jkbridged/pack/b/availability", "online", 5000), "pack b never online");
	e2e_sleep_ms(1200);	/* a full state interval with both packs */
}

/* ----------------------------------------------------------------- tests */

START_TEST(test_discovery_is_golden_and_states_carry_the_replayed_values)
{
	struct broker b = { 0 };
	const struct msgs *ms;
	json_t *a, *bat;
	pid_t d;

	setup_two_packs(&b, "", "allow_control = true;", &d);
	ms = retained(&b, "#");
	check_golden(ms, "jkb_test", "ha_bridge.json");
	check_golden(ms, "jkb_test_battery", "ha_battery.json");
	check_golden(ms, "jkb_test_a", "ha_pack_replay.json");
	ck_assert_str_eq(find(ms, "jkbridged/status"), "online");
	ck_assert_str_eq(find(ms, "jkbridged/pack/a/availability"), "online");
	ck_assert_str_eq(find(ms, "jkbridged/battery/availability"), "online");

	a = json_of(find(ms, "jkbridged/pack/a/state"), "pack a");
	ck_assert_double_eq_tol(jnum(a, "voltage"), 52.8, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "current"), -10.5, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "soc"), 60, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "capacity"), 280.0, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "remaining"), 168.0, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "cell_min"), 3.3, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "cell_delta"), 0.0, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "temp_1"), 25.0, 1e-9);
	ck_assert_double_eq_tol(jnum(a, "temp_mos"), 30.0, 1e-9);
	ck_assert_str_eq(jstr(a, "charging_mos"), "ON");
	ck_assert_str_eq(jstr(a, "charging_switch"), "ON");
	ck_assert_str_eq(jstr(a, "balancer_switch"), "ON");
	ck_assert_double_gt(jnum(a, "energy_discharged"), 0);	/* 554 W for a few seconds */
	ck_assert_double_eq(jnum(a, "energy_charged"), 0);
	json_decref(a);

	bat = json_of(find(ms, "jkbridged/battery/state"), "battery");
	ck_assert_double_eq_tol(jnum(bat, "soc"), 65.26, 0.01);	/* (168 + 80) / 380 Ah */
	ck_assert_double_eq_tol(jnum(bat, "voltage"), 52.88, 1e-9);
	ck_assert_double_eq_tol(jnum(bat, "current"), -8.5, 1e-9);
	ck_assert_double_eq(jnum(bat, "packs_fresh"), 2);
	ck_assert_str_eq(jstr(bat, "forbid_charge"), "OFF");
	json_decref(bat);

	stop_daemon(d);
	/* A clean stop: "offline" published by the daemon (the broker keeps the
	 * will for unclean ones), and the energy counters saved. */
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "offline", 2000), "offline");
	ck_assert_int_eq(access(path_in("state/energy.json"), R_OK), 0);
	broker_stop(&b);
}
END_TEST

START_TEST(test_the_will_says_offline_after_kill_9)
{
	struct broker b = { 0 };
	pid_t d;
	int status;

	setup_two_packs(&b, "", "", &d);
	ck_assert_int_eq(kill(d, SIGKILL), 0);
	waitpid(d, &status, 0);
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "offline", 3000), "offline");
	broker_stop(&b);
}
END_TEST

START_TEST(test_reconnects_and_publishes_discovery_again_after_the_broker_restarts)
{
	struct broker b = { 0 };
	pid_t d;

	setup_two_packs(&b, "", "", &d);
	broker_stop(&b);	/* no persistence: every retained message is gone */
	e2e_sleep_ms(1500);
	broker_start(&b);
	ck_assert_msg(wait_retained(&b, "homeassistant/device/jkb_test_a/config", NULL, 12000),
		      "no discovery after the broker came back");
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "online", 2000), "online");
	ck_assert_str_eq(wait_retained(&b, "jkbridged/pack/a/availability", "online", 2000), "online");
	ck_assert_uint_ge(log_count("mqtt: connection to 127.0.0.1"), 1);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_home_assistant_birth_brings_discovery_again_after_a_delay)
{
	struct broker b = { 0 };
	static struct msgs rec;
	double t0, first = 0;
	unsigned docs = 0;
	pid_t d, r;

	setup_two_packs(&b, "", "", &d);
	r = recorder_start(&b, "homeassistant/device/+/config", path_in("birth.rec"));
	t0 = e2e_wall_now();
	mqtt_pub(&b, "homeassistant/status", "online");
	e2e_sleep_ms(6500);
	recording(r, path_in("birth.rec"), &rec);
	for (size_t i = 0; i < rec.n; i++) {
		if (rec.m[i].retained)
			continue;	/* the copies handed to a new subscriber */
		if (!first)
			first = rec.m[i].t;
		docs++;
	}
	ck_assert_msg(docs >= 4, "%u discovery documents after the birth message", docs);
	ck_assert_msg(first - t0 >= 0.9 && first - t0 <= 6.0, "discovery %.2f s after the birth message", first - t0);
	msgs_free(&rec);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_malformed_command_is_ignored_and_logged_once_control_works_and_persists)
{
	struct broker b = { 0 };
	const char *set = "jkbridged/battery/forbid_charge/set";
	json_t *bat;
	pid_t d;

	setup_two_packs(&b, "", "allow_control = true;", &d);
	ck_assert_int_gt(last_ccl(), 0);
	mqtt_pub(&b, set, "on");
	mqtt_pub(&b, set, "on");
	mqtt_pub(&b, set, "ON ");
	mqtt_pub(&b, "jkbridged/pack/a/charging/set", "OFF");
	mqtt_pub(&b, "jkbridged/pack/a/charging/set", "OFF");
	e2e_sleep_ms(1500);
	bat = json_of(wait_retained(&b, "jkbridged/battery/state", NULL, 1000), "battery");
	ck_assert_str_eq(jstr(bat, "forbid_charge"), "OFF");
	json_decref(bat);
	ck_assert_uint_eq(log_count("forbid_charge/set: the payload must be ON or OFF"), 1);
	ck_assert_uint_eq(log_count("pack a: its switches cannot be written (a replay pack)"), 1);

	mqtt_pub(&b, set, "ON");
	e2e_sleep_ms(2500);
	bat = json_of(wait_retained(&b, "jkbridged/battery/state", NULL, 1000), "battery");
	ck_assert_str_eq(jstr(bat, "forbid_charge"), "ON");
	json_decref(bat);
	ck_assert_int_eq(last_ccl(), 0);	/* the inverter is told: no charging */
	stop_daemon(d);

	/* Persisted: a restart keeps charging forbidden. */
	d = start_daemon(path_in("jkbridged.conf"));
	e2e_sleep_ms(3000);
	bat = json_of(wait_retained(&b, "jkbridged/battery/state", NULL, 1000), "battery");
	ck_assert_str_eq(jstr(bat, "forbid_charge"), "ON");
	json_decref(bat);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_control_is_refused_while_disabled)
{
	struct broker b = { 0 };
	const struct msgs *ms;
	json_t *doc;
	pid_t d;

	setup_two_packs(&b, "", "", &d);
	ms = retained(&b, "homeassistant/#");
	doc = json_of(find(ms, "homeassistant/device/jkb_test_battery/config"), "battery discovery");
	ck_assert_ptr_null(json_object_get(json_object_get(doc, "cmps"), "forbid_charge"));
	json_decref(doc);
	for (size_t i = 0; i < ms->n; i++)
		ck_assert_msg(!strstr(ms->m[i].payload, "\"cmd_t\""), "%s has a command topic", ms->m[i].topic);
	mqtt_pub(&b, "jkbridged/battery/forbid_charge/set", "ON");
	mqtt_pub(&b, "jkbridged/pack/a/charging/set", "OFF");
	e2e_sleep_ms(2500);
	doc = json_of(wait_retained(&b, "jkbridged/battery/state", NULL, 1000), "battery");
	ck_assert_str_eq(jstr(doc, "forbid_charge"), "OFF");
	json_decref(doc);
	ck_assert_int_gt(last_ccl(), 0);
	ck_assert_uint_eq(log_count("control: charging forbidden"), 0);
	ck_assert_uint_eq(log_count("its switches cannot be written"), 0);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_a_stale_pack_is_shown_unavailable)
{
	struct broker b = { 0 };
	struct e2e_pack once = pack_b;
	pid_t d;

	make_dir();
	once.cell_frames = 1;
	write_capture(&pack_a);
	write_capture(&once);
	broker_start(&b);
	d = start_daemon(write_conf(&b,
		"{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; },"
		"{ name = \"b\"; replay = \"b.hex\"; loop = false; }", "stale_after = 2;", ""));
	ck_assert_msg(wait_retained(&b, "jkbridged/pack/b/state", NULL, 5000), "pack b never published");
	ck_assert_str_eq(wait_retained(&b, "jkbridged/pack/b/availability", "offline", 6000), "offline");
	ck_assert_str_eq(wait_retained(&b, "jkbridged/pack/a/availability", "online", 1000), "online");
	ck_assert_uint_ge(log_count("pack b: stale"), 1);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

/* Every document published for pack a (not the retained copy a subscriber
 * gets first) describes it in full: a restart, before the pack has spoken,
 * must not remove its JK02_32S sensors (HA would forget their settings). */
static void check_pack_a_never_shrinks(const struct msgs *rec)
{
	unsigned docs = 0;

	for (size_t i = 0; i < rec->n; i++) {
		json_t *doc, *cmps, *comp;
		const char *key;

		if (rec->m[i].retained)
			continue;
		doc = json_of(rec->m[i].payload, rec->m[i].topic);
		cmps = json_object_get(doc, "cmps");
		ck_assert_ptr_nonnull(json_object_get(cmps, "temp_3"));
		json_object_foreach(cmps, key, comp)
			ck_assert_msg(json_object_size(comp) > 1, "component %s removed after a restart", key);
		ck_assert_str_eq(jstr(json_object_get(doc, "dev"), "mdl"), "JK_PB2A16S20P");
		json_decref(doc);
		docs++;
	}
	ck_assert_uint_ge(docs, 1);
}

START_TEST(test_a_pack_removed_from_the_configuration_is_cleared)
{
	struct broker b = { 0 };
	static struct msgs rec;
	const struct msgs *ms;
	pid_t d, r;

	setup_two_packs(&b, "", "", &d);
	ck_assert_ptr_nonnull(find(retained(&b, "#"), "homeassistant/device/jkb_test_b/config"));
	stop_daemon(d);
	r = recorder_start(&b, "homeassistant/device/jkb_test_a/config", path_in("restart.rec"));
	d = start_daemon(write_conf(&b, "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "", ""));
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "online", 5000), "online");
	e2e_sleep_ms(1500);
	recording(r, path_in("restart.rec"), &rec);
	check_pack_a_never_shrinks(&rec);
	msgs_free(&rec);
	ms = retained(&b, "#");
	ck_assert_ptr_null(find(ms, "homeassistant/device/jkb_test_b/config"));
	ck_assert_ptr_null(find(ms, "jkbridged/pack/b/state"));
	ck_assert_ptr_null(find(ms, "jkbridged/pack/b/availability"));
	ck_assert_ptr_null(find(ms, "jkbridged/pack/b/link"));
	ck_assert_ptr_nonnull(find(ms, "homeassistant/device/jkb_test_a/config"));
	ck_assert_uint_eq(log_count("jkb_test_b is no longer configured"), 1);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_a_reload_applies_new_mqtt_settings_and_clears_a_removed_pack)
{
	struct broker b = { 0 };
	const char *b_config = "homeassistant/device/jkb_test_b/config";
	double end;
	json_t *doc;
	pid_t d;

	setup_two_packs(&b, "", "", &d);
	write_conf(&b, "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "",
		   "allow_control = true;");
	ck_assert_int_eq(kill(d, SIGHUP), 0);
	end = e2e_wall_now() + 6;
	while (find(retained(&b, "homeassistant/#"), b_config) && e2e_wall_now() < end)
		;
	ck_assert_ptr_null(find(&snap, b_config));
	doc = json_of(find(&snap, "homeassistant/device/jkb_test_battery/config"), "battery discovery");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(doc, "cmps"), "forbid_charge"));
	json_decref(doc);
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "online", 3000), "online");
	ck_assert_uint_eq(log_count("mqtt: configuration changed; reconnecting"), 1);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

/* ------------------------------------------- a simulated Bluetooth pack */

#define SIM_ADDR "20:21:11:00:00:02"

static bool log_has(const char *name, const char *what)
{
	static char line[4096];
	bool found = false;
	FILE *f = fopen(path_in(name), "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void wait_log(const char *name, const char *what, unsigned ms)
{
	double end = e2e_wall_now() + ms / 1000.0;

	while (!log_has(name, what) && e2e_wall_now() < end)
		e2e_sleep_ms(50);
	ck_assert_msg(log_has(name, what), "%s: no '%s' within %u ms", name, what, ms);
}

/* A private D-Bus bus with `jkbms sim` as org.bluez on it (test_ble.c). */
static void start_bluez_look_alike(pid_t *bus, pid_t *sim)
{
	const char *jkbms = getenv("JKBMS") && *getenv("JKBMS") ? getenv("JKBMS") : "build/jkbms";
	char address[128], cmd[512];
	FILE *f;

	snprintf(address, sizeof(address), "unix:path=%s/bus", dir);
	f = fopen(path_in("bus.conf"), "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
		" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		"<busconfig><type>session</type><listen>%s</listen><auth>EXTERNAL</auth>\n"
		"<policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>"
		"<allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n", address);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "exec dbus-daemon --config-file=%s --nofork --nopidfile", path_in("bus.conf"));
	*bus = spawn(cmd, path_in("dbus.log"));
	for (unsigned i = 0; i < 100 && access(path_in("bus"), F_OK) != 0; i++)
		e2e_sleep_ms(20);
	ck_assert_msg(access(path_in("bus"), F_OK) == 0, "dbus-daemon did not come up");
	setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1);
	f = fopen(path_in("sim.conf"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("sim_packs = ( { address = \"" SIM_ADDR "\"; name = \"JK_PB2A16S20P\"; protocol = \"jk02_32s\";\n"
	      "  cells = 16; capacity_ah = 200.0; soc = 80.0; current = 0.0; temperature = 25.0; } );\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "exec %s sim -c %s < /dev/null", jkbms, path_in("sim.conf"));
	*sim = spawn(cmd, path_in("sim.log"));
	wait_log("sim.log", "serving", 5000);
}

static json_t *pack_state_when(const struct broker *b, const char *topic, const char *key, const char *want,
			       unsigned ms)
{
	double end = e2e_wall_now() + ms / 1000.0;
	json_t *doc = NULL;

	do {
		const char *payload = find(retained(b, topic), topic);

		json_decref(doc);
		doc = payload ? json_loads(payload, 0, NULL) : NULL;
		if (doc && json_is_string(json_object_get(doc, key)) && strcmp(jstr(doc, key), want) == 0)
			return doc;
	} while (e2e_wall_now() < end);
	ck_abort_msg("%s: %s never became %s", topic, key, want);
	return doc;
}

START_TEST(test_a_switch_from_home_assistant_reaches_a_bluetooth_pack_and_shows_what_it_reports)
{
	const char *state = "jkbridged/pack/p32/state";
	struct broker b = { 0 };
	pid_t bus, sim, d;
	json_t *doc;

	make_dir();
	broker_start(&b);
	start_bluez_look_alike(&bus, &sim);
	d = start_daemon(write_conf(&b, "{ name = \"p32\"; address = \"" SIM_ADDR "\"; }",
				    "startup_timeout = 20;", "allow_control = true;"));
	wait_log("daemon.log", "pack p32: streaming", 15000);
	doc = pack_state_when(&b, state, "charging_switch", "ON", 5000);
	json_decref(doc);
	doc = json_of(find(retained(&b, "homeassistant/#"), "homeassistant/device/jkbridged_202111000002/config"),
		      "the Bluetooth pack's discovery");
	ck_assert_str_eq(jstr(json_object_get(doc, "dev"), "via_device"), "jkb_test");
	json_decref(doc);

	mqtt_pub(&b, "jkbridged/pack/p32/charging/set", "OFF");
	doc = pack_state_when(&b, state, "charging_switch", "OFF", 8000);	/* the settings frame says so */
	json_decref(doc);
	wait_log("sim.log", SIM_ADDR ": command received: 0x1D charging switch off", 1000);
	ck_assert_uint_eq(log_count("pack p32: charging switch off, from Home Assistant"), 1);
	doc = json_of(wait_retained(&b, "jkbridged/pack/p32/link", NULL, 1000), "link");
	ck_assert_str_eq(jstr(doc, "link"), "ON");
	json_decref(doc);
	stop_daemon(d);
	kill(sim, SIGTERM);
	waitpid(sim, NULL, 0);
	kill(bus, SIGTERM);
	waitpid(bus, NULL, 0);
	broker_stop(&b);
}
END_TEST

static void run(const char *cmd)
{
	char full[2048];

	snprintf(full, sizeof(full), "cd %s && %s >> tls.log 2>&1", dir, cmd);
	ck_assert_msg(system(full) == 0, "failed: %s (see %s/tls.log)", cmd, dir);
}

START_TEST(test_tls_with_a_password)
{
	struct broker b = { 0 };
	FILE *f;
	pid_t d;

	make_dir();
	write_capture(&pack_a);
	if (system("command -v openssl > /dev/null") != 0)
		ck_abort_msg("the openssl command is missing: add the package openssl to scripts/install-deps");
	run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
	    "-subj /CN=jkb-test-ca -keyout ca.key -out ca.crt");
	run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 "
	    "-keyout server.key -out server.csr");
	run("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
	    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
	    "-extfile san.ext -out server.crt");
	run("mosquitto_passwd -b -c broker.pw bms 's3cret-Pw' && chmod 644 broker.pw server.key");
	f = fopen(path_in("client.pw"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("s3cret-Pw\n", f);
	fclose(f);
	snprintf(b.extra, sizeof(b.extra), "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
		 "password_file %s/broker.pw\nallow_anonymous false", dir, dir, dir, dir);
	snprintf(b.client_args, sizeof(b.client_args), "--cafile %s/ca.crt -u bms -P s3cret-Pw", dir);
	broker_start(&b);
	d = start_daemon(write_conf(&b, "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "",
				    "username = \"bms\"; password_file = \"client.pw\"; cafile = \"ca.crt\";"));
	ck_assert_str_eq(wait_retained(&b, "jkbridged/status", "online", 6000), "online");
	ck_assert_msg(wait_retained(&b, "jkbridged/pack/a/state", NULL, 3000), "no state over TLS");
	ck_assert_uint_eq(log_count("(TLS)"), 2);	/* the set-up line and the connect line */
	ck_assert_uint_eq(log_count("s3cret"), 0);
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

START_TEST(test_a_wrong_password_is_retried_with_back_off_never_an_exit)
{
	struct broker b = { 0 };
	FILE *f;
	pid_t d;

	make_dir();
	write_capture(&pack_a);
	run("mosquitto_passwd -b -c broker.pw bms right && chmod 644 broker.pw");
	f = fopen(path_in("client.pw"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("wrong\n", f);
	fclose(f);
	snprintf(b.extra, sizeof(b.extra), "password_file %s/broker.pw\nallow_anonymous false", dir);
	broker_start(&b);
	d = start_daemon(write_conf(&b, "{ name = \"a\"; replay = \"a.hex\"; loop = true; speed = 10.0; }", "",
				    "username = \"bms\"; password_file = \"client.pw\";"));
	e2e_sleep_ms(4000);
	ck_assert_uint_eq(log_count("mqtt: cannot connect to 127.0.0.1"), 1);	/* once, not per attempt */
	ck_assert_int_gt(last_ccl(), 0);	/* the inverter does not care */
	stop_daemon(d);
	broker_stop(&b);
}
END_TEST

TCase *tcase_mqtt(void)
{
	TCase *tc = tcase_create("mqtt");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_discovery_is_golden_and_states_carry_the_replayed_values);
	tcase_add_test(tc, test_the_will_says_offline_after_kill_9);
	tcase_add_test(tc, test_reconnects_and_publishes_discovery_again_after_the_broker_restarts);
	tcase_add_test(tc, test_home_assistant_birth_brings_discovery_again_after_a_delay);
	tcase_add_test(tc, test_malformed_command_is_ignored_and_logged_once_control_works_and_persists);
	tcase_add_test(tc, test_control_is_refused_while_disabled);
	tcase_add_test(tc, test_a_stale_pack_is_shown_unavailable);
	tcase_add_test(tc, test_a_pack_removed_from_the_configuration_is_cleared);
	tcase_add_test(tc, test_a_reload_applies_new_mqtt_settings_and_clears_a_removed_pack);
	tcase_add_test(tc, test_a_switch_from_home_assistant_reaches_a_bluetooth_pack_and_shows_what_it_reports);
	tcase_add_test(tc, test_tls_with_a_password);
	tcase_add_test(tc, test_a_wrong_password_is_retried_with_back_off_never_an_exit);
	return tc;
}
