/*
 * ha — discovery documents and state payloads for Home Assistant (see ha.h).
 *
 * Each device's entities are one table: key (component id, unique_id suffix
 * and, unless `value` says otherwise, the state JSON key), platform, name,
 * classes and unit (landscape.md §2.8), and flags for the category, the
 * topic and the availability it uses.  A document is the device block, the
 * shared root options, and one component per row that applies; per-cell
 * sensors are generated.  Every document is built with jansson.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ha.h"

enum {
	F_DIAG = 1u << 0,	/* entity_category diagnostic */
	F_CONFIG = 1u << 1,	/* entity_category config */
	F_DISABLED = 1u << 2,	/* enabled_by_default false */
	F_LINK = 1u << 3,	/* a pack's link topic, not its state */
	F_BRIDGE_ONLY = 1u << 4,	/* available whenever the daemon is */
	F_CONTROL = 1u << 5,	/* only with allow_control */
	F_32S = 1u << 6,	/* only on JK02_32S (extra temperature sensors) */
	F_JK02 = 1u << 7,	/* not on JK04 (no charge/discharge switches) */
};

#define PRC(n) ((n) + 1)	/* suggested_display_precision; 0 = none */

struct ha_entity {
	const char *key;
	const char *platform;
	const char *name;
	const char *device_class;
	const char *state_class;
	const char *unit;
	int prc;
	const char *value;	/* state JSON key when it differs from key */
	const char *icon;
	const char *const *options;
	unsigned flags;
};

static const char *const can_states[] = { "down", "up", "bus-off", "log", NULL };
static const char *const charge_states[] = { "wait", "bulk", "cutoff", "eoc", "float", NULL };

#define SENSOR(k, n, dc, sc, u, p, fl) \
	{ .key = k, .platform = "sensor", .name = n, .device_class = dc, .state_class = sc, \
	  .unit = u, .prc = p, .flags = fl }
#define BINARY(k, n, dc, fl) \
	{ .key = k, .platform = "binary_sensor", .name = n, .device_class = dc, .flags = fl }
#define SWITCH(k, n, v, fl) \
	{ .key = k, .platform = "switch", .name = n, .value = v, .flags = F_CONFIG | F_CONTROL | (fl) }

static const struct ha_entity bridge_entities[] = {
	{ .key = "can_state", .platform = "sensor", .name = "CAN link", .device_class = "enum",
	  .options = can_states, .flags = F_DIAG },
	SENSOR("can_frames_sent", "CAN frames sent", NULL, "total_increasing", NULL, PRC(0), F_DIAG),
	SENSOR("can_frames_dropped", "CAN frames dropped", NULL, "total_increasing", NULL, PRC(0), F_DIAG),
	BINARY("inverter", "Inverter keep-alive", "connectivity", F_DIAG),
	SENSOR("packs_connected", "Packs connected", NULL, "measurement", NULL, PRC(0), F_DIAG),
	SENSOR("pack_reconnects", "Pack reconnects", NULL, "total_increasing", NULL, PRC(0), F_DIAG),
	SENSOR("uptime", "Uptime", "duration", NULL, "s", PRC(0), F_DIAG),
	{ .key = "version", .platform = "sensor", .name = "Version", .icon = "mdi:information-outline",
	  .flags = F_DIAG },
};

