/*
 * ha: the discovery documents are the golden files tests/golden/ha_*.json
 * (`make golden` rewrites them after a deliberate change; test_mqtt.c
 * checks that the daemon publishes the same ones), ids do not move when
 * packs are reordered, states carry the sample's values in HA's units,
 * a stale pack is unavailable, and commands are exactly "ON" or "OFF" on a
 * known topic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"
#include "tests.h"


/* The configuration test_mqtt.c runs the daemon with (client_id "jkb-test",
 * interval 1 s, 16 cells, control allowed); the version is left out of the
 * golden files so that a release does not rewrite them. */
static const struct ha_config cfg = {
	.discovery_prefix = "homeassistant", .base_topic = "jkbridged", .bridge_id = "jkb_test",
	.bridge_name = "jkb-test", .version = "VERSION", .expire_after_s = 30, .cells = 16,
	.allow_control = true,
};

static struct bank_pack bank_a, bank_b;
static struct battery bat;
static struct charge_output out;
static struct energy_meter energy_a = { .charged_mwh = 1234567, .discharged_mwh = 89 };
static const struct jk_device_info info_a = { .model = "JK_PB2A16S20P", .hw_version = "15A",
					       .sw_version = "15.38" };

/* Pack a as test_mqtt.c replays it: JK02_32S, 16 × 3.300 V, -10.5 A, 60 % of 280 Ah. */
static void fill_view(struct ha_view *v)
{
	struct jk_sample *s = &bank_a.sample;

	memset(&bank_a, 0, sizeof(bank_a));
	bank_a.have_sample = true;
	*s = (struct jk_sample){
		.protocol = JK_PROTO_JK02_32S, .cell_count = 16, .cell_mask = 0xFFFF, .voltage_mv = 52800,
		.current_ma = -10500, .soc_pct = 60, .soh_pct = 100, .capacity_mah = 280000,
		.remaining_mah = 168000, .cycles = 12, .temp_count = 5, .mos_temp_dc = 300,
		.temps_dc = { 250, 251, JK_TEMP_ABSENT_DC, JK_TEMP_ABSENT_DC, JK_TEMP_ABSENT_DC },
		.charging_enabled = true, .discharging_enabled = false, .balancing = JK_BALANCE_CHARGE,
		.has = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_SOH | JK_HAS_TEMPS |
		       JK_HAS_MOS_TEMP | JK_HAS_ERRORS | JK_HAS_MOSFETS,
	};
	for (unsigned i = 0; i < 16; i++)
		s->cells_mv[i] = (uint16_t)(3300 + (i == 4 ? 12 : 0) - (i == 9 ? 7 : 0));
	bank_a.have_settings = true;
	bank_a.settings = (struct jk_settings){ .protocol = JK_PROTO_JK02_32S, .charging_switch = true,
						.discharging_switch = false, .balancer_switch = true };
	memset(&bank_b, 0, sizeof(bank_b));
	bat = (struct battery){ .ready = true, .packs_configured = 2, .packs_fresh = 1, .voltage_mv = 52800,
				.current_ma = -10500, .soc_centi_pct = 6000, .soh_pct = 100,
				.capacity_mah = 280000, .remaining_mah = 168000, .cell_min_mv = 3293,
				.cell_max_mv = 3312, .have_temps = true, .temp_min_dc = 250, .temp_max_dc = 251,
				.warnings = BANK_ALARM_SYSTEM | BANK_ALARM_IMBALANCE };
	out = (struct charge_output){ .transmit = true, .state = CHARGE_BULK, .cvl_mv = 55200, .ccl_ma = 90000,
				      .dcl_ma = 140000, .charge_enable = true, .discharge_enable = true,
				      .soc_pct = 60, .soh_pct = 100 };
	*v = (struct ha_view){
		.bridge = { .can_state = "log", .can_sent = 1000, .inverter_alive = false, .uptime_s = 77 },
		.battery = { .bat = &bat, .out = &out, .energy = &energy_a, .forbid_discharge = true },
		.npacks = 2,
		.packs = {
			{ .name = "a", .address = "", .fresh = true, .bank = &bank_a, .info = &info_a,
			  .protocol = JK_PROTO_JK02_32S, .energy = &energy_a,
			  .link = { .connected = true, .frames = 40, .bad_checksums = 2 } },
			{ .name = "rack-top", .address = "C8:47:8C:E1:E2:AA", .fresh = false, .bank = &bank_b },
		},
	};
}

