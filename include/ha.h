/*
 * ha — Home Assistant MQTT discovery documents and state payloads.
 *
 * Three kinds of device (landscape.md §2.4), each described by one retained
 * device-based discovery document at PREFIX/device/<device id>/config with
 * its entities under "cmps" (HA >= 2024.11, landscape.md §2.2):
 *
 *   bridge   BRIDGE_ID                 CAN link, inverter keep-alive, Bluetooth
 *                                      links, uptime, version
 *   battery  BRIDGE_ID_battery         the virtual battery: SOC, V, I, P,
 *                                      CVL/CCL/DCL, charge state, alarms,
 *                                      packs fresh, energy (via the bridge)
 *   pack     jkbridged_<mac12>         one per BMS, via the bridge; a replay
 *            BRIDGE_ID_<name>          pack (no address) takes the bridge's id
 *
 * BRIDGE_ID is the MQTT client id made a valid id ("jkbridged-pi" ->
 * "jkbridged_pi").  Entity unique_ids are "<device id>_<key>", so they do not
 * move when packs are reordered; default_entity_id ("sensor.jkbridged_top_
 * voltage") only suggests the entity id (object_id is deprecated).
 *
 * Topics under BASE (the base_topic, default "jkbridged"):
 *
 *   BASE/status                        "online" / "offline" (the MQTT will)
 *   BASE/bridge/state                  bridge diagnostics (JSON)
 *   BASE/battery/state                 virtual battery (JSON)
 *   BASE/battery/availability          "online" while it has a fresh pack
 *   BASE/battery/<switch>/set          forbid_charge, forbid_discharge
 *   BASE/pack/<name>/state             the pack's last sample (JSON)
 *   BASE/pack/<name>/availability      "online" while the pack is fresh
 *   BASE/pack/<name>/link              link diagnostics (JSON)
 *   BASE/pack/<name>/<switch>/set      charging, discharging, balancer
 *
 * Every entity is available only when the daemon is up and its device's
 * data is fresh (availability list, mode "all"), with expire_after as a
 * backstop; the few entities that stay meaningful without fresh data (link
 * diagnostics, packs fresh, alarms, charge state, the forbid switches) list
 * only BASE/status.  Values are in the units of landscape.md §2.8; a value
 * the BMS does not report is null, which HA shows as unknown.  Switches (only
 * with allow_control) show the state read back from the BMS or the charge
 * logic, never an echo of the command.
 *
 * Pure core: a view of the daemon's state in, jansson documents out.
 */
#ifndef HA_H
#define HA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bank.h"
#include "charge.h"
#include "energy.h"
#include "jk_cmd.h"
#include "jk_decode.h"

#define HA_MAX_PACKS 16
#define HA_ID_MAX 96
#define HA_TOPIC_MAX 256
#define HA_MIN_EXPIRE_S 30

/* How published documents are serialised (reals with 10 significant digits,
 * so 52.8 stays 52.8). */
#define HA_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

struct ha_config {
	const char *discovery_prefix;	/* "homeassistant" */
	const char *base_topic;		/* "jkbridged" */
	const char *bridge_id;		/* ha_make_id() of the client id */
	const char *bridge_name;	/* the client id, as the bridge device's name */
	const char *version;
	unsigned expire_after_s;	/* ha_expire_after() */
	unsigned cells;			/* per pack: one (disabled) sensor per cell */
	bool allow_control;		/* switches and command topics */
};

/* A pack's link, as its transport (Bluetooth, or a replayed capture) sees it. */
struct ha_link {
	bool connected;
	bool have_rssi;
	int16_t rssi_dbm;
	uint32_t reconnects;
	uint32_t frames;		/* jk_stream: valid frames */
	uint32_t bad_checksums;		/* jk_stream: rejected candidates */
};

struct ha_pack {
	const char *name;
	const char *address;		/* "" for a replay pack */
	bool fresh;			/* bank_pack_fresh() */
	const struct bank_pack *bank;	/* last sample and settings */
	const struct jk_device_info *info;	/* NULL until the BMS sent one */
	enum jk_protocol protocol;	/* learned or configured; UNKNOWN before the first frame */
	struct ha_link link;
	const struct energy_meter *energy;	/* NULL: not counted */
};

