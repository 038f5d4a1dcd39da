/*
 * cfg: a good file loads with the defaults filled in; every kind of bad
 * file is refused with file:line messages, all of them at once; the
 * effective configuration prints as tests/golden/cfg_print.conf
 * (`make golden` rewrites it after a deliberate change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bank.h"
#include "cfg.h"
#include "tests.h"

static char dir[] = "/tmp/jkb-cfg-XXXXXX";
static struct cfg cfg;
static struct cfg_diags diags;

static const char *write_conf(const char *name, const char *text)
{
	static char path[256];
	static bool made;	/* not "ends in X": mkdtemp() may well put an X there */
	FILE *f;

	if (!made)
		ck_assert_ptr_nonnull(mkdtemp(dir));
	made = true;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char good[] =
	"state_dir = \"/var/lib/jkbridged\";\n"
	"packs = ( { name = \"top\"; replay = \"top.hex\"; loop = false; speed = 1.0; },\n"
	"          { name = \"bottom\"; address = \"c8:47:8c:e1:e2:aa\"; protocol = \"jk02_32s\"; } );\n"
	"battery = { chemistry = \"lfp\"; cells = 16; min_packs = 1; stale_after = 30;\n"
	"            max_charge_current = 100.0; max_discharge_current = 150; };\n"
	"can = { interface = \"log:-\"; profile = \"pylon\"; };\n";

START_TEST(test_good_file_loads_with_defaults)
{
	const char *path = write_conf("good.conf", good);
	struct bank_config bc;

	ck_assert_int_eq(cfg_load(path, &cfg, &diags), 0);
	ck_assert_uint_eq(diags.n, 0);
	ck_assert_uint_eq(cfg.npacks, 2);
	ck_assert_str_eq(cfg.packs[1].address, "C8:47:8C:E1:E2:AA");
	ck_assert_int_eq(cfg.packs[1].protocol, JK_PROTO_JK02_32S);
	ck_assert_ptr_nonnull(strstr(cfg.packs[0].replay, "/top.hex"));
	ck_assert_uint_eq(cfg.battery.max_charge_ma, 100000);
	ck_assert_uint_eq(cfg.battery.max_discharge_ma, 150000);
	ck_assert_uint_eq(cfg.battery.stale_after_ms, 30000);
	ck_assert_uint_eq(cfg.charge.bulk_cell_mv, 3450);
	ck_assert_uint_eq(cfg.charge.cells, 16);
	ck_assert_uint_eq(cfg.charge.max_charge_ma, 100000);
	ck_assert_int_eq(cfg.can.profile, CANMSG_PYLON);
	cfg_bank_config(&cfg, &bc);
	ck_assert_uint_eq(bc.fallback_charge_ma, 50000);
	ck_assert_uint_eq(bc.stale_after_ms, 30000);
}
END_TEST

struct bad_case {
	const char *text;
	const char *want;	/* a piece of the message, with its line */
};