static void check_golden(const char *name, const json_t *doc)
{
	char path[128], *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS), *golden = NULL;
	const char *update = getenv("JKB_UPDATE_GOLDEN");
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	ck_assert_ptr_nonnull(text);
	snprintf(path, sizeof(path), "tests/golden/%s", name);
	if (update && *update) {
		f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "%s\n", text);
		fclose(f);
	}
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s missing (make golden)", path);
	n = getdelim(&golden, &cap, '\0', f);
	fclose(f);
	ck_assert_int_gt(n, 0);
	if (golden[n - 1] == '\n')
		golden[n - 1] = '\0';
	ck_assert_msg(strcmp(text, golden) == 0, "%s differs from what ha builds (make golden after a deliberate change)",
		      path);
	free(text);
	free(golden);
}

START_TEST(test_discovery_documents_match_the_golden_files)
{
	struct ha_config no_control = cfg;
	struct ha_view v;
	json_t *doc;

	fill_view(&v);
	doc = ha_discovery(&cfg, &v, HA_DEV_BRIDGE);
	check_golden("ha_bridge.json", doc);
	json_decref(doc);
	doc = ha_discovery(&cfg, &v, HA_DEV_BATTERY);
	check_golden("ha_battery.json", doc);
	json_decref(doc);
	doc = ha_discovery(&cfg, &v, HA_DEV_PACK0);
	check_golden("ha_pack_replay.json", doc);
	json_decref(doc);
	no_control.allow_control = false;
	doc = ha_discovery(&no_control, &v, HA_DEV_PACK0 + 1);
	check_golden("ha_pack_ble.json", doc);
	json_decref(doc);
}
END_TEST

static const char *str_at(const json_t *doc, const char *comp, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(doc, "cmps"), comp), key));
}

START_TEST(test_ids_follow_the_address_or_the_name_never_the_position)
{
	struct ha_view v, swapped;
	char id[HA_ID_MAX], id2[HA_ID_MAX];
	json_t *a, *b;

	fill_view(&v);
	swapped = v;
	swapped.packs[0] = v.packs[1];
	swapped.packs[1] = v.packs[0];
	ha_device_id(&cfg, &v, HA_DEV_PACK0 + 1, id, sizeof(id));
	ck_assert_str_eq(id, "jkbridged_c8478ce1e2aa");
	ha_device_id(&cfg, &swapped, HA_DEV_PACK0, id2, sizeof(id2));
	ck_assert_str_eq(id, id2);
	ha_device_id(&cfg, &v, HA_DEV_PACK0, id, sizeof(id));
	ck_assert_str_eq(id, "jkb_test_a");
	ha_device_id(&cfg, &v, HA_DEV_BATTERY, id, sizeof(id));
	ck_assert_str_eq(id, "jkb_test_battery");

	a = ha_discovery(&cfg, &v, HA_DEV_PACK0 + 1);
	b = ha_discovery(&cfg, &swapped, HA_DEV_PACK0);
	ck_assert(json_equal(a, b));
	ck_assert_str_eq(str_at(a, "voltage", "uniq_id"), "jkbridged_c8478ce1e2aa_voltage");
	ck_assert_str_eq(str_at(a, "voltage", "def_ent_id"), "sensor.jkbridged_rack_top_voltage");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "dev"), "via_device")), "jkb_test");
	json_decref(a);
	json_decref(b);
}
END_TEST

/* Every entity has a unique_id and a default_entity_id, none the deprecated
 * object_id; energy is energy / total_increasing / kWh; cells start disabled. */