static const struct ha_entity battery_entities[] = {
	SENSOR("soc", "State of charge", "battery", "measurement", "%", PRC(1), 0),
	SENSOR("soc_inverter", "State of charge sent", "battery", "measurement", "%", PRC(0), F_DIAG),
	SENSOR("soh", "State of health", NULL, "measurement", "%", PRC(0), 0),
	SENSOR("voltage", "Voltage", "voltage", "measurement", "V", PRC(2), 0),
	SENSOR("current", "Current", "current", "measurement", "A", PRC(1), 0),
	SENSOR("power", "Power", "power", "measurement", "W", PRC(0), 0),
	SENSOR("cvl", "Charge voltage limit", "voltage", "measurement", "V", PRC(1), 0),
	SENSOR("ccl", "Charge current limit", "current", "measurement", "A", PRC(1), 0),
	SENSOR("dcl", "Discharge current limit", "current", "measurement", "A", PRC(1), 0),
	BINARY("charge_enable", "Charging allowed", NULL, 0),
	BINARY("discharge_enable", "Discharging allowed", NULL, 0),
	{ .key = "charge_state", .platform = "sensor", .name = "Charge state", .device_class = "enum",
	  .options = charge_states, .flags = F_BRIDGE_ONLY },
	BINARY("protection", "Protection", "problem", F_BRIDGE_ONLY),
	BINARY("warning", "Warning", "problem", F_BRIDGE_ONLY),
	{ .key = "alarms", .platform = "sensor", .name = "Alarms", .icon = "mdi:alert-outline",
	  .flags = F_DIAG | F_BRIDGE_ONLY },
	SENSOR("packs_fresh", "Packs fresh", NULL, "measurement", NULL, PRC(0), F_BRIDGE_ONLY),
	SENSOR("cell_min", "Cell voltage min", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("cell_max", "Cell voltage max", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("cell_delta", "Cell voltage delta", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("temp_min", "Temperature min", "temperature", "measurement", "°C", PRC(1), 0),
	SENSOR("temp_max", "Temperature max", "temperature", "measurement", "°C", PRC(1), 0),
	SENSOR("capacity", "Capacity", NULL, "measurement", "Ah", PRC(1), 0),
	SENSOR("remaining", "Remaining capacity", NULL, "measurement", "Ah", PRC(1), 0),
	SENSOR("energy_charged", "Energy charged", "energy", "total_increasing", "kWh", PRC(3), 0),
	SENSOR("energy_discharged", "Energy discharged", "energy", "total_increasing", "kWh", PRC(3), 0),
	SWITCH("forbid_charge", "Forbid charging", NULL, F_BRIDGE_ONLY),
	SWITCH("forbid_discharge", "Forbid discharging", NULL, F_BRIDGE_ONLY),
};

static const struct ha_entity pack_entities[] = {
	SENSOR("soc", "State of charge", "battery", "measurement", "%", PRC(0), 0),
	SENSOR("soh", "State of health", NULL, "measurement", "%", PRC(0), 0),
	SENSOR("voltage", "Voltage", "voltage", "measurement", "V", PRC(2), 0),
	SENSOR("current", "Current", "current", "measurement", "A", PRC(2), 0),
	SENSOR("power", "Power", "power", "measurement", "W", PRC(0), 0),
	SENSOR("cell_min", "Cell voltage min", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("cell_max", "Cell voltage max", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("cell_delta", "Cell voltage delta", "voltage", "measurement", "V", PRC(3), 0),
	SENSOR("temp_1", "Temperature 1", "temperature", "measurement", "°C", PRC(1), 0),
	SENSOR("temp_2", "Temperature 2", "temperature", "measurement", "°C", PRC(1), 0),
	SENSOR("temp_3", "Temperature 3", "temperature", "measurement", "°C", PRC(1), F_32S),
	SENSOR("temp_4", "Temperature 4", "temperature", "measurement", "°C", PRC(1), F_32S),
	SENSOR("temp_5", "Temperature 5", "temperature", "measurement", "°C", PRC(1), F_32S),
	SENSOR("temp_mos", "MOSFET temperature", "temperature", "measurement", "°C", PRC(1), 0),
	BINARY("charging_mos", "Charging MOSFET", NULL, 0),
	BINARY("discharging_mos", "Discharging MOSFET", NULL, 0),
	BINARY("balancing", "Balancing", NULL, 0),
	SENSOR("cycles", "Cycles", NULL, "total_increasing", NULL, PRC(0), 0),
	SENSOR("capacity", "Capacity", NULL, "measurement", "Ah", PRC(1), 0),
	SENSOR("remaining", "Remaining capacity", NULL, "measurement", "Ah", PRC(1), 0),
	SENSOR("energy_charged", "Energy charged", "energy", "total_increasing", "kWh", PRC(3), 0),
	SENSOR("energy_discharged", "Energy discharged", "energy", "total_increasing", "kWh", PRC(3), 0),
	BINARY("alarm", "BMS alarm", "problem", F_DIAG),
	SENSOR("errors", "BMS error bits", NULL, NULL, NULL, 0, F_DIAG | F_DISABLED),
	SWITCH("charging", "Charging", "charging_switch", F_JK02),
	SWITCH("discharging", "Discharging", "discharging_switch", F_JK02),
	SWITCH("balancer", "Balancer", "balancer_switch", 0),
	BINARY("link", "Link", "connectivity", F_DIAG | F_LINK | F_BRIDGE_ONLY),
	SENSOR("rssi", "Signal strength", "signal_strength", "measurement", "dBm", PRC(0),
	       F_DIAG | F_DISABLED | F_LINK | F_BRIDGE_ONLY),
	SENSOR("reconnects", "Reconnects", NULL, "total_increasing", NULL, PRC(0),
	       F_DIAG | F_LINK | F_BRIDGE_ONLY),
	SENSOR("frames", "Frames", NULL, "total_increasing", NULL, PRC(0), F_DIAG | F_LINK | F_BRIDGE_ONLY),
	SENSOR("bad_checksums", "Bad checksums", NULL, "total_increasing", NULL, PRC(0),
	       F_DIAG | F_LINK | F_BRIDGE_ONLY),
};

#define NENT(t) (sizeof(t) / sizeof((t)[0]))
#define CFG_NAME_MAX_ID 48	/* a pack name as an id part (names are at most 31) */

/* ----------------------------------------------------------- ids, topics */

void ha_make_id(const char *in, char *out, size_t n)
{
	size_t i = 0;

	if (!n)
		return;
	for (; *in && i + 1 < n; in++)
		out[i++] = isalnum((unsigned char)*in) ? (char)tolower((unsigned char)*in) : '_';
	out[i] = '\0';
}

unsigned ha_expire_after(uint32_t interval_ms)
{
	unsigned s = 3 * ((interval_ms + 999) / 1000);

	return s < HA_MIN_EXPIRE_S ? HA_MIN_EXPIRE_S : s;
}

static const struct ha_pack *pack_of(const struct ha_view *v, unsigned dev)
{
	return dev >= HA_DEV_PACK0 && dev - HA_DEV_PACK0 < v->npacks ? &v->packs[dev - HA_DEV_PACK0] : NULL;
}

void ha_device_id(const struct ha_config *c, const struct ha_view *v, unsigned dev, char *out, size_t n)
{
	const struct ha_pack *p = pack_of(v, dev);
	char part[HA_ID_MAX];

	if (dev == HA_DEV_BRIDGE) {
		snprintf(out, n, "%s", c->bridge_id);
	} else if (dev == HA_DEV_BATTERY) {
		snprintf(out, n, "%s_battery", c->bridge_id);
	} else if (p && *p->address) {
		size_t k = 0;

		for (const char *a = p->address; *a && k + 1 < sizeof(part); a++)
			if (*a != ':')
				part[k++] = (char)tolower((unsigned char)*a);
		part[k] = '\0';
		snprintf(out, n, "jkbridged_%s", part);
	} else if (p) {
		ha_make_id(p->name, part, sizeof(part));
		snprintf(out, n, "%s_%s", c->bridge_id, part);
	} else {
		snprintf(out, n, "%s", "");
	}
}

/* The part of the topic after BASE: "bridge", "battery", "pack/NAME". */
static void device_path(const struct ha_view *v, unsigned dev, char *out, size_t n)
{
	const struct ha_pack *p = pack_of(v, dev);

	snprintf(out, n, "%s%s", dev == HA_DEV_BRIDGE ? "bridge" : dev == HA_DEV_BATTERY ? "battery" : "pack/",
		 p ? p->name : "");
}

void ha_topic(const struct ha_config *c, const struct ha_view *v, unsigned dev, enum ha_topic_kind kind,
	      char *out, size_t n)
{
	char path[HA_TOPIC_MAX / 2], id[HA_ID_MAX];

	device_path(v, dev, path, sizeof(path));
	switch (kind) {
	case HA_TOPIC_DISCOVERY:
		ha_device_id(c, v, dev, id, sizeof(id));
		snprintf(out, n, "%s/device/%s/config", c->discovery_prefix, id);
		return;
	case HA_TOPIC_STATE:
		snprintf(out, n, "%s/%s/state", c->base_topic, path);
		return;
	case HA_TOPIC_AVAILABILITY:
		if (dev == HA_DEV_BRIDGE)
			snprintf(out, n, "%s/status", c->base_topic);
		else
			snprintf(out, n, "%s/%s/availability", c->base_topic, path);
		return;
	case HA_TOPIC_LINK:
		if (pack_of(v, dev))
			snprintf(out, n, "%s/%s/link", c->base_topic, path);
		else
			snprintf(out, n, "%s", "");
		return;
	}
}

/* ------------------------------------------------------------ discovery */

static json_t *availability(const struct ha_config *c, const struct ha_view *v, unsigned dev, bool bridge_only)
{
	char topic[HA_TOPIC_MAX];
	json_t *list = json_array();

	ha_topic(c, v, HA_DEV_BRIDGE, HA_TOPIC_AVAILABILITY, topic, sizeof(topic));
	json_array_append_new(list, json_pack("{s:s}", "t", topic));
	if (!bridge_only && dev != HA_DEV_BRIDGE) {
		ha_topic(c, v, dev, HA_TOPIC_AVAILABILITY, topic, sizeof(topic));
		json_array_append_new(list, json_pack("{s:s}", "t", topic));
	}
	return list;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

static json_t *device_block(const struct ha_config *c, const struct ha_view *v, unsigned dev)
{
	const struct ha_pack *p = pack_of(v, dev);
	char id[HA_ID_MAX], name[64];
	json_t *d = json_object();

	ha_device_id(c, v, dev, id, sizeof(id));
	json_object_set_new(d, "ids", json_pack("[s]", id));
	if (dev == HA_DEV_BRIDGE) {
		set_str(d, "name", c->bridge_name);
		set_str(d, "mf", "jkbridged");
		set_str(d, "mdl", "JK-BMS bridge");
		set_str(d, "sw", c->version);
		return d;
	}
	if (dev == HA_DEV_BATTERY) {
		set_str(d, "name", "Virtual battery");
		set_str(d, "mf", "jkbridged");
		set_str(d, "mdl", "Virtual battery");
		set_str(d, "sw", c->version);
	} else {
		snprintf(name, sizeof(name), "JK %s", p->name);
		set_str(d, "name", name);
		set_str(d, "mf", "Jikong");
		set_str(d, "mdl", p->info && *p->info->model ? p->info->model : "JK-BMS");
		if (p->info) {
			set_str(d, "hw", p->info->hw_version);
			set_str(d, "sw", p->info->sw_version);
			set_str(d, "sn", p->info->serial);
		}
	}
	set_str(d, "via_device", c->bridge_id);
	return d;
}

/* The prefix of default_entity_id: "jkbridged", "jkbridged_battery", "jkbridged_top". */
static void entity_prefix(const struct ha_view *v, unsigned dev, char *out, size_t n)
{
	const struct ha_pack *p = pack_of(v, dev);
	char name[CFG_NAME_MAX_ID];

	if (p) {
		ha_make_id(p->name, name, sizeof(name));
		snprintf(out, n, "jkbridged_%.*s", (int)sizeof(name), name);
	} else {
		snprintf(out, n, "%s", dev == HA_DEV_BATTERY ? "jkbridged_battery" : "jkbridged");
	}
}

static bool entity_applies(const struct ha_config *c, const struct ha_pack *p, const struct ha_entity *e)
{
	if ((e->flags & F_CONTROL) && !c->allow_control)
		return false;
	if ((e->flags & F_32S) && (!p || p->protocol != JK_PROTO_JK02_32S))
		return false;
	if ((e->flags & F_JK02) && p && p->protocol == JK_PROTO_JK04)
		return false;
	return true;
}

/* What every component gets from its row. */
static json_t *component(const struct ha_config *c, const struct ha_view *v, unsigned dev,
			 const struct ha_entity *e, const char *value_template)
{
	char id[HA_ID_MAX], text[HA_TOPIC_MAX + HA_ID_MAX];
	json_t *o = json_object();

	ha_device_id(c, v, dev, id, sizeof(id));
	set_str(o, "p", e->platform);
	set_str(o, "name", e->name);
	snprintf(text, sizeof(text), "%s_%s", id, e->key);
	set_str(o, "uniq_id", text);
	entity_prefix(v, dev, id, sizeof(id));
	snprintf(text, sizeof(text), "%s.%s_%s", e->platform, id, e->key);
	set_str(o, "def_ent_id", text);
	set_str(o, "dev_cla", e->device_class);
	set_str(o, "stat_cla", e->state_class);
	set_str(o, "unit_of_meas", e->unit);
	if (e->prc)
		json_object_set_new(o, "sug_dsp_prc", json_integer(e->prc - 1));
	set_str(o, "ent_cat", e->flags & F_DIAG ? "diagnostic" : e->flags & F_CONFIG ? "config" : NULL);
	if (e->flags & F_DISABLED)
		json_object_set_new(o, "en", json_false());
	set_str(o, "ic", e->icon);
	if (e->options) {
		json_t *ops = json_array();

		for (const char *const *op = e->options; *op; op++)
			json_array_append_new(ops, json_string(*op));
		json_object_set_new(o, "ops", ops);
	}
	if (e->flags & F_LINK) {
		ha_topic(c, v, dev, HA_TOPIC_LINK, text, sizeof(text));
		set_str(o, "stat_t", text);
	}
	if (value_template) {
		set_str(o, "val_tpl", value_template);
	} else {
		snprintf(text, sizeof(text), "{{ value_json.%s }}", e->value ? e->value : e->key);
		set_str(o, "val_tpl", text);
	}
	if (strcmp(e->platform, "switch") != 0)
		json_object_set_new(o, "exp_aft", json_integer(c->expire_after_s));
	if ((e->flags & F_BRIDGE_ONLY) && dev != HA_DEV_BRIDGE)
		json_object_set_new(o, "avty", availability(c, v, dev, true));
	if (strcmp(e->platform, "switch") == 0) {
		char path[HA_TOPIC_MAX];

		device_path(v, dev, path, sizeof(path));
		snprintf(text, sizeof(text), "%s/%s/%s/set", c->base_topic, path, e->key);
		set_str(o, "cmd_t", text);
		set_str(o, "pl_on", "ON");
		set_str(o, "pl_off", "OFF");
		json_object_set_new(o, "opt", json_false());
		json_object_set_new(o, "ret", json_false());
	}
	return o;
}

static void add_cells(const struct ha_config *c, const struct ha_view *v, unsigned dev, json_t *cmps)
{
	for (unsigned i = 0; i < c->cells && i < JK_MAX_CELLS; i++) {
		char key[16], name[16], tpl[48];
		struct ha_entity e = { .key = key, .platform = "sensor", .name = name, .device_class = "voltage",
				       .state_class = "measurement", .unit = "V", .prc = PRC(3),
				       .flags = F_DISABLED };

		snprintf(key, sizeof(key), "cell_%02u", i + 1);
		snprintf(name, sizeof(name), "Cell %u", i + 1);
		snprintf(tpl, sizeof(tpl), "{{ value_json.cells[%u] }}", i);
		json_object_set_new(cmps, key, component(c, v, dev, &e, tpl));
	}
}

json_t *ha_discovery(const struct ha_config *c, const struct ha_view *v, unsigned dev)
{
	static const struct {
		const struct ha_entity *rows;
		size_t n;
	} tables[] = {
		[HA_DEV_BRIDGE] = { bridge_entities, NENT(bridge_entities) },
		[HA_DEV_BATTERY] = { battery_entities, NENT(battery_entities) },
		[HA_DEV_PACK0] = { pack_entities, NENT(pack_entities) },
	};
	const struct ha_pack *p = pack_of(v, dev);
	unsigned t = dev < HA_DEV_PACK0 ? dev : HA_DEV_PACK0;
	char topic[HA_TOPIC_MAX];
	json_t *doc, *cmps = json_object();

	if (dev >= ha_devices(v))
		return NULL;
	doc = json_object();
	json_object_set_new(doc, "dev", device_block(c, v, dev));
	json_object_set_new(doc, "o", json_pack("{s:s, s:s}", "name", "jkbridged", "sw", c->version));
	json_object_set_new(doc, "avty", availability(c, v, dev, false));
	if (dev != HA_DEV_BRIDGE)
		json_object_set_new(doc, "avty_mode", json_string("all"));
	ha_topic(c, v, dev, HA_TOPIC_STATE, topic, sizeof(topic));
	json_object_set_new(doc, "stat_t", json_string(topic));
	json_object_set_new(doc, "qos", json_integer(1));
	for (size_t i = 0; i < tables[t].n; i++)
		if (entity_applies(c, p, &tables[t].rows[i]))
			json_object_set_new(cmps, tables[t].rows[i].key,
					    component(c, v, dev, &tables[t].rows[i], NULL));
	if (p)
		add_cells(c, v, dev, cmps);
	json_object_set_new(doc, "cmps", cmps);
	return doc;
}

json_t *ha_components(const json_t *discovery)
{
	json_t *out = json_object(), *comp;
	const char *key;

	json_object_foreach(json_object_get(discovery, "cmps"), key, comp)
		json_object_set(out, key, json_object_get(comp, "p"));
	return out;
}

json_t *ha_discovery_removing(const json_t *discovery, const json_t *gone)
{
	json_t *doc = json_deep_copy(discovery), *cmps = json_object_get(doc, "cmps"), *platform;
	const char *key;

	json_object_foreach((json_t *)gone, key, platform)
		json_object_set_new(cmps, key, json_pack("{s:O}", "p", platform));
	return doc;
}

/* --------------------------------------------------------------- states */

static json_t *milli(int64_t v)
{
	return json_real((double)v / 1000.0);
}

static json_t *tenths(int64_t v)
{
	return json_real((double)v / 10.0);
}

static json_t *on_off(bool on)
{
	return json_string(on ? "ON" : "OFF");
}

static json_t *watts(uint32_t voltage_mv, int32_t current_ma)
{
	return json_real(round((double)voltage_mv * current_ma / 1e5) / 10.0);
}

static json_t *kwh(const struct energy_meter *m, bool charged)
{
	return m ? json_real(energy_kwh(charged ? m->charged_mwh : m->discharged_mwh)) : json_null();
}

#define OR_NULL(cond, value) ((cond) ? (value) : json_null())

static void pack_cells(json_t *o, const struct ha_config *c, const struct jk_sample *s)
{
	uint16_t lo = UINT16_MAX, hi = 0;
	unsigned n = c->cells > JK_MAX_CELLS ? JK_MAX_CELLS : c->cells;
	json_t *cells = json_array();

	/* cells[i] is cell i + 1, null when the BMS has it disabled; at least
	 * the configured count, so every per-cell template has its index. */
	for (unsigned i = 0; i < JK_MAX_CELLS; i++) {
		bool on = s->cell_mask & 1u << i;

		if (on && i >= n)
			n = i + 1;
		if (on && s->cells_mv[i] < lo)
			lo = s->cells_mv[i];
		if (on && s->cells_mv[i] > hi)
			hi = s->cells_mv[i];
	}
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(cells, OR_NULL(s->cell_mask & 1u << i, milli(s->cells_mv[i])));
	json_object_set_new(o, "cell_min", OR_NULL(hi, milli(lo)));
	json_object_set_new(o, "cell_max", OR_NULL(hi, milli(hi)));
	json_object_set_new(o, "cell_delta", OR_NULL(hi, milli(hi - lo)));
	json_object_set_new(o, "cells", cells);
}

static void pack_temps(json_t *o, const struct jk_sample *s)
{
	static const char *const keys[JK_MAX_TEMPS] = { "temp_1", "temp_2", "temp_3", "temp_4", "temp_5" };

	for (unsigned i = 0; i < JK_MAX_TEMPS; i++) {
		bool have = (s->has & JK_HAS_TEMPS) && i < s->temp_count && s->temps_dc[i] != JK_TEMP_ABSENT_DC;

		json_object_set_new(o, keys[i], OR_NULL(have, tenths(s->temps_dc[i])));
	}
	json_object_set_new(o, "temp_mos", OR_NULL(s->has & JK_HAS_MOS_TEMP, tenths(s->mos_temp_dc)));
}

static json_t *pack_state(const struct ha_config *c, const struct ha_pack *p)
{
	const struct jk_sample *s = &p->bank->sample;
	const struct jk_settings *st = &p->bank->settings;
	bool settings = p->bank->have_settings, jk02 = settings && st->protocol != JK_PROTO_JK04;
	json_t *o = json_object();

	json_object_set_new(o, "soc", OR_NULL(s->has & JK_HAS_SOC, json_integer(s->soc_pct)));
	json_object_set_new(o, "soh", OR_NULL(s->has & JK_HAS_SOH, json_integer(s->soh_pct)));
	json_object_set_new(o, "voltage", milli(s->voltage_mv));
	json_object_set_new(o, "current", OR_NULL(s->has & JK_HAS_CURRENT, milli(s->current_ma)));
	json_object_set_new(o, "power", OR_NULL(s->has & JK_HAS_CURRENT, watts(s->voltage_mv, s->current_ma)));
	pack_cells(o, c, s);
	pack_temps(o, s);
	json_object_set_new(o, "charging_mos", OR_NULL(s->has & JK_HAS_MOSFETS, on_off(s->charging_enabled)));
	json_object_set_new(o, "discharging_mos", OR_NULL(s->has & JK_HAS_MOSFETS, on_off(s->discharging_enabled)));
	json_object_set_new(o, "balancing", on_off(s->balancing == JK_BALANCE_CHARGE ||
						   s->balancing == JK_BALANCE_DISCHARGE));
	json_object_set_new(o, "cycles", OR_NULL(s->has & JK_HAS_CYCLES, json_integer(s->cycles)));
	json_object_set_new(o, "capacity", OR_NULL(s->has & JK_HAS_SOC, milli(s->capacity_mah)));
	json_object_set_new(o, "remaining", OR_NULL(s->has & JK_HAS_SOC, milli(s->remaining_mah)));
	json_object_set_new(o, "energy_charged", kwh(p->energy, true));
	json_object_set_new(o, "energy_discharged", kwh(p->energy, false));
	json_object_set_new(o, "alarm", OR_NULL(s->has & JK_HAS_ERRORS, on_off(s->errors != 0)));
	json_object_set_new(o, "errors", OR_NULL(s->has & JK_HAS_ERRORS, json_integer(s->errors)));
	json_object_set_new(o, "charging_switch", OR_NULL(jk02, on_off(st->charging_switch)));
	json_object_set_new(o, "discharging_switch", OR_NULL(jk02, on_off(st->discharging_switch)));
	json_object_set_new(o, "balancer_switch", OR_NULL(settings, on_off(st->balancer_switch)));
	return o;
}

static const char *alarm_name(uint32_t bit)
{
	switch (bit) {
	case BANK_ALARM_CELL_OV: return "cell_ov";
	case BANK_ALARM_CELL_UV: return "cell_uv";
	case BANK_ALARM_OVER_TEMP: return "over_temp";
	case BANK_ALARM_UNDER_TEMP: return "under_temp";
	case BANK_ALARM_CHARGE_OC: return "charge_oc";
	case BANK_ALARM_DISCHARGE_OC: return "discharge_oc";
	case BANK_ALARM_SYSTEM: return "system";
	case BANK_ALARM_IMBALANCE: return "imbalance";
	}
	return "other";
}

/* "none", or the alarm classes: "cell_ov, system". */
static json_t *alarm_text(uint32_t bits)
{
	char text[256] = "";
	size_t len = 0;

	for (unsigned i = 0; i < 32 && len < sizeof(text); i++)
		if (bits & 1u << i)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", len ? ", " : "",
						alarm_name(1u << i));
	return json_string(bits ? text : "none");
}

static json_t *battery_state(const struct ha_battery *b)
{
	static const struct battery none_bat;
	static const struct charge_output none_out;
	const struct battery *bat = b->bat ? b->bat : &none_bat;
	const struct charge_output *out = b->out ? b->out : &none_out;
	bool cells = bat->packs_fresh && bat->cell_max_mv;
	json_t *o = json_object();

	json_object_set_new(o, "soc", json_real(bat->soc_centi_pct / 100.0));
	json_object_set_new(o, "soc_inverter", json_integer(out->soc_pct));
	json_object_set_new(o, "soh", json_integer(bat->soh_pct));
	json_object_set_new(o, "voltage", milli(bat->voltage_mv));
	json_object_set_new(o, "current", milli(bat->current_ma));
	json_object_set_new(o, "power", watts(bat->voltage_mv, bat->current_ma));
	json_object_set_new(o, "cvl", milli(out->cvl_mv));
	json_object_set_new(o, "ccl", milli(out->ccl_ma));
	json_object_set_new(o, "dcl", milli(out->dcl_ma));
	json_object_set_new(o, "charge_enable", on_off(out->charge_enable));
	json_object_set_new(o, "discharge_enable", on_off(out->discharge_enable));
	json_object_set_new(o, "charge_state", json_string(charge_state_name(out->state)));
	json_object_set_new(o, "protection", on_off(bat->protections != 0));
	json_object_set_new(o, "warning", on_off(bat->warnings != 0));
	json_object_set_new(o, "alarms", alarm_text(bat->protections | bat->warnings));
	json_object_set_new(o, "packs_fresh", json_integer(bat->packs_fresh));
	json_object_set_new(o, "cell_min", OR_NULL(cells, milli(bat->cell_min_mv)));
	json_object_set_new(o, "cell_max", OR_NULL(cells, milli(bat->cell_max_mv)));
	json_object_set_new(o, "cell_delta", OR_NULL(cells, milli(bat->cell_max_mv - bat->cell_min_mv)));
	json_object_set_new(o, "temp_min", OR_NULL(bat->have_temps, tenths(bat->temp_min_dc)));
	json_object_set_new(o, "temp_max", OR_NULL(bat->have_temps, tenths(bat->temp_max_dc)));
	json_object_set_new(o, "capacity", milli((int64_t)bat->capacity_mah));
	json_object_set_new(o, "remaining", milli((int64_t)bat->remaining_mah));
	json_object_set_new(o, "energy_charged", kwh(b->energy, true));
	json_object_set_new(o, "energy_discharged", kwh(b->energy, false));
	json_object_set_new(o, "forbid_charge", on_off(b->forbid_charge));
	json_object_set_new(o, "forbid_discharge", on_off(b->forbid_discharge));
	return o;
}

static json_t *bridge_state(const struct ha_config *c, const struct ha_view *v)
{
	unsigned connected = 0;
	uint64_t reconnects = 0;

	for (unsigned i = 0; i < v->npacks; i++) {
		connected += v->packs[i].link.connected;
		reconnects += v->packs[i].link.reconnects;
	}
	return json_pack("{s:s, s:I, s:I, s:o, s:i, s:I, s:I, s:s}",
			 "can_state", v->bridge.can_state ? v->bridge.can_state : "down",
			 "can_frames_sent", (json_int_t)v->bridge.can_sent,
			 "can_frames_dropped", (json_int_t)v->bridge.can_dropped,
			 "inverter", on_off(v->bridge.inverter_alive),
			 "packs_connected", (int)connected,
			 "pack_reconnects", (json_int_t)reconnects,
			 "uptime", (json_int_t)v->bridge.uptime_s,
			 "version", c->version);
}

json_t *ha_state(const struct ha_config *c, const struct ha_view *v, unsigned dev)
{
	const struct ha_pack *p = pack_of(v, dev);

	if (dev == HA_DEV_BRIDGE)
		return bridge_state(c, v);
	if (dev == HA_DEV_BATTERY)
		return battery_state(&v->battery);
	return p ? pack_state(c, p) : NULL;
}

json_t *ha_link_state(const struct ha_config *c, const struct ha_view *v, unsigned pack)
{
	const struct ha_link *l;

	if (pack >= v->npacks)
		return NULL;
	l = &v->packs[pack].link;
	return json_pack("{s:o, s:o, s:I, s:I, s:I}", "link", on_off(l->connected),
			 "rssi", OR_NULL(l->have_rssi, json_integer(l->rssi_dbm)),
			 "reconnects", (json_int_t)l->reconnects, "frames", (json_int_t)l->frames,
			 "bad_checksums", (json_int_t)l->bad_checksums);
}

bool ha_available(const struct ha_view *v, unsigned dev)
{
	const struct ha_pack *p = pack_of(v, dev);
	const struct battery *bat = v->battery.bat;

	if (dev == HA_DEV_BRIDGE)
		return true;
	if (dev == HA_DEV_BATTERY)
		return bat && bat->ready && bat->packs_fresh > 0;
	return p && p->fresh && p->bank && p->bank->have_sample;
}

/* ------------------------------------------------------------- commands */

void ha_command_filters(const struct ha_config *c, char out[HA_COMMAND_FILTERS][HA_TOPIC_MAX])
{
	snprintf(out[0], HA_TOPIC_MAX, "%s/pack/+/+/set", c->base_topic);
	snprintf(out[1], HA_TOPIC_MAX, "%s/battery/+/set", c->base_topic);
}

/* "ON" -> 1, "OFF" -> 0, anything else (case, spaces, JSON) -> -1. */
static int on_off_payload(const void *payload, size_t len)
{
	if (len == 2 && memcmp(payload, "ON", 2) == 0)
		return 1;
	if (len == 3 && memcmp(payload, "OFF", 3) == 0)
		return 0;
	return -1;
}

static bool pack_switch(const char *name, enum jk_switch *sw)
{
	static const struct {
		const char *name;
		enum jk_switch sw;
	} switches[] = {
		{ "charging", JK_SWITCH_CHARGING },
		{ "discharging", JK_SWITCH_DISCHARGING },
		{ "balancer", JK_SWITCH_BALANCER },
	};

	for (size_t i = 0; i < sizeof(switches) / sizeof(switches[0]); i++)
		if (strcmp(name, switches[i].name) == 0) {
			*sw = switches[i].sw;
			return true;
		}
	return false;
}

/* rest = "NAME/SWITCH" or "SWITCH" (no "/set"). */
static enum ha_command_result command_target(const struct ha_view *v, bool pack, const char *rest,
					     struct ha_command *out)
{
	const char *slash = strchr(rest, '/');

	if (!pack) {
		if (strcmp(rest, "forbid_charge") == 0)
			out->kind = HA_CMD_FORBID_CHARGE;
		else if (strcmp(rest, "forbid_discharge") == 0)
			out->kind = HA_CMD_FORBID_DISCHARGE;
		else
			return HA_COMMAND_UNKNOWN;
		return HA_COMMAND_OK;
	}
	if (!slash || !pack_switch(slash + 1, &out->sw))
		return HA_COMMAND_UNKNOWN;
	for (unsigned i = 0; i < v->npacks; i++)
		if (strlen(v->packs[i].name) == (size_t)(slash - rest) &&
		    strncmp(v->packs[i].name, rest, (size_t)(slash - rest)) == 0) {
			out->kind = HA_CMD_PACK_SWITCH;
			out->pack = i;
			return HA_COMMAND_OK;
		}
	return HA_COMMAND_UNKNOWN;
}

enum ha_command_result ha_command_parse(const struct ha_config *c, const struct ha_view *v,
					const char *topic, const void *payload, size_t len,
					struct ha_command *out)
{
	size_t base = strlen(c->base_topic), n = strlen(topic);
	char rest[HA_TOPIC_MAX];
	enum ha_command_result r;
	bool pack;
	int on;

	memset(out, 0, sizeof(*out));
	if (n <= base + 5 || strncmp(topic, c->base_topic, base) != 0 || topic[base] != '/' ||
	    strcmp(topic + n - 4, "/set") != 0)
		return HA_COMMAND_NOT_A_COMMAND;
	topic += base + 1;
	n -= base + 1 + 4;
	pack = strncmp(topic, "pack/", 5) == 0;
	if (!pack && strncmp(topic, "battery/", 8) != 0)
		return HA_COMMAND_NOT_A_COMMAND;
	if (n >= sizeof(rest) || n <= (pack ? 5u : 8u))
		return HA_COMMAND_UNKNOWN;
	snprintf(rest, sizeof(rest), "%.*s", (int)(n - (pack ? 5 : 8)), topic + (pack ? 5 : 8));
	r = command_target(v, pack, rest, out);
	if (r != HA_COMMAND_OK)
		return r;
	on = on_off_payload(payload, len);
	if (on < 0)
		return HA_COMMAND_BAD_PAYLOAD;
	out->on = on == 1;
	return HA_COMMAND_OK;
}
