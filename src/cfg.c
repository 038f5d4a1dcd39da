/*
 * cfg — libconfig file to struct cfg (see cfg.h).
 *
 * Each group is described by one table of keys: name, kind, where the value
 * goes and its allowed range in the file's units.  Loading walks the tables;
 * every setting the file has that no table names is an unknown key.  Checks
 * that involve more than one key come after, each with the line of the
 * setting that is wrong.
 */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "bank.h"
#include "cfg.h"

#define DEFAULT_PATH_STATE "/var/lib/jkbridged"

enum key_kind {
	K_STR,		/* char[size] */
	K_BOOL,
	K_UINT,		/* integer, stored in `size` bytes */
	K_MILLI,	/* V or A (integer or float) -> uint32 milli-units */
	K_SECONDS_MS,	/* seconds -> uint32 ms */
	K_FLOAT,	/* double */
	K_CHEMISTRY,
	K_PROFILE,
	K_PROTOCOL,
};

enum key_target { T_TOP, T_BATTERY, T_CHARGE, T_CAN, T_MQTT, T_PACK };

struct key {
	const char *name;
	enum key_kind kind;
	enum key_target target;
	size_t off, size;
	double min, max;
};

#define KEY(n, k, t, type, field, lo, hi) \
	{ .name = n, .kind = k, .target = t, .off = offsetof(type, field), \
	  .size = sizeof(((type *)0)->field), .min = lo, .max = hi }

static const struct key top_keys[] = {
	KEY("state_dir", K_STR, T_TOP, struct cfg, state_dir, 0, 0),
};

static const struct key battery_keys[] = {
	KEY("chemistry", K_CHEMISTRY, T_CHARGE, struct charge_config, chemistry, 0, 0),
	KEY("cells", K_UINT, T_BATTERY, struct cfg_battery, cells, 1, 32),
	KEY("min_packs", K_UINT, T_BATTERY, struct cfg_battery, min_packs, 1, CFG_MAX_PACKS),
	KEY("stale_after", K_SECONDS_MS, T_BATTERY, struct cfg_battery, stale_after_ms, 2, 3600),
	KEY("startup_timeout", K_SECONDS_MS, T_BATTERY, struct cfg_battery, startup_timeout_ms, 1, 3600),
	KEY("max_charge_current", K_MILLI, T_BATTERY, struct cfg_battery, max_charge_ma, 0, 3000),
	KEY("max_discharge_current", K_MILLI, T_BATTERY, struct cfg_battery, max_discharge_ma, 0, 3000),
	KEY("cell_ovp", K_MILLI, T_CHARGE, struct charge_config, cell_ovp_mv, 1.5, 4.5),
	KEY("cell_uvp", K_MILLI, T_CHARGE, struct charge_config, cell_uvp_mv, 1.5, 4.5),
};

static const struct key charge_keys[] = {
	KEY("bulk_cell_voltage", K_MILLI, T_CHARGE, struct charge_config, bulk_cell_mv, 1.5, 4.5),
	KEY("float_cell_voltage", K_MILLI, T_CHARGE, struct charge_config, float_cell_mv, 1.5, 4.5),
	KEY("rebulk_cell_voltage", K_MILLI, T_CHARGE, struct charge_config, rebulk_cell_mv, 1.5, 4.5),
	KEY("end_of_charge_timeout", K_UINT, T_CHARGE, struct charge_config, end_of_charge_timeout_s, 60, 86400),
	KEY("cutoff_hold", K_UINT, T_CHARGE, struct charge_config, cutoff_hold_s, 1, 3600),
	KEY("cutoff_timer", K_UINT, T_CHARGE, struct charge_config, cutoff_timer_s, 1, 86400),
	KEY("rebulk_soc", K_UINT, T_CHARGE, struct charge_config, rebulk_soc, 0, 99),
	KEY("rebulk_days", K_UINT, T_CHARGE, struct charge_config, rebulk_days, 0, 365),
	KEY("float", K_BOOL, T_CHARGE, struct charge_config, float_enabled, 0, 0),
	KEY("float_step", K_MILLI, T_CHARGE, struct charge_config, float_step_mv, 0.01, 5),
	KEY("float_step_interval", K_UINT, T_CHARGE, struct charge_config, float_step_interval_s, 1, 86400),
	KEY("ramp", K_MILLI, T_CHARGE, struct charge_config, ramp_ma_per_s, 0.1, 1000),
	KEY("force_charge", K_BOOL, T_CHARGE, struct charge_config, force_charge_enabled, 0, 0),
	KEY("force_charge_start_soc", K_UINT, T_CHARGE, struct charge_config, force_charge_start_soc, 0, 100),
	KEY("force_charge_stop_soc", K_UINT, T_CHARGE, struct charge_config, force_charge_stop_soc, 0, 100),
};