struct ha_bridge {
	const char *can_state;		/* canbus_state_name() */
	uint64_t can_sent;
	uint64_t can_dropped;		/* ENOBUFS drops and send errors */
	bool inverter_alive;		/* 0x305 keep-alive seen recently */
	uint64_t uptime_s;
};

struct ha_battery {
	const struct battery *bat;
	const struct charge_output *out;
	const struct energy_meter *energy;	/* NULL: not counted */
	bool forbid_charge, forbid_discharge;
};

struct ha_view {
	struct ha_bridge bridge;
	struct ha_battery battery;
	unsigned npacks;
	struct ha_pack packs[HA_MAX_PACKS];
};

/* Devices are numbered: the bridge, the battery, then pack i as 2 + i. */
enum { HA_DEV_BRIDGE = 0, HA_DEV_BATTERY = 1, HA_DEV_PACK0 = 2 };

static inline unsigned ha_devices(const struct ha_view *v)
{
	return HA_DEV_PACK0 + v->npacks;
}

enum ha_topic_kind {
	HA_TOPIC_DISCOVERY,	/* PREFIX/device/<id>/config */
	HA_TOPIC_STATE,
	HA_TOPIC_AVAILABILITY,	/* the bridge's is BASE/status */
	HA_TOPIC_LINK,		/* packs only; "" for the others */
};

/* "jkbridged-pi" -> "jkbridged_pi": lower case, [a-z0-9_] only. */
void ha_make_id(const char *in, char *out, size_t n);

/* expire_after for a state interval: 3 intervals, at least HA_MIN_EXPIRE_S. */
unsigned ha_expire_after(uint32_t interval_ms);

void ha_device_id(const struct ha_config *c, const struct ha_view *v, unsigned dev, char *out, size_t n);
void ha_topic(const struct ha_config *c, const struct ha_view *v, unsigned dev, enum ha_topic_kind kind,
	      char *out, size_t n);

/* The discovery document of a device (new reference). */
json_t *ha_discovery(const struct ha_config *c, const struct ha_view *v, unsigned dev);

/* The platform of every component of a document ({"voltage": "sensor", ...}),
 * to remember what was published and remove what a later one drops. */
json_t *ha_components(const json_t *discovery);

/* The same document with each component in `gone` (key -> platform) reduced
 * to {"p": platform}: how HA is told to remove those entities. */
json_t *ha_discovery_removing(const json_t *discovery, const json_t *gone);

/* State payloads (new references).  A pack's state is only meaningful while
 * it is fresh; its link state always is. */
json_t *ha_state(const struct ha_config *c, const struct ha_view *v, unsigned dev);
json_t *ha_link_state(const struct ha_config *c, const struct ha_view *v, unsigned pack);

/* "online" or "offline" for a device's availability topic. */
bool ha_available(const struct ha_view *v, unsigned dev);

/* --------------------------------------------------------------- commands */

/* The subscriptions for command topics (allow_control only). */
#define HA_COMMAND_FILTERS 2
void ha_command_filters(const struct ha_config *c, char out[HA_COMMAND_FILTERS][HA_TOPIC_MAX]);

enum ha_command_kind {
	HA_CMD_PACK_SWITCH,		/* pack, sw, on */
	HA_CMD_FORBID_CHARGE,		/* on */
	HA_CMD_FORBID_DISCHARGE,	/* on */
};

struct ha_command {
	enum ha_command_kind kind;
	unsigned pack;
	enum jk_switch sw;
	bool on;
};

enum ha_command_result {
	HA_COMMAND_OK,
	HA_COMMAND_NOT_A_COMMAND,	/* not under a command topic */
	HA_COMMAND_UNKNOWN,		/* a command topic naming no pack or switch */
	HA_COMMAND_BAD_PAYLOAD,		/* anything but exactly "ON" or "OFF" */
};

enum ha_command_result ha_command_parse(const struct ha_config *c, const struct ha_view *v,
					const char *topic, const void *payload, size_t len,
					struct ha_command *out);

#endif
