/*
 * jkbms sim — serve simulated JK-BMS packs as a BlueZ look-alike on D-Bus.
 *
 *	jkbms sim -c FILE [--bus ADDRESS] [--check] [--peripheral hciN]
 *
 * The configuration (libconfig) names the packs:
 *
 *	sim_packs = (
 *	  { address = "C8:47:8C:00:00:01"; name = "JK_PB2A16S20P"; protocol = "jk02_32s";
 *	    cells = 16; capacity_ah = 280.0; soc = 60.0; current = -10.5; temperature = 25.0; }
 *	);
 *	gatt_cache = true;	# optional: GATT objects stay after a disconnect (BlueZ's default)
 *
 * Per pack, optional: adapter = "hci0" (every adapter a pack names is
 * exported), module = "old" | "new" (default from the address: C8:47:8C and
 * C8:47:80 are old), mtu = 23..517, strict_order = true (fw 20.20: no
 * stream without a 0x97 first) and the faults in force at start (refuse,
 * silence, junk, corrupt, stale = true).  Problems are reported as
 * "file:line: message", all of them; unknown keys are refused, as in cfg.c.
 */
#include <ctype.h>
#include <getopt.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jkbms_cmds.h"
#include "sim.h"
#include "sim_peripheral.h"

enum { EXIT_USAGE = 2 };

enum key_kind { K_STR, K_BOOL, K_NUMBER, K_INT };

/* A pack's keys as read, before they are turned into a sim_pack_config. */
struct pack_raw {
	char address[18], name[JK_STR_MAX], protocol[16], adapter[8], module[8];
	double cells, capacity_ah, soc, current, temperature, mtu;
	bool strict_order, refuse, silence, junk, corrupt, stale;
	unsigned seen;			/* bit per key of pack_keys */
};

struct key {
	const char *name;
	enum key_kind kind;
	size_t off, size;
	double min, max;
};

#define KEY(n, k, field, lo, hi) \
	{ .name = n, .kind = k, .off = offsetof(struct pack_raw, field), \
	  .size = sizeof(((struct pack_raw *)0)->field), .min = lo, .max = hi }

static const struct key pack_keys[] = {
	KEY("address", K_STR, address, 0, 0),
	KEY("name", K_STR, name, 0, 0),
	KEY("protocol", K_STR, protocol, 0, 0),
	KEY("cells", K_INT, cells, 1, 32),
	KEY("capacity_ah", K_NUMBER, capacity_ah, 1, 2000),
	KEY("soc", K_NUMBER, soc, 0, 100),
	KEY("current", K_NUMBER, current, -1000, 1000),
	KEY("temperature", K_NUMBER, temperature, -40, 100),
	KEY("adapter", K_STR, adapter, 0, 0),
	KEY("module", K_STR, module, 0, 0),
	KEY("mtu", K_INT, mtu, 23, 517),
	KEY("strict_order", K_BOOL, strict_order, 0, 0),
	KEY("refuse", K_BOOL, refuse, 0, 0),
	KEY("silence", K_BOOL, silence, 0, 0),
	KEY("junk", K_BOOL, junk, 0, 0),
	KEY("corrupt", K_BOOL, corrupt, 0, 0),
	KEY("stale", K_BOOL, stale, 0, 0),
};

#define NKEYS (sizeof(pack_keys) / sizeof(pack_keys[0]))

struct loader {
	const char *path;
	unsigned errors;
};