static const struct key can_keys[] = {
	KEY("interface", K_STR, T_CAN, struct cfg_can, interface, 0, 0),
	KEY("profile", K_PROFILE, T_CAN, struct cfg_can, profile, 0, 0),
	KEY("manufacturer", K_STR, T_CAN, struct cfg_can, manufacturer, 0, 0),
	KEY("keepalive_timeout", K_SECONDS_MS, T_CAN, struct cfg_can, keepalive_timeout_ms, 1, 3600),
};

static const struct key mqtt_keys[] = {
	KEY("host", K_STR, T_MQTT, struct cfg_mqtt, host, 0, 0),
	KEY("port", K_UINT, T_MQTT, struct cfg_mqtt, port, 1, 65535),
	KEY("username", K_STR, T_MQTT, struct cfg_mqtt, username, 0, 0),
	KEY("password_file", K_STR, T_MQTT, struct cfg_mqtt, password_file, 0, 0),
	KEY("cafile", K_STR, T_MQTT, struct cfg_mqtt, cafile, 0, 0),
	KEY("certfile", K_STR, T_MQTT, struct cfg_mqtt, certfile, 0, 0),
	KEY("keyfile", K_STR, T_MQTT, struct cfg_mqtt, keyfile, 0, 0),
	KEY("base_topic", K_STR, T_MQTT, struct cfg_mqtt, base_topic, 0, 0),
	KEY("discovery_prefix", K_STR, T_MQTT, struct cfg_mqtt, discovery_prefix, 0, 0),
	KEY("client_id", K_STR, T_MQTT, struct cfg_mqtt, client_id, 0, 0),
	KEY("interval", K_SECONDS_MS, T_MQTT, struct cfg_mqtt, interval_ms, 1, 3600),
	KEY("keepalive", K_SECONDS_MS, T_MQTT, struct cfg_mqtt, keepalive_ms, 5, 3600),
	KEY("allow_control", K_BOOL, T_MQTT, struct cfg_mqtt, allow_control, 0, 0),
};