START_TEST(test_components_follow_the_sensor_conventions)
{
	struct ha_view v;

	fill_view(&v);
	for (unsigned dev = 0; dev < ha_devices(&v); dev++) {
		json_t *doc = ha_discovery(&cfg, &v, dev), *comp;
		const char *key;

		ck_assert_ptr_nonnull(json_object_get(doc, "o"));
		json_object_foreach(json_object_get(doc, "cmps"), key, comp) {
			ck_assert_ptr_nonnull(json_object_get(comp, "uniq_id"));
			ck_assert_ptr_nonnull(json_object_get(comp, "def_ent_id"));
			ck_assert_ptr_null(json_object_get(comp, "object_id"));
			ck_assert_ptr_null(json_object_get(comp, "obj_id"));
			if (strncmp(key, "energy_", 7) == 0) {
				ck_assert_str_eq(str_at(doc, key, "dev_cla"), "energy");
				ck_assert_str_eq(str_at(doc, key, "stat_cla"), "total_increasing");
				ck_assert_str_eq(str_at(doc, key, "unit_of_meas"), "kWh");
			}
			if (strncmp(key, "cell_", 5) == 0 && key[5] >= '0' && key[5] <= '9')
				ck_assert(json_is_false(json_object_get(comp, "en")));
		}
		json_decref(doc);
	}
}
END_TEST

START_TEST(test_without_control_there_is_no_switch)
{
	struct ha_config no_control = cfg;
	struct ha_view v;

	fill_view(&v);
	no_control.allow_control = false;
	for (unsigned dev = 0; dev < ha_devices(&v); dev++) {
		json_t *doc = ha_discovery(&no_control, &v, dev), *comp;
		const char *key;

		json_object_foreach(json_object_get(doc, "cmps"), key, comp) {
			ck_assert_str_ne(json_string_value(json_object_get(comp, "p")), "switch");
			ck_assert_ptr_null(json_object_get(comp, "cmd_t"));
		}
		json_decref(doc);
	}
}
END_TEST

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_number(v), "%s is not a number", key);
	return json_number_value(v);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	ck_assert_msg(s != NULL, "%s is not a string", key);
	return s;
}

START_TEST(test_pack_state_carries_the_sample_in_ha_units)
{
	struct ha_view v;
	json_t *s, *l;

	fill_view(&v);
	s = ha_state(&cfg, &v, HA_DEV_PACK0);
	ck_assert_double_eq_tol(num(s, "voltage"), 52.8, 1e-9);
	ck_assert_double_eq_tol(num(s, "current"), -10.5, 1e-9);
	ck_assert_double_eq_tol(num(s, "power"), -554.4, 1e-9);
	ck_assert_double_eq_tol(num(s, "soc"), 60, 1e-9);
	ck_assert_double_eq_tol(num(s, "cell_min"), 3.293, 1e-9);
	ck_assert_double_eq_tol(num(s, "cell_max"), 3.312, 1e-9);
	ck_assert_double_eq_tol(num(s, "cell_delta"), 0.019, 1e-9);
	ck_assert_double_eq_tol(num(s, "temp_2"), 25.1, 1e-9);
	ck_assert(json_is_null(json_object_get(s, "temp_3")));
	ck_assert_double_eq_tol(num(s, "temp_mos"), 30.0, 1e-9);
	ck_assert_double_eq_tol(num(s, "capacity"), 280.0, 1e-9);
	ck_assert_double_eq_tol(num(s, "remaining"), 168.0, 1e-9);
	ck_assert_double_eq_tol(num(s, "energy_charged"), 1.234567, 1e-12);
	ck_assert_str_eq(str(s, "charging_mos"), "ON");
	ck_assert_str_eq(str(s, "discharging_mos"), "OFF");
	ck_assert_str_eq(str(s, "balancing"), "ON");
	ck_assert_str_eq(str(s, "charging_switch"), "ON");
	ck_assert_str_eq(str(s, "discharging_switch"), "OFF");
	ck_assert_str_eq(str(s, "alarm"), "OFF");
	ck_assert_uint_eq(json_array_size(json_object_get(s, "cells")), 16);
	ck_assert_double_eq_tol(json_number_value(json_array_get(json_object_get(s, "cells"), 4)), 3.312, 1e-9);
	json_decref(s);

	/* No settings frame yet: the switch state is unknown, not guessed. */
	bank_a.have_settings = false;
	s = ha_state(&cfg, &v, HA_DEV_PACK0);
	ck_assert(json_is_null(json_object_get(s, "charging_switch")));
	json_decref(s);

	l = ha_link_state(&cfg, &v, 0);
	ck_assert_str_eq(str(l, "link"), "ON");
	ck_assert(json_is_null(json_object_get(l, "rssi")));
	ck_assert_double_eq(num(l, "bad_checksums"), 2);
	json_decref(l);
}
END_TEST