static void diag(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void diag(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	va_list ap;

	fprintf(stderr, "%s:%u: ", file ? file : ld->path, s ? config_setting_source_line(s) : 0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ld->errors++;
}

static void load_key(struct loader *ld, const config_setting_t *s, const struct key *k, struct pack_raw *raw)
{
	void *p = (char *)raw + k->off;
	int t = config_setting_type(s);
	double v;

	switch (k->kind) {
	case K_STR: {
		const char *str = config_setting_get_string(s);

		if (!str)
			diag(ld, s, "%s must be a string", k->name);
		else if (strlen(str) >= k->size)
			diag(ld, s, "%s is too long (at most %zu characters)", k->name, k->size - 1);
		else
			strcpy(p, str);
		return;
	}
	case K_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			diag(ld, s, "%s must be true or false", k->name);
		else
			*(bool *)p = config_setting_get_bool(s);
		return;
	case K_INT:
	case K_NUMBER:
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64 && (k->kind == K_INT || t != CONFIG_TYPE_FLOAT)) {
			diag(ld, s, "%s must be a %s", k->name, k->kind == K_INT ? "whole number" : "number");
			return;
		}
		v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) : (double)config_setting_get_int64(s);
		if (v < k->min || v > k->max)
			diag(ld, s, "%s = %g is out of range (%g to %g)", k->name, v, k->min, k->max);
		else
			*(double *)p = v;
		return;
	}
}

static void load_pack_keys(struct loader *ld, const config_setting_t *g, struct pack_raw *raw, unsigned n)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k;

		for (k = 0; k < NKEYS && (!name || strcmp(name, pack_keys[k].name) != 0); k++)
			;
		if (k == NKEYS) {
			diag(ld, s, "unknown key '%s' in sim pack %u", name ? name : "?", n);
			continue;
		}
		load_key(ld, s, &pack_keys[k], raw);
		raw->seen |= 1u << k;
	}
}

static bool has(const struct pack_raw *raw, const char *key)
{
	for (size_t k = 0; k < NKEYS; k++)
		if (strcmp(pack_keys[k].name, key) == 0)
			return raw->seen & 1u << k;
	return false;
}

static bool valid_address(const char *a)
{
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? a[i] != ':' : !isxdigit((unsigned char)a[i]))
			return false;
	return a[17] == '\0';
}

static uint32_t address_seed(const char *a)
{
	uint32_t h = 2166136261u;	/* FNV-1a: a fixed, per-pack cell spread */

	for (; *a; a++)
		h = (h ^ (uint8_t)toupper((unsigned char)*a)) * 16777619u;
	return h;
}

static void convert_protocol(struct loader *ld, const config_setting_t *g, const struct pack_raw *raw,
			     struct sim_pack_config *p)
{
	p->battery.protocol = JK_PROTO_JK02_32S;
	if (has(raw, "protocol") && (jk_protocol_parse(raw->protocol, &p->battery.protocol) < 0 ||
				     p->battery.protocol == JK_PROTO_UNKNOWN))
		diag(ld, g, "protocol '%s' is not one of jk02_24s, jk02_32s, jk04", raw->protocol);
	if (p->battery.protocol != JK_PROTO_JK02_32S && raw->cells > 24)
		diag(ld, g, "cells = %g: %s has at most 24 cells", raw->cells,
		     jk_protocol_name(p->battery.protocol));
}

static void convert_link(struct loader *ld, const config_setting_t *g, const struct pack_raw *raw,
			 struct sim_pack_config *p)
{
	char *end;
	unsigned long n;

	p->adapter = 0;
	if (has(raw, "adapter")) {
		n = strncmp(raw->adapter, "hci", 3) == 0 && isdigit((unsigned char)raw->adapter[3]) ?
			    strtoul(raw->adapter + 3, &end, 10) : SIM_MAX_ADAPTER_INDEX + 1;
		if (n > SIM_MAX_ADAPTER_INDEX || *end)
			diag(ld, g, "adapter '%s' is not hci0 .. hci%d", raw->adapter, SIM_MAX_ADAPTER_INDEX);
		else
			p->adapter = (unsigned)n;
	}
	p->module = sim_module_for_address(p->address);
	if (has(raw, "module") && strcmp(raw->module, "old") == 0)
		p->module = SIM_MODULE_OLD;
	else if (has(raw, "module") && strcmp(raw->module, "new") == 0)
		p->module = SIM_MODULE_NEW;
	else if (has(raw, "module"))
		diag(ld, g, "module '%s' is not old or new", raw->module);
	/* MTU 23 on the JK04 capture (20-byte notifications), 131 elsewhere (§1.3). */
	p->mtu = has(raw, "mtu") ? (uint16_t)raw->mtu : p->battery.protocol == JK_PROTO_JK04 ? 23 : 131;
}