static const struct key pack_keys[] = {
	KEY("name", K_STR, T_PACK, struct cfg_pack, name, 0, 0),
	KEY("address", K_STR, T_PACK, struct cfg_pack, address, 0, 0),
	KEY("adapter", K_STR, T_PACK, struct cfg_pack, adapter, 0, 0),
	KEY("protocol", K_PROTOCOL, T_PACK, struct cfg_pack, protocol, 0, 0),
	KEY("replay", K_STR, T_PACK, struct cfg_pack, replay, 0, 0),
	KEY("loop", K_BOOL, T_PACK, struct cfg_pack, loop, 0, 0),
	KEY("speed", K_FLOAT, T_PACK, struct cfg_pack, speed, 0.01, 1000),
	KEY("max_charge_current", K_MILLI, T_PACK, struct cfg_pack, max_charge_ma, 0, 3000),
	KEY("max_discharge_current", K_MILLI, T_PACK, struct cfg_pack, max_discharge_ma, 0, 3000),
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

struct loader {
	struct cfg *c;
	struct cfg_diags *diags;
	void *bases[T_PACK + 1];
};

static void diag(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void diag(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	struct cfg_diags *d = ld->diags;
	char text[CFG_DIAG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (d->n < CFG_MAX_DIAGS) {
		const char *file = s ? config_setting_source_file(s) : NULL;

		snprintf(d->msg[d->n], CFG_DIAG_LEN, "%.200s:%u: %.250s", file ? file : ld->c->path,
			 s ? config_setting_source_line(s) : 0, text);
	}
	d->n++;
}

static bool is_number(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64 || t == CONFIG_TYPE_FLOAT;
}

static bool is_integer(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static double number_of(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) :
							       (double)config_setting_get_int64(s);
}

static void store_uint(void *p, size_t size, unsigned long v)
{
	switch (size) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static bool in_range(struct loader *ld, const config_setting_t *s, const struct key *k, double v)
{
	if (v >= k->min && v <= k->max)
		return true;
	diag(ld, s, "%s = %g is out of range (%g to %g)", k->name, v, k->min, k->max);
	return false;
}

static void load_string(struct loader *ld, const config_setting_t *s, const struct key *k, void *p)
{
	const char *v = config_setting_get_string(s);

	if (!v) {
		diag(ld, s, "%s must be a string", k->name);
		return;
	}
	if (strlen(v) >= k->size) {
		diag(ld, s, "%s is too long (at most %zu characters)", k->name, k->size - 1);
		return;
	}
	strcpy(p, v);
}

static void load_enum(struct loader *ld, const config_setting_t *s, const struct key *k, void *p)
{
	const char *v = config_setting_get_string(s);
	int rc = -EINVAL;

	if (v && k->kind == K_CHEMISTRY) {
		static const char *const names[] = { [CHARGE_LFP] = "lfp", [CHARGE_LIION] = "liion",
						     [CHARGE_LTO] = "lto" };

		for (unsigned i = 0; i < NKEYS(names); i++)
			if (strcasecmp(v, names[i]) == 0) {
				*(enum charge_chemistry *)p = (enum charge_chemistry)i;
				rc = 0;
			}
	} else if (v && k->kind == K_PROFILE) {
		rc = canmsg_profile_parse(v, p);
	} else if (v) {
		rc = jk_protocol_parse(v, p);
	}
	if (rc < 0)
		diag(ld, s, "%s: '%s' is not one of %s", k->name, v ? v : "(not a string)",
		     k->kind == K_CHEMISTRY ? "lfp, liion, lto" :
		     k->kind == K_PROFILE ? "pylon, pylon-v2, victron, sma, luxpower" :
		     "auto, jk02_24s, jk02_32s, jk04");
}

static void load_key(struct loader *ld, const config_setting_t *s, const struct key *k)
{
	void *p = (char *)ld->bases[k->target] + k->off;

	switch (k->kind) {
	case K_STR:
		load_string(ld, s, k, p);
		return;
	case K_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			diag(ld, s, "%s must be true or false", k->name);
		else
			*(bool *)p = config_setting_get_bool(s);
		return;
	case K_CHEMISTRY:
	case K_PROFILE:
	case K_PROTOCOL:
		load_enum(ld, s, k, p);
		return;
	case K_UINT:
		if (!is_integer(s))
			diag(ld, s, "%s must be a whole number", k->name);
		else if (in_range(ld, s, k, number_of(s)))
			store_uint(p, k->size, (unsigned long)number_of(s));
		return;
	case K_MILLI:
	case K_SECONDS_MS:
	case K_FLOAT:
		if (!is_number(s))
			diag(ld, s, "%s must be a number", k->name);
		else if (!in_range(ld, s, k, number_of(s)))
			return;
		else if (k->kind == K_FLOAT)
			*(double *)p = number_of(s);
		else
			store_uint(p, k->size, (unsigned long)lround(number_of(s) * 1000.0));
		return;
	}
}

/* Load the keys of one group; every member not in the table is reported. */
static void load_group(struct loader *ld, const config_setting_t *group, const char *gname,
		       const struct key *keys, size_t nkeys)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, i);
		const char *name = config_setting_name(s);
		size_t k;

		for (k = 0; k < nkeys; k++)
			if (name && strcmp(name, keys[k].name) == 0)
				break;
		if (k == nkeys)
			diag(ld, s, "unknown key '%s'%s%s", name ? name : "?", *gname ? " in " : "", gname);
		else
			load_key(ld, s, &keys[k]);
	}
}

static bool valid_address(const char *a)
{
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? a[i] != ':' : !isxdigit((unsigned char)a[i]))
			return false;
	}
	return a[17] == '\0';
}

static bool valid_name(const char *n)
{
	if (!*n)
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '-' && *n != '_')
			return false;
	return true;
}

/* A relative path (replay, MQTT files) is relative to the configuration
 * file's folder.  `path` has PATH_MAX bytes. */
static void resolve_path(struct loader *ld, const config_setting_t *s, const char *what, char *path)
{
	const char *slash = strrchr(ld->c->path, '/');
	char joined[PATH_MAX];
	int n;

	if (!*path || path[0] == '/' || !slash)
		return;
	n = snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - ld->c->path), ld->c->path, path);
	if (n < 0 || (size_t)n >= sizeof(joined)) {
		diag(ld, s, "%s path is too long", what);
		return;
	}
	strcpy(path, joined);
}