START_TEST(test_published_reals_keep_their_short_form)
{
	struct ha_view v;
	json_t *s;
	char *text;

	fill_view(&v);
	s = ha_state(&cfg, &v, HA_DEV_PACK0);
	text = json_dumps(s, HA_JSON_FLAGS);
	ck_assert_ptr_nonnull(strstr(text, "\"voltage\":52.8,"));
	ck_assert_ptr_nonnull(strstr(text, "\"current\":-10.5,"));
	ck_assert_ptr_nonnull(strstr(text, "\"cell_max\":3.312,"));
	free(text);
	json_decref(s);
}
END_TEST

START_TEST(test_battery_state_and_alarms)
{
	struct ha_view v;
	json_t *s;

	fill_view(&v);
	s = ha_state(&cfg, &v, HA_DEV_BATTERY);
	ck_assert_double_eq_tol(num(s, "cvl"), 55.2, 1e-9);
	ck_assert_double_eq_tol(num(s, "ccl"), 90.0, 1e-9);
	ck_assert_double_eq_tol(num(s, "dcl"), 140.0, 1e-9);
	ck_assert_str_eq(str(s, "charge_state"), "bulk");
	ck_assert_str_eq(str(s, "protection"), "OFF");
	ck_assert_str_eq(str(s, "warning"), "ON");
	ck_assert_str_eq(str(s, "alarms"), "system, imbalance");
	ck_assert_str_eq(str(s, "forbid_charge"), "OFF");
	ck_assert_str_eq(str(s, "forbid_discharge"), "ON");
	ck_assert_double_eq(num(s, "packs_fresh"), 1);
	json_decref(s);
}
END_TEST

START_TEST(test_a_stale_pack_or_an_empty_battery_is_unavailable)
{
	struct ha_view v;

	fill_view(&v);
	ck_assert(ha_available(&v, HA_DEV_BRIDGE));
	ck_assert(ha_available(&v, HA_DEV_BATTERY));
	ck_assert(ha_available(&v, HA_DEV_PACK0));
	ck_assert(!ha_available(&v, HA_DEV_PACK0 + 1));	/* never reported */
	v.packs[0].fresh = false;
	ck_assert(!ha_available(&v, HA_DEV_PACK0));
	bat.packs_fresh = 0;
	ck_assert(!ha_available(&v, HA_DEV_BATTERY));
}
END_TEST