static void convert_pack(struct loader *ld, const config_setting_t *g, const struct pack_raw *raw,
			 struct sim_pack_config *p)
{
	struct sim_battery_config *b = &p->battery;

	if (!has(raw, "address") || !valid_address(raw->address))
		diag(ld, g, "sim pack needs address = \"C8:47:8C:00:00:01\" (six hex pairs)%s%s",
		     has(raw, "address") ? ", not " : "", has(raw, "address") ? raw->address : "");
	for (size_t i = 0; i < sizeof(p->address) && raw->address[i]; i++)
		p->address[i] = (char)toupper((unsigned char)raw->address[i]);
	convert_protocol(ld, g, raw, p);
	snprintf(b->name, sizeof(b->name), "%s",
		 has(raw, "name") ? raw->name : sim_battery_identity(b->protocol)->model);
	for (const char *c = b->name; *c; c++)
		if (!isprint((unsigned char)*c))
			diag(ld, g, "name must be printable ASCII");
	b->cells = has(raw, "cells") ? (uint8_t)raw->cells : 16;
	b->capacity_mah = (uint32_t)((has(raw, "capacity_ah") ? raw->capacity_ah : 280.0) * 1000 + 0.5);
	b->soc_permille = (uint16_t)((has(raw, "soc") ? raw->soc : 50.0) * 10 + 0.5);
	b->current_ma = (int32_t)(raw->current * 1000 + (raw->current < 0 ? -0.5 : 0.5));
	b->temp_dc = (int16_t)((has(raw, "temperature") ? raw->temperature : 25.0) * 10 +
			       (raw->temperature < 0 ? -0.5 : 0.5));
	b->seed = address_seed(p->address);
	b->strict_order = raw->strict_order;
	convert_link(ld, g, raw, p);
	p->refuse = raw->refuse;
	p->silence = raw->silence;
	p->junk = raw->junk;
	p->corrupt = raw->corrupt;
	p->stale = raw->stale;
}

static void load_packs(struct loader *ld, const config_setting_t *list, struct sim_config *c)
{
	int n = list ? config_setting_length(list) : 0;
	unsigned adapters = 0;

	if (!list || !config_setting_is_list(list) || n == 0) {
		diag(ld, list, "sim_packs: at least one pack is needed, as sim_packs = ( { address = ...; } );");
		return;
	}
	if (n > SIM_MAX_PACKS) {
		diag(ld, list, "sim_packs: at most %d packs", SIM_MAX_PACKS);
		n = SIM_MAX_PACKS;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct sim_pack_config *p = &c->packs[c->npacks++];
		struct pack_raw raw = { .seen = 0 };

		if (!config_setting_is_group(g)) {
			diag(ld, g, "sim pack %d must be a group { ... }", i + 1);
			continue;
		}
		load_pack_keys(ld, g, &raw, (unsigned)i + 1);
		convert_pack(ld, g, &raw, p);
		for (unsigned j = 0; j + 1 < c->npacks; j++)
			if (strcmp(c->packs[j].address, p->address) == 0 && *p->address)
				diag(ld, g, "address %s is sim pack %u's too", p->address, j + 1);
		adapters |= 1u << p->adapter;
	}
	if (__builtin_popcount(adapters) > SIM_MAX_ADAPTERS)
		diag(ld, list, "at most %d different adapters", SIM_MAX_ADAPTERS);
}