static void resolve_replay(struct loader *ld, const config_setting_t *s, struct cfg_pack *p)
{
	resolve_path(ld, s, "replay", p->replay);
}

static void check_pack(struct loader *ld, const config_setting_t *s, unsigned idx)
{
	struct cfg_pack *p = &ld->c->packs[idx];

	if (!valid_name(p->name))
		diag(ld, s, "pack %u: name must be set, letters, digits, '-' and '_' only", idx + 1);
	if (!*p->address == !*p->replay)
		diag(ld, s, "pack '%s': give exactly one of address or replay", p->name);
	if (*p->address && !valid_address(p->address))
		diag(ld, s, "pack '%s': address '%s' is not of the form C8:47:8C:E1:E2:AA",
		     p->name, p->address);
	for (char *a = p->address; *a; a++)
		*a = (char)toupper((unsigned char)*a);
	for (unsigned j = 0; j < idx; j++) {
		const struct cfg_pack *q = &ld->c->packs[j];

		if (strcmp(q->name, p->name) == 0)
			diag(ld, s, "pack '%s': the name is used by pack %u too", p->name, j + 1);
		if (*p->address && strcasecmp(q->address, p->address) == 0)
			diag(ld, s, "pack '%s': address %s is pack '%s''s too", p->name, p->address, q->name);
	}
	resolve_replay(ld, s, p);
}

static void load_packs(struct loader *ld, const config_setting_t *list)
{
	int n = list ? config_setting_length(list) : 0;

	if (!list || (!config_setting_is_list(list) && !config_setting_is_array(list)) || n == 0) {
		diag(ld, list, "packs: at least one pack is needed, as packs = ( { name = ...; ... } );");
		return;
	}
	if (n > CFG_MAX_PACKS) {
		diag(ld, list, "packs: at most %d packs", CFG_MAX_PACKS);
		n = CFG_MAX_PACKS;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
		struct cfg_pack *p = &ld->c->packs[i];

		p->speed = 1.0;
		ld->bases[T_PACK] = p;
		if (!config_setting_is_group(s)) {
			diag(ld, s, "pack %d must be a group { ... }", i + 1);
			continue;
		}
		load_group(ld, s, "pack", pack_keys, NKEYS(pack_keys));
		check_pack(ld, s, (unsigned)i);
	}
	ld->c->npacks = (unsigned)n;
}

static const config_setting_t *lookup(const config_t *conf, const char *path)
{
	return config_lookup(conf, path);
}

static void check_charge(struct loader *ld, const config_t *conf)
{
	const struct charge_config *ch = &ld->c->charge;
	const config_setting_t *bulk = lookup(conf, "charge.bulk_cell_voltage");
	const config_setting_t *where = bulk ? bulk : lookup(conf, "battery.cell_ovp");

	if (ch->bulk_cell_mv >= ch->cell_ovp_mv)
		diag(ld, where, "bulk_cell_voltage %.3f V is at or above the cell OVP %.3f V",
		     ch->bulk_cell_mv / 1000.0, ch->cell_ovp_mv / 1000.0);
	if (ch->float_cell_mv > ch->bulk_cell_mv)
		diag(ld, lookup(conf, "charge.float_cell_voltage"),
		     "float_cell_voltage %.3f V is above bulk_cell_voltage %.3f V",
		     ch->float_cell_mv / 1000.0, ch->bulk_cell_mv / 1000.0);
	if (ch->rebulk_cell_mv > ch->float_cell_mv)
		diag(ld, lookup(conf, "charge.rebulk_cell_voltage"),
		     "rebulk_cell_voltage %.3f V is above float_cell_voltage %.3f V",
		     ch->rebulk_cell_mv / 1000.0, ch->float_cell_mv / 1000.0);
	if (ch->cell_uvp_mv >= ch->rebulk_cell_mv)
		diag(ld, lookup(conf, "battery.cell_uvp"), "cell_uvp %.3f V is not below rebulk_cell_voltage",
		     ch->cell_uvp_mv / 1000.0);
	if (ch->force_charge_enabled && ch->force_charge_start_soc >= ch->force_charge_stop_soc)
		diag(ld, lookup(conf, "charge.force_charge_start_soc"),
		     "force_charge_start_soc must be below force_charge_stop_soc");
}