START_TEST(test_bad_files_are_refused_with_line_numbers)
{
	static const struct bad_case cases[] = {
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nbatery = { };\n", ":2: unknown key 'batery'" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; colour = 1; } );\n", ":1: unknown key 'colour' in pack" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nbattery = {\n cells = \"16\"; };\n", ":3: cells must be a whole number" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nbattery = { cells = 99; };\n", ":2: cells = 99 is out of range" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\ncharge = {\n\n bulk_cell_voltage = 3.70; };\n", ":4: bulk_cell_voltage 3.700 V is at or above the cell OVP 3.650 V" },
		{ "packs = ( { name = \"a\"; address = \"C8:47:8C:00:00:01\"; },\n { name = \"b\"; address = \"c8:47:8c:00:00:01\"; } );\n", ":2: pack 'b': address C8:47:8C:00:00:01 is pack 'a''s too" },
		{ "packs = ( { name = \"a\"; address = \"C8:47:8C\"; } );\n", "is not of the form" },
		{ "packs = ( { name = \"a\"; } );\n", "give exactly one of address or replay" },
		{ "packs = ( );\n", "at least one pack" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\ncan = { profile = \"deye\"; };\n", ":2: profile: 'deye' is not one of" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nbattery = { cells = ; };\n", ":2: syntax error" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nbattery = { min_packs = 2; };\n", "min_packs 2 is more than the 1 packs" },
		{ "packs = ( { name = \"a b\"; replay = \"x\"; } );\n", "name must be set" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = { port = 70000; };\n", ":2: port = 70000 is out of range" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = {\n base_topic = \"bms/#\"; };\n", ":3: base_topic 'bms/#' must be a topic" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = { password_file = \"/etc/pw\"; };\n", ":2: password_file needs a username" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = { cafile = \"ca\"; certfile = \"c\"; };\n", "certfile and keyfile go together" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = { allow_control = 1; };\n", ":2: allow_control must be true or false" },
		{ "packs = ( { name = \"a\"; replay = \"x\"; } );\nmqtt = { client_id = \"my pi\"; };\n", "client_id 'my pi': letters" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		const char *path;
		bool found = false;

		snprintf(name, sizeof(name), "bad%zu.conf", i);
		path = write_conf(name, cases[i].text);
		ck_assert_msg(cfg_load(path, &cfg, &diags) < 0, "case %zu accepted", i);
		for (unsigned k = 0; k < diags.n && k < CFG_MAX_DIAGS; k++) {
			found |= strstr(diags.msg[k], cases[i].want) != NULL;
			ck_assert_msg(strncmp(diags.msg[k], path, strlen(path)) == 0,
				      "case %zu: '%s' does not start with the file name", i, diags.msg[k]);
		}
		ck_assert_msg(found, "case %zu: no '%s' in '%s'", i, cases[i].want, diags.n ? diags.msg[0] : "");
	}
}
END_TEST

START_TEST(test_mqtt_is_off_by_default_and_its_files_resolve_beside_the_config)
{
	const char *path = write_conf("off.conf", "packs = ( { name = \"a\"; replay = \"x\"; } );\n");

	ck_assert_int_eq(cfg_load(path, &cfg, &diags), 0);
	ck_assert_str_eq(cfg.mqtt.host, "");
	ck_assert(!cfg.mqtt.allow_control);
	ck_assert_str_eq(cfg.mqtt.base_topic, "jkbridged");
	ck_assert_str_eq(cfg.mqtt.discovery_prefix, "homeassistant");
	ck_assert_uint_eq(cfg.mqtt.port, 1883);

	path = write_conf("mqtt.conf",
		"packs = ( { name = \"a\"; replay = \"x\"; } );\n"
		"mqtt = { host = \"broker.lan\"; username = \"bms\"; password_file = \"mqtt.pw\";\n"
		"         cafile = \"/etc/ssl/ca.pem\"; interval = 10; allow_control = true; };\n");
	ck_assert_int_eq(cfg_load(path, &cfg, &diags), 0);
	ck_assert_str_eq(cfg.mqtt.host, "broker.lan");
	ck_assert_ptr_nonnull(strstr(cfg.mqtt.password_file, dir));
	ck_assert_str_eq(cfg.mqtt.cafile, "/etc/ssl/ca.pem");
	ck_assert_uint_eq(cfg.mqtt.interval_ms, 10000);
	ck_assert(cfg.mqtt.allow_control);
}
END_TEST

START_TEST(test_every_problem_is_reported_not_just_the_first)
{
	const char *path = write_conf("many.conf",
		"packs = ( { name = \"a\"; replay = \"x\"; } );\n"
		"battery = { cells = 0; stale_after = -1; };\n"
		"can = { interface = 5; speed = 1; };\n");

	ck_assert_int_lt(cfg_load(path, &cfg, &diags), 0);
	ck_assert_uint_eq(diags.n, 4);
}
END_TEST

START_TEST(test_missing_file_is_a_clear_error)
{
	ck_assert_int_lt(cfg_load("/nonexistent/jkbridged.conf", &cfg, &diags), 0);
	ck_assert_uint_eq(diags.n, 1);
	ck_assert_ptr_nonnull(strstr(diags.msg[0], "/nonexistent/jkbridged.conf"));
}
END_TEST

/* The printed configuration; `normalised` replaces the temporary folder. */
static char *printed(const char *path, bool normalised)
{
	static char buf[16384];
	char *out = NULL, *p;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_int_eq(cfg_load(path, &cfg, &diags), 0);
	ck_assert_int_eq(cfg_print(&cfg, f), 0);
	fclose(f);
	snprintf(buf, sizeof(buf), "%s", out);
	free(out);
	while (normalised && (p = strstr(buf, dir)) != NULL) {
		memcpy(p, "TMPDIR", 6);
		memmove(p + 6, p + strlen(dir), strlen(p + strlen(dir)) + 1);
	}
	return buf;
}

START_TEST(test_print_matches_golden_and_loads_back)
{
	const char *path = write_conf("print.conf", good);
	char *text = printed(path, true), *again;
	static char golden[16384];
	const char *update = getenv("JKB_UPDATE_GOLDEN");
	FILE *f;
	size_t n;

	if (update && *update) {
		f = fopen("tests/golden/cfg_print.conf", "w");
		ck_assert_ptr_nonnull(f);
		fputs(text, f);
		fclose(f);
	}
	f = fopen("tests/golden/cfg_print.conf", "r");
	ck_assert_msg(f != NULL, "tests/golden/cfg_print.conf missing (make golden)");
	n = fread(golden, 1, sizeof(golden) - 1, f);
	golden[n] = '\0';
	fclose(f);
	ck_assert_str_eq(text, golden);

	/* What -n -v prints is itself a valid configuration with the same meaning. */
	path = write_conf("print-again.conf", printed(path, false));
	again = printed(path, true);
	ck_assert_str_eq(again, golden);
}
END_TEST

TCase *tcase_cfg(void)
{
	TCase *tc = tcase_create("cfg");

	tcase_add_test(tc, test_good_file_loads_with_defaults);
	tcase_add_test(tc, test_bad_files_are_refused_with_line_numbers);
	tcase_add_test(tc, test_mqtt_is_off_by_default_and_its_files_resolve_beside_the_config);
	tcase_add_test(tc, test_every_problem_is_reported_not_just_the_first);
	tcase_add_test(tc, test_missing_file_is_a_clear_error);
	tcase_add_test(tc, test_print_matches_golden_and_loads_back);
	return tc;
}
