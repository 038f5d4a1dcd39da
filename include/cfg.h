/*
 * cfg — /etc/jkbridged/jkbridged.conf (libconfig) to a validated struct cfg.
 *
 * Every problem is reported as "file:line: message" (unknown keys, wrong
 * types, out-of-range values, a charge voltage at or above OVP, two packs
 * with one address ...), all of them, not just the first; a struct cfg is
 * only handed out whole and valid, and is never edited in place: a reload
 * loads a new one and swaps it in.  Units in the file are the user's (V, A,
 * s, %); inside they are milli-units and milliseconds.
 */
#ifndef CFG_H
#define CFG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "canmsg.h"
#include "charge.h"
#include "jk_decode.h"

#define CFG_MAX_PACKS 16
#define CFG_NAME_MAX 32
#define CFG_MAX_DIAGS 32
#define CFG_DIAG_LEN 512

struct cfg_pack {
	char name[CFG_NAME_MAX];
	char address[18];		/* "C8:47:8C:E1:E2:AA", or "" for a replay pack */
	char adapter[16];		/* "hci0"; "" = any */
	enum jk_protocol protocol;	/* JK_PROTO_UNKNOWN = auto */
	char replay[PATH_MAX];		/* capture file, resolved against the config's folder */
	bool loop;
	double speed;
	uint32_t max_charge_ma;		/* a cap on this pack's limit; 0 = none (see bank.h) */
	uint32_t max_discharge_ma;
};

struct cfg_battery {
	enum charge_chemistry chemistry;
	unsigned cells;
	unsigned min_packs;
	uint32_t stale_after_ms;
	uint32_t startup_timeout_ms;
	uint32_t max_charge_ma;
	uint32_t max_discharge_ma;
};

struct cfg_can {
	char interface[64];		/* "can0", or "log:PATH" */
	enum canmsg_profile profile;
	char manufacturer[9];
	uint32_t keepalive_timeout_ms;
};

/* Home Assistant over MQTT; an empty host turns MQTT off (the default). */
struct cfg_mqtt {
	char host[256];
	unsigned port;			/* 1883 */
	char username[64];		/* "" = anonymous */
	char password_file[PATH_MAX];	/* the password, first line; never logged */
	char cafile[PATH_MAX];		/* set = TLS */
	char certfile[PATH_MAX];	/* client certificate (with keyfile), optional */
	char keyfile[PATH_MAX];
	char base_topic[64];		/* "jkbridged" */
	char discovery_prefix[64];	/* "homeassistant" */
	char client_id[64];		/* "" = "jkbridged-<hostname>"; also names the bridge in HA */
	uint32_t interval_ms;		/* state publish interval: 5 s */
	uint32_t keepalive_ms;		/* MQTT keep-alive: 30 s */
	bool allow_control;		/* command topics (switches); off by default */
};

struct cfg {
	char path[PATH_MAX];
	char state_dir[PATH_MAX];
	unsigned npacks;
	struct cfg_pack packs[CFG_MAX_PACKS];
	struct cfg_battery battery;
	struct charge_config charge;	/* battery.* copied in: cells, limits, chemistry */
	struct cfg_can can;
	struct cfg_mqtt mqtt;
};

struct cfg_diags {
	unsigned n;			/* may exceed CFG_MAX_DIAGS: the rest were dropped */
	char msg[CFG_MAX_DIAGS][CFG_DIAG_LEN];
};

/* Load and validate.  0 and *out filled, or -EINVAL with every problem in
 * diags (or -errno when the file cannot be read at all, also in diags). */
int cfg_load(const char *path, struct cfg *out, struct cfg_diags *diags);

/* The effective configuration, defaults filled in, in libconfig syntax. */
int cfg_print(const struct cfg *c, FILE *to);

/* The bank's view of the configuration. */
struct bank_config;
void cfg_bank_config(const struct cfg *c, struct bank_config *out);

#endif