/* A topic level string: not empty, no wildcard, no empty level. */
static bool valid_topic(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && !strpbrk(t, "+#") && t[0] != '/' && t[n - 1] != '/' && !strstr(t, "//");
}

static void check_mqtt(struct loader *ld, const config_t *conf)
{
	const struct cfg_mqtt *m = &ld->c->mqtt;

	if (!valid_topic(m->base_topic))
		diag(ld, lookup(conf, "mqtt.base_topic"),
		     "base_topic '%s' must be a topic without '+', '#', empty levels or a leading or trailing '/'",
		     m->base_topic);
	if (!valid_topic(m->discovery_prefix))
		diag(ld, lookup(conf, "mqtt.discovery_prefix"),
		     "discovery_prefix '%s' must be a topic without '+', '#', empty levels or a leading or trailing '/'",
		     m->discovery_prefix);
	if (*m->password_file && !*m->username)
		diag(ld, lookup(conf, "mqtt.password_file"), "password_file needs a username");
	if (!*m->certfile != !*m->keyfile)
		diag(ld, lookup(conf, *m->certfile ? "mqtt.certfile" : "mqtt.keyfile"),
		     "certfile and keyfile go together");
	if (*m->certfile && !*m->cafile)
		diag(ld, lookup(conf, "mqtt.certfile"), "a client certificate needs cafile (TLS)");
	resolve_path(ld, lookup(conf, "mqtt.password_file"), "password_file", ld->c->mqtt.password_file);
	resolve_path(ld, lookup(conf, "mqtt.cafile"), "cafile", ld->c->mqtt.cafile);
	resolve_path(ld, lookup(conf, "mqtt.certfile"), "certfile", ld->c->mqtt.certfile);
	resolve_path(ld, lookup(conf, "mqtt.keyfile"), "keyfile", ld->c->mqtt.keyfile);
	for (const char *p = m->client_id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			diag(ld, lookup(conf, "mqtt.client_id"),
			     "client_id '%s': letters, digits, '-' and '_' only", m->client_id);
			break;
		}
}

static void check_all(struct loader *ld, const config_t *conf)
{
	struct cfg *c = ld->c;

	if (c->battery.min_packs > c->npacks && c->npacks)
		diag(ld, lookup(conf, "battery.min_packs"), "min_packs %u is more than the %u packs configured",
		     c->battery.min_packs, c->npacks);
	if (!*c->can.interface)
		diag(ld, lookup(conf, "can.interface"), "can.interface must not be empty");
	if (!*c->state_dir)
		diag(ld, lookup(conf, "state_dir"), "state_dir must not be empty");
	check_charge(ld, conf);
	check_mqtt(ld, conf);
}

static void set_defaults(struct cfg *c, const config_t *conf)
{
	const char *chem = NULL;
	int cells = 16;
	enum charge_chemistry ch = CHARGE_LFP;

	/* Chemistry and cell count set the charge defaults, which every other
	 * key may then override: read them first. */
	if (config_lookup_string(conf, "battery.chemistry", &chem) && chem)
		ch = strcasecmp(chem, "liion") == 0 ? CHARGE_LIION :
		     strcasecmp(chem, "lto") == 0 ? CHARGE_LTO : CHARGE_LFP;
	if (!config_lookup_int(conf, "battery.cells", &cells) || cells < 1 || cells > 32)
		cells = 16;

	strcpy(c->state_dir, DEFAULT_PATH_STATE);
	c->battery = (struct cfg_battery){
		.chemistry = ch,
		.cells = (unsigned)cells,
		.min_packs = 1,
		.stale_after_ms = 30000,
		.startup_timeout_ms = 60000,
		.max_charge_ma = 100000,
		.max_discharge_ma = 100000,
	};
	charge_config_defaults(&c->charge, ch, (unsigned)cells);
	c->can = (struct cfg_can){ .interface = "can0", .profile = CANMSG_PYLON,
				   .manufacturer = "", .keepalive_timeout_ms = 10000 };
	c->mqtt = (struct cfg_mqtt){ .port = 1883, .base_topic = "jkbridged",
				     .discovery_prefix = "homeassistant", .interval_ms = 5000,
				     .keepalive_ms = 30000 };
}