static int sim_config_load(const char *path, struct sim_config *c)
{
	struct loader ld = { .path = path };
	config_setting_t *root;
	config_t conf;

	memset(c, 0, sizeof(*c));
	c->gatt_cache = true;
	config_init(&conf);
	if (!config_read_file(&conf, path)) {
		fprintf(stderr, "%s:%d: %s\n", config_error_file(&conf) ? config_error_file(&conf) : path,
			config_error_line(&conf), config_error_text(&conf));
		config_destroy(&conf);
		return -1;
	}
	root = config_root_setting(&conf);
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);

		if (strcmp(name, "sim_packs") == 0)
			continue;
		if (strcmp(name, "gatt_cache") != 0)
			diag(&ld, s, "unknown key '%s' (sim_packs, gatt_cache)", name);
		else if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			diag(&ld, s, "gatt_cache must be true or false");
		else
			c->gatt_cache = config_setting_get_bool(s);
	}
	load_packs(&ld, config_lookup(&conf, "sim_packs"), c);
	config_destroy(&conf);
	return ld.errors ? -1 : 0;
}

static void print_config(const struct sim_config *c)
{
	for (unsigned i = 0; i < c->npacks; i++) {
		const struct sim_pack_config *p = &c->packs[i];
		const struct sim_battery_config *b = &p->battery;

		printf("%s hci%u %s module, %s \"%s\", %u cells, %.1f Ah, SOC %.1f %%, %.3f A, %.1f C, MTU %u%s%s%s%s%s%s\n",
		       p->address, p->adapter, p->module == SIM_MODULE_OLD ? "old" : "new",
		       jk_protocol_name(b->protocol), b->name, b->cells, b->capacity_mah / 1000.0,
		       b->soc_permille / 10.0, b->current_ma / 1000.0, b->temp_dc / 10.0, p->mtu,
		       b->strict_order ? ", strict order" : "", p->refuse ? ", refuse" : "",
		       p->silence ? ", silence" : "", p->junk ? ", junk" : "", p->corrupt ? ", corrupt" : "",
		       p->stale ? ", stale" : "");
	}
	printf("gatt_cache %s\n", c->gatt_cache ? "true" : "false");
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: jkbms sim -c FILE [--bus ADDRESS] [--check] [--peripheral hciN]\n"
		"Serve simulated JK-BMS packs as org.bluez on D-Bus: the system bus\n"
		"(DBUS_SYSTEM_BUS_ADDRESS if set) or --bus ADDRESS.  Fault injection on stdin,\n"
		"one command a line:\n"
		"  drop ADDR                      the link is lost now\n"
		"  refuse ADDR on|off             Connect fails (le-connection-abort-by-local)\n"
		"  silence ADDR on|off            the BMS stops answering and streaming; the link stays\n"
		"  junk ADDR on|off               \"AT\\r\\n\" and noise between frames\n"
		"  corrupt ADDR on|off            frames with bad checksums\n"
		"  stale ADDR on|off              stays Connected as if held by an earlier client\n"
		"  set ADDR soc=N current=A temperature=C\n"
		"  status | help\n"
		"  -c, --config FILE   the packs (libconfig)\n"
		"  -b, --bus ADDRESS   a D-Bus address instead of the system bus\n"
		"  -n, --check         check the configuration, print it and exit\n"
		"  -p, --peripheral hciN  serve the first pack through the real bluetoothd as a BLE\n"
		"                      peripheral on hciN (GATT application + advertisement)\n");
}

int jkbms_sim_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "bus", required_argument, NULL, 'b' },
		{ "check", no_argument, NULL, 'n' },
		{ "peripheral", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct sim_config cfg;
	const char *path = NULL, *bus = NULL, *peripheral = NULL;
	bool check = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:b:np:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'b':
			bus = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'p':
			peripheral = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sim_config_load(path, &cfg) < 0)
		return 1;
	if (check) {
		print_config(&cfg);
		return 0;
	}
	if (peripheral)
		return sim_peripheral_run(&cfg, bus, peripheral);
	return sim_run(&cfg, bus);
}