START_TEST(test_topics)
{
	struct ha_view v;
	char t[HA_TOPIC_MAX], filters[HA_COMMAND_FILTERS][HA_TOPIC_MAX];

	fill_view(&v);
	ha_topic(&cfg, &v, HA_DEV_PACK0 + 1, HA_TOPIC_DISCOVERY, t, sizeof(t));
	ck_assert_str_eq(t, "homeassistant/device/jkbridged_c8478ce1e2aa/config");
	ha_topic(&cfg, &v, HA_DEV_PACK0 + 1, HA_TOPIC_STATE, t, sizeof(t));
	ck_assert_str_eq(t, "jkbridged/pack/rack-top/state");
	ha_topic(&cfg, &v, HA_DEV_PACK0, HA_TOPIC_AVAILABILITY, t, sizeof(t));
	ck_assert_str_eq(t, "jkbridged/pack/a/availability");
	ha_topic(&cfg, &v, HA_DEV_PACK0, HA_TOPIC_LINK, t, sizeof(t));
	ck_assert_str_eq(t, "jkbridged/pack/a/link");
	ha_topic(&cfg, &v, HA_DEV_BRIDGE, HA_TOPIC_AVAILABILITY, t, sizeof(t));
	ck_assert_str_eq(t, "jkbridged/status");
	ha_topic(&cfg, &v, HA_DEV_BATTERY, HA_TOPIC_AVAILABILITY, t, sizeof(t));
	ck_assert_str_eq(t, "jkbridged/battery/availability");
	ha_command_filters(&cfg, filters);
	ck_assert_str_eq(filters[0], "jkbridged/pack/+/+/set");
	ck_assert_str_eq(filters[1], "jkbridged/battery/+/set");
	ck_assert_uint_eq(ha_expire_after(1000), 30);
	ck_assert_uint_eq(ha_expire_after(60000), 180);
}
END_TEST

struct command_case {
	const char *topic;
	const char *payload;
	enum ha_command_result result;
	enum ha_command_kind kind;
	unsigned pack;
	enum jk_switch sw;
	bool on;
};

START_TEST(test_commands_are_exactly_on_or_off_on_a_known_topic)
{
	static const struct command_case cases[] = {
		{ .topic = "jkbridged/pack/a/charging/set", .payload = "ON",
		  .result = HA_COMMAND_OK, .kind = HA_CMD_PACK_SWITCH, .sw = JK_SWITCH_CHARGING, .on = true },
		{ .topic = "jkbridged/pack/rack-top/balancer/set", .payload = "OFF",
		  .result = HA_COMMAND_OK, .kind = HA_CMD_PACK_SWITCH, .pack = 1, .sw = JK_SWITCH_BALANCER, },
		{ .topic = "jkbridged/pack/a/discharging/set", .payload = "OFF",
		  .result = HA_COMMAND_OK, .kind = HA_CMD_PACK_SWITCH, .sw = JK_SWITCH_DISCHARGING, },
		{ .topic = "jkbridged/battery/forbid_charge/set", .payload = "ON",
		  .result = HA_COMMAND_OK, .kind = HA_CMD_FORBID_CHARGE, .on = true },
		{ .topic = "jkbridged/battery/forbid_discharge/set", .payload = "OFF",
		  .result = HA_COMMAND_OK, .kind = HA_CMD_FORBID_DISCHARGE },
		{ .topic = "jkbridged/battery/forbid_charge/set", .payload = "on",
		  .result = HA_COMMAND_BAD_PAYLOAD },
		{ .topic = "jkbridged/battery/forbid_charge/set", .payload = "ON ",
		  .result = HA_COMMAND_BAD_PAYLOAD },
		{ .topic = "jkbridged/battery/forbid_charge/set", .payload = "",
		  .result = HA_COMMAND_BAD_PAYLOAD },
		{ .topic = "jkbridged/battery/forbid_charge/set", .payload = "{\"state\": \"ON\"}",
		  .result = HA_COMMAND_BAD_PAYLOAD },
		{ .topic = "jkbridged/pack/a/charging/set", .payload = "1",
		  .result = HA_COMMAND_BAD_PAYLOAD },
		{ .topic = "jkbridged/pack/nope/charging/set", .payload = "ON",
		  .result = HA_COMMAND_UNKNOWN },
		{ .topic = "jkbridged/pack/a/heater/set", .payload = "ON",
		  .result = HA_COMMAND_UNKNOWN },
		{ .topic = "jkbridged/pack/a/set", .payload = "ON", .result = HA_COMMAND_UNKNOWN },
		{ .topic = "jkbridged/pack//set", .payload = "ON", .result = HA_COMMAND_UNKNOWN },
		{ .topic = "jkbridged/battery/charge/set", .payload = "ON",
		  .result = HA_COMMAND_UNKNOWN },
		{ .topic = "jkbridged/pack/a/state", .payload = "ON",
		  .result = HA_COMMAND_NOT_A_COMMAND },
		{ .topic = "jkbridged/status", .payload = "online",
		  .result = HA_COMMAND_NOT_A_COMMAND },
		{ .topic = "homeassistant/status", .payload = "online",
		  .result = HA_COMMAND_NOT_A_COMMAND },
		{ .topic = "jkbridgedx/battery/forbid_charge/set", .payload = "ON",
		  .result = HA_COMMAND_NOT_A_COMMAND },
	};
	struct ha_view v;

	fill_view(&v);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct command_case *c = &cases[i];
		struct ha_command cmd;
		enum ha_command_result r = ha_command_parse(&cfg, &v, c->topic, c->payload, strlen(c->payload), &cmd);

		ck_assert_msg(r == c->result, "case %zu (%s '%s'): %d, not %d", i, c->topic, c->payload, r, c->result);
		if (r != HA_COMMAND_OK)
			continue;
		ck_assert_int_eq(cmd.kind, c->kind);
		ck_assert_int_eq(cmd.on, c->on);
		if (cmd.kind == HA_CMD_PACK_SWITCH) {
			ck_assert_uint_eq(cmd.pack, c->pack);
			ck_assert_int_eq(cmd.sw, c->sw);
		}
	}
}
END_TEST