/* battery.* feeds the charge logic too. */
static void derive(struct cfg *c)
{
	c->charge.chemistry = c->battery.chemistry = c->charge.chemistry;
	c->charge.cells = c->battery.cells;
	c->charge.min_packs = c->battery.min_packs;
	c->charge.max_charge_ma = c->battery.max_charge_ma;
	c->charge.max_discharge_ma = c->battery.max_discharge_ma;
}

int cfg_load(const char *path, struct cfg *out, struct cfg_diags *diags)
{
	struct loader ld = { .c = out, .diags = diags };
	const config_setting_t *g;
	config_t conf;

	memset(out, 0, sizeof(*out));
	memset(diags, 0, sizeof(*diags));
	snprintf(out->path, sizeof(out->path), "%s", path);
	config_init(&conf);
	if (!config_read_file(&conf, path)) {
		if (config_error_type(&conf) == CONFIG_ERR_FILE_IO)
			diag(&ld, NULL, "cannot read the file: %s", strerror(errno ? errno : EIO));
		else
			snprintf(diags->msg[diags->n++], CFG_DIAG_LEN, "%.200s:%d: %.250s",
				 config_error_file(&conf) ? config_error_file(&conf) : path,
				 config_error_line(&conf), config_error_text(&conf));
		config_destroy(&conf);
		return -EINVAL;
	}

	set_defaults(out, &conf);
	ld.bases[T_TOP] = out;
	ld.bases[T_BATTERY] = &out->battery;
	ld.bases[T_CHARGE] = &out->charge;
	ld.bases[T_CAN] = &out->can;
	ld.bases[T_MQTT] = &out->mqtt;
	for (int i = 0; i < config_setting_length(config_root_setting(&conf)); i++) {
		const config_setting_t *s = config_setting_get_elem(config_root_setting(&conf), i);
		const char *name = config_setting_name(s);
		static const struct {
			const char *name;
			const struct key *keys;
			size_t n;
		} groups[] = {
			{ "battery", battery_keys, NKEYS(battery_keys) },
			{ "charge", charge_keys, NKEYS(charge_keys) },
			{ "can", can_keys, NKEYS(can_keys) },
			{ "mqtt", mqtt_keys, NKEYS(mqtt_keys) },
		};
		size_t k;

		if (strcmp(name, "packs") == 0)
			continue;
		for (k = 0; k < NKEYS(groups) && strcmp(name, groups[k].name) != 0; k++)
			;
		if (k < NKEYS(groups) && !config_setting_is_group(s))
			diag(&ld, s, "%s must be a group { ... }", name);
		else if (k < NKEYS(groups))
			load_group(&ld, s, name, groups[k].keys, groups[k].n);
		else if (strcmp(name, "state_dir") == 0)
			load_key(&ld, s, &top_keys[0]);
		else
			diag(&ld, s, "unknown key '%s'", name);
	}
	g = config_lookup(&conf, "packs");
	load_packs(&ld, g);
	derive(out);
	check_all(&ld, &conf);
	config_destroy(&conf);
	return diags->n ? -EINVAL : 0;
}

void cfg_bank_config(const struct cfg *c, struct bank_config *out)
{
	unsigned n = c->npacks ? c->npacks : 1;

	*out = (struct bank_config){
		.min_packs = c->battery.min_packs,
		.stale_after_ms = c->battery.stale_after_ms,
		.startup_timeout_ms = c->battery.startup_timeout_ms,
		.fallback_charge_ma = c->battery.max_charge_ma / n,
		.fallback_discharge_ma = c->battery.max_discharge_ma / n,
	};
	for (unsigned i = 0; i < c->npacks && i < BANK_MAX_PACKS; i++) {
		out->cap_charge_ma[i] = c->packs[i].max_charge_ma;
		out->cap_discharge_ma[i] = c->packs[i].max_discharge_ma;
	}
}

/* ------------------------------------------------------------- printing */

