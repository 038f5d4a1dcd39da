/*
 * mqtt — Home Assistant over MQTT: libmosquitto driven from the daemon's
 * epoll loop (no thread of its own), publishing what ha builds.
 *
 *   - the socket is in the loop, EPOLLOUT only while mosquitto_want_write();
 *     a 1 s timer runs mosquitto_loop_misc() (keep-alive pings);
 *   - the connection is asynchronous; a failed or lost one is retried with
 *     exponential back-off (1 s doubling to 60 s) and jitter, forever: a
 *     lost broker is a state, never an exit;
 *   - the will is BASE/status = "offline" (retained); "online" is published
 *     after every connect, and "offline" before a clean stop (the broker
 *     sends the will only when the link dies);
 *   - on every connect, and 1-5 s (random) after Home Assistant announces
 *     itself on PREFIX/status = "online", every discovery document is
 *     published (retained), then every availability and state;
 *   - states every `interval` seconds; a pack's or the battery's
 *     availability as soon as it changes (a stale pack is shown unavailable
 *     at once, never as a frozen value);
 *   - the devices published are remembered in STATE_DIR/mqtt.json: a device
 *     gone from the configuration gets its discovery document and its
 *     retained topics cleared (empty retained payloads), and a component a
 *     document no longer has is removed the way HA asks (ha.h); a pack not
 *     heard from since the start is described as last time (its protocol
 *     and model are kept there too), so a restart removes no entity;
 *   - commands (allow_control only; otherwise nothing is subscribed) are
 *     handed to the daemon's hooks below; a malformed one is logged once and
 *     ignored.  The password is read from its file and never logged.
 *
 * TLS (cafile, optionally certfile + keyfile) and username/password are
 * set once per connection object; a change of any MQTT key on reload makes
 * a new one.  A host name is resolved with getaddrinfo(), which blocks:
 * give the broker as an IP address or in /etc/hosts where DNS may be slow.
 */
#ifndef MQTT_H
#define MQTT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "ha.h"
#include "jk_cmd.h"
#include "loop.h"

#define MQTT_STATE_FILE "mqtt.json"
#define MQTT_MISC_MS 1000
#define MQTT_BACKOFF_MIN_MS 1000
#define MQTT_BACKOFF_MAX_MS 60000
#define MQTT_BIRTH_MIN_MS 1000		/* delay after HA's birth message */
#define MQTT_BIRTH_MAX_MS 5000
#define MQTT_FLUSH_MS 500		/* at most this long to flush "offline" at stop */

enum mqtt_state {
	MQTT_OFF,		/* no host configured, or the set-up failed (logged) */
	MQTT_WAITING,		/* back-off before the next attempt */
	MQTT_CONNECTING,
	MQTT_CONNECTED,
};

struct mosquitto;

struct mqtt {
	struct cfg_mqtt cfg;
	char state_dir[PATH_MAX];
	char client_id[96];
	char bridge_id[HA_ID_MAX];
	struct ha_config ha;
	struct loop *loop;
	struct mosquitto *mosq;
	bool opened;
	enum mqtt_state state;
	struct loop_source sock, misc_timer, retry_timer, birth_timer;
	uint32_t sock_events;		/* as registered */
	unsigned failures;		/* consecutive failed attempts */
	char last_error[128];		/* as last logged */
	char refusal[96];		/* the broker's CONNACK refusal, for the next log line */
	uint32_t rng;

	uint64_t last_states_ms;
	int8_t available[HA_DEV_PACK0 + HA_MAX_PACKS];	/* as published; -1 = not yet */
	json_t *docs[HA_DEV_PACK0 + HA_MAX_PACKS];	/* discovery as published on this connection */
	json_t *published;		/* device id -> what is retained for it (mqtt.json) */
	struct jk_device_info infos[HA_MAX_PACKS];	/* remembered, until the packs say */
	json_t *keep;			/* retained topics the configured devices use */

	/* Logged once (one line per kind of refusal, not one per message). */
	bool unknown_logged, refused_logged;
	uint64_t bad_payload_logged;	/* bit per command target */
	uint32_t unsupported_logged;	/* bit per pack */
};

/* Start (an empty host: MQTT stays off).  0, or -errno when the loop
 * cannot take the timers; a broker that cannot be reached is not an error. */
int mqtt_open(struct mqtt *m, struct loop *l, const struct cfg *c);

/* "offline", then a clean disconnect; safe after any mqtt_open(). */
void mqtt_close(struct mqtt *m);

/* A new configuration: reconnects when an MQTT key changed, and publishes
 * the discovery again (packs may have come or gone). */
int mqtt_reload(struct mqtt *m, const struct cfg *c);

/* Once per daemon tick: availability changes at once, states and changed
 * discovery documents every interval. */
void mqtt_tick(struct mqtt *m, uint64_t now_ms);

/* Implemented by the daemon (jkbridged.c). */
void daemon_ha_view(struct ha_view *out);
/* Write a pack's switch; the state shown stays the one the BMS reports.
 * -EOPNOTSUPP when the pack cannot be written (a replay pack). */
int daemon_pack_switch(unsigned pack, enum jk_switch sw, bool on);
/* Forbid (or allow again) charging or discharging the battery; persisted. */
int daemon_battery_forbid(bool charge, bool on);

#endif