START_TEST(test_a_dropped_component_is_first_reduced_to_its_platform)
{
	struct ha_config no_control = cfg;
	struct ha_view v;
	json_t *before, *after, *was, *now, *gone, *removing, *comp;
	const char *key;

	fill_view(&v);
	no_control.allow_control = false;
	before = ha_discovery(&cfg, &v, HA_DEV_PACK0);
	after = ha_discovery(&no_control, &v, HA_DEV_PACK0);
	was = ha_components(before);
	now = ha_components(after);
	gone = json_object();
	json_object_foreach(was, key, comp)
		if (!json_object_get(now, key))
			json_object_set(gone, key, comp);
	ck_assert_uint_eq(json_object_size(gone), 3);	/* the three switches */
	removing = ha_discovery_removing(after, gone);
	comp = json_object_get(json_object_get(removing, "cmps"), "balancer");
	ck_assert_uint_eq(json_object_size(comp), 1);
	ck_assert_str_eq(json_string_value(json_object_get(comp, "p")), "switch");
	ck_assert(json_equal(json_object_get(json_object_get(removing, "cmps"), "voltage"),
			     json_object_get(json_object_get(after, "cmps"), "voltage")));
	json_decref(before);
	json_decref(after);
	json_decref(was);
	json_decref(now);
	json_decref(gone);
	json_decref(removing);
}
END_TEST

START_TEST(test_make_id)
{
	char id[16];

	ha_make_id("jkbridged-Pi 4", id, sizeof(id));
	ck_assert_str_eq(id, "jkbridged_pi_4");
	ha_make_id("a-very-long-client-id", id, sizeof(id));
	ck_assert_uint_eq(strlen(id), sizeof(id) - 1);
}
END_TEST

TCase *tcase_ha(void)
{
	TCase *tc = tcase_create("ha");

	tcase_add_test(tc, test_discovery_documents_match_the_golden_files);
	tcase_add_test(tc, test_ids_follow_the_address_or_the_name_never_the_position);
	tcase_add_test(tc, test_components_follow_the_sensor_conventions);
	tcase_add_test(tc, test_without_control_there_is_no_switch);
	tcase_add_test(tc, test_pack_state_carries_the_sample_in_ha_units);
	tcase_add_test(tc, test_published_reals_keep_their_short_form);
	tcase_add_test(tc, test_battery_state_and_alarms);
	tcase_add_test(tc, test_a_stale_pack_or_an_empty_battery_is_unavailable);
	tcase_add_test(tc, test_topics);
	tcase_add_test(tc, test_commands_are_exactly_on_or_off_on_a_known_topic);
	tcase_add_test(tc, test_a_dropped_component_is_first_reduced_to_its_platform);
	tcase_add_test(tc, test_make_id);
	return tc;
}