static void add_value(config_setting_t *parent, const struct key *k, const void *base)
{
	const void *p = (const char *)base + k->off;
	config_setting_t *s;
	unsigned long u = 0;

	switch (k->kind) {
	case K_STR:
		config_setting_set_string(config_setting_add(parent, k->name, CONFIG_TYPE_STRING), p);
		return;
	case K_BOOL:
		config_setting_set_bool(config_setting_add(parent, k->name, CONFIG_TYPE_BOOL), *(const bool *)p);
		return;
	case K_CHEMISTRY: {
		static const char *const names[] = { "lfp", "liion", "lto" };

		config_setting_set_string(config_setting_add(parent, k->name, CONFIG_TYPE_STRING),
					  names[*(const enum charge_chemistry *)p]);
		return;
	}
	case K_PROFILE:
		config_setting_set_string(config_setting_add(parent, k->name, CONFIG_TYPE_STRING),
					  canmsg_profile_name(*(const enum canmsg_profile *)p));
		return;
	case K_PROTOCOL: {
		enum jk_protocol proto = *(const enum jk_protocol *)p;
		char lower[16];
		size_t i;

		snprintf(lower, sizeof(lower), "%s", proto ? jk_protocol_name(proto) : "auto");
		for (i = 0; lower[i]; i++)
			lower[i] = (char)tolower((unsigned char)lower[i]);
		config_setting_set_string(config_setting_add(parent, k->name, CONFIG_TYPE_STRING), lower);
		return;
	}
	case K_FLOAT:
		config_setting_set_float(config_setting_add(parent, k->name, CONFIG_TYPE_FLOAT), *(const double *)p);
		return;
	default:
		break;
	}
	switch (k->size) {
	case 1: u = *(const uint8_t *)p; break;
	case 2: u = *(const uint16_t *)p; break;
	case 4: u = *(const uint32_t *)p; break;
	default: u = (unsigned long)*(const uint64_t *)p; break;
	}
	if (k->kind == K_UINT) {
		config_setting_set_int(config_setting_add(parent, k->name, CONFIG_TYPE_INT), (int)u);
		return;
	}
	s = config_setting_add(parent, k->name, CONFIG_TYPE_FLOAT);
	config_setting_set_float(s, (double)u / 1000.0);
}

static void add_group(config_setting_t *root, const char *name, const struct key *keys, size_t n,
		      void *const *bases)
{
	config_setting_t *g = config_setting_add(root, name, CONFIG_TYPE_GROUP);

	for (size_t i = 0; i < n; i++)
		add_value(g, &keys[i], bases[keys[i].target]);
}

int cfg_print(const struct cfg *c, FILE *to)
{
	void *bases[T_PACK + 1] = {
		[T_TOP] = (void *)c, [T_BATTERY] = (void *)&c->battery,
		[T_CHARGE] = (void *)&c->charge, [T_CAN] = (void *)&c->can,
		[T_MQTT] = (void *)&c->mqtt,
	};
	config_setting_t *root, *packs;
	config_t conf;

	config_init(&conf);
	root = config_root_setting(&conf);
	add_value(root, &top_keys[0], c);
	packs = config_setting_add(root, "packs", CONFIG_TYPE_LIST);
	for (unsigned i = 0; i < c->npacks; i++) {
		config_setting_t *g = config_setting_add(packs, NULL, CONFIG_TYPE_GROUP);

		for (size_t k = 0; k < NKEYS(pack_keys); k++) {
			const struct key *key = &pack_keys[k];
			bool is_replay_key = key->off == offsetof(struct cfg_pack, replay) ||
					     key->off == offsetof(struct cfg_pack, loop) ||
					     key->off == offsetof(struct cfg_pack, speed);
			bool is_ble_key = key->off == offsetof(struct cfg_pack, address) ||
					  key->off == offsetof(struct cfg_pack, adapter);

			/* Print only the keys that apply to this kind of pack. */
			if ((is_replay_key && !*c->packs[i].replay) || (is_ble_key && !*c->packs[i].address))
				continue;
			add_value(g, key, &c->packs[i]);
		}
	}
	add_group(root, "battery", battery_keys, NKEYS(battery_keys), bases);
	add_group(root, "charge", charge_keys, NKEYS(charge_keys), bases);
	add_group(root, "can", can_keys, NKEYS(can_keys), bases);
	add_group(root, "mqtt", mqtt_keys, NKEYS(mqtt_keys), bases);
	config_set_options(&conf, CONFIG_OPTION_SEMICOLON_SEPARATORS | CONFIG_OPTION_OPEN_BRACE_ON_SEPARATE_LINE);
	config_write(&conf, to);
	config_destroy(&conf);
	return ferror(to) ? -EIO : 0;
}
