/*
 * mqtt — libmosquitto in the daemon's loop, publishing Home Assistant
 * discovery and states (see mqtt.h).
 *
 * States: OFF (no host, or a set-up error) -> CONNECTING -> CONNECTED ->
 * WAITING (back-off) -> CONNECTING ...; every change goes through
 * set_state().  Invariants: the socket is registered in the loop exactly
 * while libmosquitto has one (watch() after every libmosquitto call keeps
 * it so, with EPOLLOUT only while there is something to write); the retry
 * timer is armed only in WAITING; what is published always comes from a
 * fresh view of the daemon (daemon_ha_view()), never from a copy.
 */
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt.h"
#include "service.h"
#include "store.h"

#ifndef JKB_VERSION
#define JKB_VERSION "0.0.0"
#endif

#define NDEV (HA_DEV_PACK0 + HA_MAX_PACKS)
#define BAD_FORBID_CHARGE 48	/* bits of bad_payload_logged above the packs' */
#define BAD_FORBID_DISCHARGE 49

static void on_socket(struct loop_source *src, uint32_t events);
static void publish_all(struct mqtt *m);

static const char *state_name(enum mqtt_state s)
{
	switch (s) {
	case MQTT_OFF: return "off";
	case MQTT_WAITING: return "waiting";
	case MQTT_CONNECTING: return "connecting";
	case MQTT_CONNECTED: return "connected";
	}
	return "?";
}

static void set_state(struct mqtt *m, enum mqtt_state s)
{
	if (m->state != s)
		log_debug("mqtt: %s -> %s", state_name(m->state), state_name(s));
	m->state = s;
}

static uint32_t rnd(struct mqtt *m)
{
	uint32_t x = m->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return m->rng = x;
}

/* --------------------------------------------------------- the socket */

/* Keep the loop's registration in line with libmosquitto's socket. */
static void watch(struct mqtt *m)
{
	int fd = m->mosq ? mosquitto_socket(m->mosq) : -1;
	uint32_t ev = EPOLLIN;
	int rc;

	if (fd >= 0 && mosquitto_want_write(m->mosq))
		ev |= EPOLLOUT;
	if (m->sock.loop && m->sock.fd != fd)
		loop_remove(&m->sock);
	if (fd < 0)
		return;
	if (!m->sock.loop) {
		rc = loop_add(m->loop, &m->sock, fd, ev, on_socket, m);
		m->sock_events = ev;
	} else if (ev != m->sock_events) {
		rc = loop_modify(&m->sock, ev);
		m->sock_events = ev;
	} else {
		rc = 0;
	}
	if (rc < 0)
		log_err("mqtt: cannot watch the socket: %s", strerror(-rc));
}

static void schedule_retry(struct mqtt *m, const char *why)
{
	unsigned shift = m->failures < 6 ? m->failures : 6;
	uint64_t base = (uint64_t)MQTT_BACKOFF_MIN_MS << shift;
	uint64_t delay;
	bool was_connected = m->state == MQTT_CONNECTED;

	if (base > MQTT_BACKOFF_MAX_MS)
		base = MQTT_BACKOFF_MAX_MS;
	delay = base / 2 + rnd(m) % (base / 2 + 1);	/* jitter: half to all of it */
	m->failures++;
	if (m->sock.loop)
		loop_remove(&m->sock);
	for (unsigned i = 0; i < NDEV; i++) {
		json_decref(m->docs[i]);
		m->docs[i] = NULL;
	}
	set_state(m, MQTT_WAITING);
	if (was_connected)
		log_warn("mqtt: connection to %s:%u lost (%s); reconnecting in %.1f s", m->cfg.host, m->cfg.port,
			 why, delay / 1000.0);
	else if (strcmp(why, m->last_error) != 0)
		log_warn("mqtt: cannot connect to %s:%u (%s); retrying with back-off up to %u s", m->cfg.host,
			 m->cfg.port, why, MQTT_BACKOFF_MAX_MS / 1000);
	else
		log_debug("mqtt: still cannot connect (%s); next attempt in %.1f s", why, delay / 1000.0);
	snprintf(m->last_error, sizeof(m->last_error), "%s", why);
	loop_timer_arm(&m->retry_timer, delay, 0);
}

static void attempt(struct mqtt *m)
{
	int rc;

	if (m->sock.loop)
		loop_remove(&m->sock);
	set_state(m, MQTT_CONNECTING);
	errno = 0;
	rc = mosquitto_connect_async(m->mosq, m->cfg.host, (int)m->cfg.port, (int)(m->cfg.keepalive_ms / 1000));
	if (rc != MOSQ_ERR_SUCCESS) {
		schedule_retry(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return;
	}
	watch(m);
}

/* libmosquitto has closed its socket (or is about to). */
static void lost(struct mqtt *m, const char *why)
{
	if (m->sock.loop)
		loop_remove(&m->sock);
	if (m->state == MQTT_CONNECTING || m->state == MQTT_CONNECTED)
		schedule_retry(m, why);
}

static void after_io(struct mqtt *m, int rc)
{
	if (m->mosq && mosquitto_socket(m->mosq) < 0)
		lost(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	else
		watch(m);
}

static void on_socket(struct loop_source *src, uint32_t events)
{
	struct mqtt *m = src->data;
	int rc = MOSQ_ERR_SUCCESS;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(m->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT) && mosquitto_socket(m->mosq) >= 0)
		rc = mosquitto_loop_write(m->mosq, 1);
	after_io(m, rc);
}

static void on_misc(struct loop_source *src, uint32_t events)
{
	struct mqtt *m = src->data;

	loop_timer_ack(src);
	if (m->state == MQTT_CONNECTING || m->state == MQTT_CONNECTED)
		after_io(m, mosquitto_loop_misc(m->mosq));
}

static void on_retry(struct loop_source *src, uint32_t events)
{
	struct mqtt *m = src->data;

	loop_timer_ack(src);
	if (m->state == MQTT_WAITING)
		attempt(m);
}

static void on_birth(struct loop_source *src, uint32_t events)
{
	struct mqtt *m = src->data;

	loop_timer_ack(src);
	if (m->state == MQTT_CONNECTED) {
		log_info("mqtt: Home Assistant is back: discovery and states published again");
		publish_all(m);
	}
}

/* ------------------------------------------------------------ publishing */

static void publish(struct mqtt *m, const char *topic, const char *payload, int qos, bool retain)
{
	int len = payload ? (int)strlen(payload) : 0;
	int rc = mosquitto_publish(m->mosq, NULL, topic, len, payload, qos, retain);

	if (rc != MOSQ_ERR_SUCCESS)
		log_debug("mqtt: %s not published: %s", topic, mosquitto_strerror(rc));
}

static void publish_json(struct mqtt *m, const char *topic, const json_t *doc, int qos, bool retain)
{
	char *text = doc ? json_dumps(doc, HA_JSON_FLAGS) : NULL;

	if (text)
		publish(m, topic, text, qos, retain);
	free(text);
}

/* An empty retained message removes what the broker keeps for a topic;
 * never one a configured device uses now (a pack renamed to another's old
 * name takes over its topics). */
static void clear(struct mqtt *m, const char *topic)
{
	if (*topic && !json_object_get(m->keep, topic))
		publish(m, topic, NULL, 1, true);
}

static void status_topic(const struct mqtt *m, char *out, size_t n)
{
	snprintf(out, n, "%s/status", m->cfg.base_topic);
}

/* The topics a device keeps retained besides its discovery document. */
static json_t *retained_topics(const struct mqtt *m, const struct ha_view *v, unsigned dev)
{
	static const enum ha_topic_kind kinds[] = { HA_TOPIC_STATE, HA_TOPIC_AVAILABILITY, HA_TOPIC_LINK };
	json_t *list = json_array();

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char topic[HA_TOPIC_MAX];

		if (dev == HA_DEV_BRIDGE && kinds[i] == HA_TOPIC_AVAILABILITY)
			continue;	/* BASE/status: the will, not the device's */
		ha_topic(&m->ha, v, dev, kinds[i], topic, sizeof(topic));
		if (*topic)
			json_array_append_new(list, json_string(topic));
	}
	return list;
}

static void keep_current(struct mqtt *m, const struct ha_view *v)
{
	json_decref(m->keep);
	m->keep = json_object();
	for (unsigned dev = 0; dev < ha_devices(v); dev++) {
		json_t *list = retained_topics(m, v, dev), *t;
		size_t i;

		json_array_foreach(list, i, t)
			json_object_set_new(m->keep, json_string_value(t), json_true());
		json_decref(list);
	}
}

static bool list_has(const json_t *list, const char *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e)
		if (strcmp(json_string_value(e), s) == 0)
			return true;
	return false;
}

static void save_published(struct mqtt *m)
{
	json_t *doc = json_pack("{s:i, s:O}", "version", 1, "devices", m->published);
	int rc = doc ? store_save(m->state_dir, MQTT_STATE_FILE, doc) : -ENOMEM;

	json_decref(doc);
	if (rc < 0)
		log_warn("mqtt: cannot save %s/%s: %s", m->state_dir, MQTT_STATE_FILE, strerror(-rc));
}

static void load_published(struct mqtt *m)
{
	char err[512];
	json_t *doc = store_load(m->state_dir, MQTT_STATE_FILE, err, sizeof(err));
	json_t *devices = json_object_get(doc, "devices");

	if (!doc && *err)
		log_warn("mqtt: %s; devices published before are not known", err);
	if (json_integer_value(json_object_get(doc, "version")) == 1 && json_is_object(devices))
		m->published = json_incref(devices);
	else
		m->published = json_object();
	json_decref(doc);
}

/* What was retained for a device before and is not any more: cleared. */
static void clear_stale_parts(struct mqtt *m, const json_t *old, const char *config, const json_t *retained)
{
	const char *old_config = json_string_value(json_object_get(old, "config"));
	size_t i;
	json_t *t;

	if (old_config && strcmp(old_config, config) != 0)
		clear(m, old_config);
	json_array_foreach(json_object_get(old, "retained"), i, t)
		if (json_is_string(t) && !list_has(retained, json_string_value(t)))
			clear(m, json_string_value(t));
}

static const char *text_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/*
 * A pack that has not spoken since the start (protocol and device info not
 * known yet) is described as it was last time, so that a restart neither
 * removes and re-adds its protocol-specific entities (HA would forget their
 * settings) nor flips its model to "JK-BMS" for a few seconds.
 */
static void remembered_packs(struct mqtt *m, struct ha_view *v)
{
	for (unsigned i = 0; i < v->npacks; i++) {
		struct ha_pack *p = &v->packs[i];
		char id[HA_ID_MAX];
		const json_t *old, *info;
		enum jk_protocol proto;

		ha_device_id(&m->ha, v, HA_DEV_PACK0 + i, id, sizeof(id));
		old = json_object_get(m->published, id);
		if (p->protocol == JK_PROTO_UNKNOWN &&
		    json_is_string(json_object_get(old, "protocol")) &&
		    jk_protocol_parse(json_string_value(json_object_get(old, "protocol")), &proto) == 0)
			p->protocol = proto;
		info = json_object_get(old, "info");
		if (p->info || !json_is_object(info))
			continue;
		memset(&m->infos[i], 0, sizeof(m->infos[i]));
		snprintf(m->infos[i].model, JK_STR_MAX, "%s", text_of(info, "model"));
		snprintf(m->infos[i].hw_version, JK_STR_MAX, "%s", text_of(info, "hw"));
		snprintf(m->infos[i].sw_version, JK_STR_MAX, "%s", text_of(info, "sw"));
		snprintf(m->infos[i].serial, JK_STR_MAX, "%s", text_of(info, "sn"));
		p->info = &m->infos[i];
	}
}

/* What mqtt.json keeps of a pack besides its topics: protocol and device info. */
static void remember_pack(json_t *entry, const struct ha_view *v, unsigned dev)
{
	const struct ha_pack *p = dev >= HA_DEV_PACK0 ? &v->packs[dev - HA_DEV_PACK0] : NULL;

	if (p && p->protocol != JK_PROTO_UNKNOWN)
		json_object_set_new(entry, "protocol", json_string(jk_protocol_name(p->protocol)));
	if (p && p->info)
		json_object_set_new(entry, "info", json_pack("{s:s, s:s, s:s, s:s}", "model", p->info->model,
							     "hw", p->info->hw_version, "sw", p->info->sw_version,
							     "sn", p->info->serial));
}

/* Publish a device's discovery document (takes doc). */
static bool publish_discovery(struct mqtt *m, const struct ha_view *v, unsigned dev, json_t *doc)
{
	char id[HA_ID_MAX], topic[HA_TOPIC_MAX];
	json_t *cmps = ha_components(doc), *retained = retained_topics(m, v, dev), *old, *entry, *platform;
	json_t *gone = json_object();
	const char *key;
	bool changed;

	ha_device_id(&m->ha, v, dev, id, sizeof(id));
	ha_topic(&m->ha, v, dev, HA_TOPIC_DISCOVERY, topic, sizeof(topic));
	old = json_object_get(m->published, id);
	if (old) {
		clear_stale_parts(m, old, topic, retained);
		json_object_foreach(json_object_get(old, "cmps"), key, platform)
			if (!json_object_get(cmps, key))
				json_object_set(gone, key, platform);
	}
	if (json_object_size(gone)) {
		json_t *removing = ha_discovery_removing(doc, gone);

		publish_json(m, topic, removing, 1, true);
		json_decref(removing);
	}
	json_decref(gone);
	publish_json(m, topic, doc, 1, true);
	entry = json_pack("{s:s, s:o, s:o}", "config", topic, "retained", retained, "cmps", cmps);
	remember_pack(entry, v, dev);
	changed = !old || !json_equal(old, entry);
	json_object_set_new(m->published, id, entry);
	json_decref(m->docs[dev]);
	m->docs[dev] = doc;
	return changed;
}

/* Devices published before that the configuration no longer has. */
static bool clear_removed(struct mqtt *m, const struct ha_view *v)
{
	const char *key;
	json_t *entry, *t;
	void *tmp;
	bool changed = false;

	json_object_foreach_safe(m->published, tmp, key, entry) {
		char id[HA_ID_MAX];
		bool current = false;
		size_t i;

		for (unsigned dev = 0; dev < ha_devices(v) && !current; dev++) {
			ha_device_id(&m->ha, v, dev, id, sizeof(id));
			current = strcmp(id, key) == 0;
		}
		if (current)
			continue;
		log_notice("mqtt: %s is no longer configured; its Home Assistant device is removed", key);
		if (json_is_string(json_object_get(entry, "config")))
			clear(m, json_string_value(json_object_get(entry, "config")));
		json_array_foreach(json_object_get(entry, "retained"), i, t)
			if (json_is_string(t))
				clear(m, json_string_value(t));
		json_object_del(m->published, key);
		changed = true;
	}
	return changed;
}

static void publish_availability(struct mqtt *m, const struct ha_view *v, unsigned dev)
{
	char topic[HA_TOPIC_MAX];
	bool on = ha_available(v, dev);

	ha_topic(&m->ha, v, dev, HA_TOPIC_AVAILABILITY, topic, sizeof(topic));
	publish(m, topic, on ? "online" : "offline", 1, true);
	m->available[dev] = on;
}

/* A pack's state only while it is fresh; its link always. */
static void publish_state(struct mqtt *m, const struct ha_view *v, unsigned dev)
{
	char topic[HA_TOPIC_MAX];
	json_t *doc;

	if (dev >= HA_DEV_PACK0) {
		ha_topic(&m->ha, v, dev, HA_TOPIC_LINK, topic, sizeof(topic));
		doc = ha_link_state(&m->ha, v, dev - HA_DEV_PACK0);
		publish_json(m, topic, doc, 0, true);
		json_decref(doc);
		if (!ha_available(v, dev))
			return;
	}
	ha_topic(&m->ha, v, dev, HA_TOPIC_STATE, topic, sizeof(topic));
	doc = ha_state(&m->ha, v, dev);
	publish_json(m, topic, doc, 0, true);
	json_decref(doc);
}

/* Everything, in the order HA needs it: availability before "online" (no
 * old retained state shows as current), discovery, then states. */
static void publish_all(struct mqtt *m)
{
	char topic[HA_TOPIC_MAX];
	struct ha_view v;
	bool changed = false;

	daemon_ha_view(&v);
	remembered_packs(m, &v);
	keep_current(m, &v);
	for (unsigned dev = HA_DEV_BATTERY; dev < ha_devices(&v); dev++)
		publish_availability(m, &v, dev);
	status_topic(m, topic, sizeof(topic));
	publish(m, topic, "online", 1, true);
	for (unsigned dev = 0; dev < ha_devices(&v); dev++)
		changed |= publish_discovery(m, &v, dev, ha_discovery(&m->ha, &v, dev));
	changed |= clear_removed(m, &v);
	if (changed)
		save_published(m);
	for (unsigned dev = 0; dev < ha_devices(&v); dev++)
		publish_state(m, &v, dev);
	m->last_states_ms = loop_now_ms();
	watch(m);
}

void mqtt_tick(struct mqtt *m, uint64_t now_ms)
{
	struct ha_view v;
	bool changed = false;

	if (m->state != MQTT_CONNECTED)
		return;
	daemon_ha_view(&v);
	remembered_packs(m, &v);
	for (unsigned dev = HA_DEV_BATTERY; dev < ha_devices(&v); dev++) {
		if (m->available[dev] == (int8_t)ha_available(&v, dev))
			continue;
		publish_availability(m, &v, dev);
		publish_state(m, &v, dev);
	}
	if (now_ms - m->last_states_ms >= m->cfg.interval_ms) {
		for (unsigned dev = 0; dev < ha_devices(&v); dev++) {
			json_t *doc = ha_discovery(&m->ha, &v, dev);

			if (m->docs[dev] && json_equal(doc, m->docs[dev]))
				json_decref(doc);
			else
				changed |= publish_discovery(m, &v, dev, doc);
		}
		if (changed)
			save_published(m);
		for (unsigned dev = 0; dev < ha_devices(&v); dev++)
			publish_state(m, &v, dev);
		m->last_states_ms = now_ms;
	}
	watch(m);
}

/* -------------------------------------------------------------- commands */

static bool once(uint64_t *bits, unsigned bit)
{
	bool first = !(*bits & (1ull << bit));

	*bits |= 1ull << bit;
	return first;
}

static const char *switch_name(enum jk_switch sw)
{
	return sw == JK_SWITCH_CHARGING ? "charging" : sw == JK_SWITCH_DISCHARGING ? "discharging" : "balancer";
}

static void run_command(struct mqtt *m, const struct ha_view *v, const struct ha_command *cmd)
{
	const char *pack = cmd->kind == HA_CMD_PACK_SWITCH ? v->packs[cmd->pack].name : NULL;
	const char *on = cmd->on ? "on" : "off";
	int rc;

	if (cmd->kind != HA_CMD_PACK_SWITCH) {
		daemon_battery_forbid(cmd->kind == HA_CMD_FORBID_CHARGE, cmd->on);
		publish_state(m, v, HA_DEV_BATTERY);	/* the flag as the charge logic now has it */
		return;
	}
	rc = daemon_pack_switch(cmd->pack, cmd->sw, cmd->on);
	if (rc == -EOPNOTSUPP) {
		if (!(m->unsupported_logged & 1u << cmd->pack))
			log_warn("pack %s: its switches cannot be written (%s); commands from Home Assistant "
				 "are ignored", pack,
				 *v->packs[cmd->pack].address ? "not supported" : "a replay pack");
		m->unsupported_logged |= 1u << cmd->pack;
	} else if (rc < 0) {
		log_warn("pack %s: %s switch %s not written: %s", pack, switch_name(cmd->sw), on, strerror(-rc));
	} else {
		log_info("pack %s: %s switch %s, from Home Assistant", pack, switch_name(cmd->sw), on);
	}
}

static void on_command(struct mqtt *m, const struct mosquitto_message *msg)
{
	struct ha_command cmd;
	struct ha_view v;
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	enum ha_command_result r;
	unsigned bit;

	daemon_ha_view(&v);
	r = ha_command_parse(&m->ha, &v, msg->topic, msg->payload, len, &cmd);
	if (r == HA_COMMAND_NOT_A_COMMAND)
		return;
	if (!m->cfg.allow_control) {
		if (!m->refused_logged)
			log_warn("mqtt: command on %s refused: control is disabled (mqtt.allow_control)",
				 msg->topic);
		m->refused_logged = true;
		return;
	}
	if (r == HA_COMMAND_UNKNOWN) {
		if (!m->unknown_logged)
			log_warn("mqtt: %s names no pack or switch; ignored", msg->topic);
		m->unknown_logged = true;
		return;
	}
	bit = cmd.kind == HA_CMD_FORBID_CHARGE ? BAD_FORBID_CHARGE :
	      cmd.kind == HA_CMD_FORBID_DISCHARGE ? BAD_FORBID_DISCHARGE : cmd.pack * 3 + cmd.sw;
	if (r == HA_COMMAND_BAD_PAYLOAD) {
		if (once(&m->bad_payload_logged, bit))
			log_warn("mqtt: %s: the payload must be ON or OFF; ignored (logged once)", msg->topic);
		return;
	}
	run_command(m, &v, &cmd);
}

/* ------------------------------------------------------ libmosquitto side */

static void subscribe(struct mqtt *m)
{
	char filters[HA_COMMAND_FILTERS][HA_TOPIC_MAX], topic[HA_TOPIC_MAX];

	snprintf(topic, sizeof(topic), "%s/status", m->cfg.discovery_prefix);
	mosquitto_subscribe(m->mosq, NULL, topic, 1);
	if (!m->cfg.allow_control)
		return;
	ha_command_filters(&m->ha, filters);
	for (unsigned i = 0; i < HA_COMMAND_FILTERS; i++)
		mosquitto_subscribe(m->mosq, NULL, filters[i], 1);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct mqtt *m = obj;

	if (rc != 0) {
		/* The disconnect callback follows; it logs with this reason. */
		snprintf(m->refusal, sizeof(m->refusal), "refused: %s", mosquitto_connack_string(rc));
		return;
	}
	set_state(m, MQTT_CONNECTED);
	m->failures = 0;
	m->last_error[0] = '\0';
	log_notice("mqtt: connected to %s:%u%s as %s%s", m->cfg.host, m->cfg.port, *m->cfg.cafile ? " (TLS)" : "",
		   m->client_id, m->cfg.allow_control ? ", control allowed" : "");
	memset(m->available, -1, sizeof(m->available));
	subscribe(m);
	publish_all(m);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct mqtt *m = obj;
	char why[128];

	snprintf(why, sizeof(why), "%s", *m->refusal ? m->refusal :
		 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	m->refusal[0] = '\0';
	lost(m, why);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	struct mqtt *m = obj;
	char birth[HA_TOPIC_MAX];

	snprintf(birth, sizeof(birth), "%s/status", m->cfg.discovery_prefix);
	if (strcmp(msg->topic, birth) != 0) {
		on_command(m, msg);
		return;
	}
	if (msg->payloadlen == 6 && memcmp(msg->payload, "online", 6) == 0) {
		uint64_t delay = MQTT_BIRTH_MIN_MS + rnd(m) % (MQTT_BIRTH_MAX_MS - MQTT_BIRTH_MIN_MS + 1);

		log_debug("mqtt: Home Assistant online; discovery in %.1f s", delay / 1000.0);
		loop_timer_arm(&m->birth_timer, delay, 0);
	}
}

/* The first line of the file, without its line end.  Never logged. */
static int read_password(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f)
		return -errno;
	if (!fgets(out, (int)n, f))
		rc = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return rc;
}

static int setup(struct mqtt *m)
{
	const char *certfile = *m->cfg.certfile ? m->cfg.certfile : NULL;
	const char *keyfile = *m->cfg.keyfile ? m->cfg.keyfile : NULL;
	char topic[HA_TOPIC_MAX], password[512] = "";
	int rc;

	status_topic(m, topic, sizeof(topic));
	if ((rc = mosquitto_will_set(m->mosq, topic, 7, "offline", 1, true)) != MOSQ_ERR_SUCCESS) {
		log_err("mqtt: the will on %s cannot be set: %s", topic, mosquitto_strerror(rc));
		return -EINVAL;
	}
	if (*m->cfg.password_file && (rc = read_password(m->cfg.password_file, password, sizeof(password))) < 0) {
		log_err("mqtt: cannot read the password from %s: %s", m->cfg.password_file, strerror(-rc));
		return rc;
	}
	rc = MOSQ_ERR_SUCCESS;
	if (*m->cfg.username)
		rc = mosquitto_username_pw_set(m->mosq, m->cfg.username, *m->cfg.password_file ? password : NULL);
	explicit_bzero(password, sizeof(password));
	if (rc != MOSQ_ERR_SUCCESS) {
		log_err("mqtt: username not accepted: %s", mosquitto_strerror(rc));
		return -EINVAL;
	}
	if (*m->cfg.cafile &&
	    (rc = mosquitto_tls_set(m->mosq, m->cfg.cafile, NULL, certfile, keyfile, NULL)) != MOSQ_ERR_SUCCESS) {
		log_err("mqtt: TLS set-up failed (cafile %s%s%s): %s", m->cfg.cafile,
			*m->cfg.certfile ? ", certfile " : "", m->cfg.certfile, mosquitto_strerror(rc));
		return -EINVAL;
	}
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_message_callback_set(m->mosq, on_message);
	return 0;
}

static void names(struct mqtt *m, const struct cfg *c)
{
	char host[64] = "";

	if (*m->cfg.client_id) {
		snprintf(m->client_id, sizeof(m->client_id), "%s", m->cfg.client_id);
	} else {
		if (gethostname(host, sizeof(host) - 1) < 0 || !*host)
			snprintf(host, sizeof(host), "%s", "host");
		host[strcspn(host, ".")] = '\0';
		snprintf(m->client_id, sizeof(m->client_id), "jkbridged-%s", host);
	}
	ha_make_id(m->client_id, m->bridge_id, sizeof(m->bridge_id));
	m->ha = (struct ha_config){
		.discovery_prefix = m->cfg.discovery_prefix, .base_topic = m->cfg.base_topic,
		.bridge_id = m->bridge_id, .bridge_name = m->client_id, .version = JKB_VERSION,
		.expire_after_s = ha_expire_after(m->cfg.interval_ms), .cells = c->battery.cells,
		.allow_control = m->cfg.allow_control,
	};
}

static int add_timers(struct mqtt *m)
{
	int rc;

	if ((rc = loop_timer_add(m->loop, &m->misc_timer, on_misc, m)) < 0 ||
	    (rc = loop_timer_arm(&m->misc_timer, MQTT_MISC_MS, MQTT_MISC_MS)) < 0 ||
	    (rc = loop_timer_add(m->loop, &m->retry_timer, on_retry, m)) < 0 ||
	    (rc = loop_timer_add(m->loop, &m->birth_timer, on_birth, m)) < 0)
		return rc;
	return 0;
}

int mqtt_open(struct mqtt *m, struct loop *l, const struct cfg *c)
{
	static bool lib_ready;
	int rc;

	memset(m, 0, sizeof(*m));
	m->sock.fd = m->misc_timer.fd = m->retry_timer.fd = m->birth_timer.fd = -1;
	m->opened = true;
	m->loop = l;
	m->cfg = c->mqtt;
	snprintf(m->state_dir, sizeof(m->state_dir), "%s", c->state_dir);
	names(m, c);
	if (!*m->cfg.host) {
		log_info("mqtt: off (no mqtt.host in the configuration)");
		return 0;
	}
	if ((rc = add_timers(m)) < 0)
		return rc;
	m->rng = (uint32_t)(loop_now_ms() * 2654435761u) ^ (uint32_t)getpid() ^ 0x9e3779b9u;
	if (!m->rng)
		m->rng = 1;
	load_published(m);
	if (!lib_ready)
		mosquitto_lib_init();
	lib_ready = true;
	m->mosq = mosquitto_new(m->client_id, true, m);
	if (!m->mosq) {
		log_err("mqtt: cannot create the client: %s", strerror(errno));
		return 0;
	}
	if (setup(m) < 0) {
		log_err("mqtt: off until the configuration is fixed and reloaded");
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
		return 0;
	}
	log_info("mqtt: broker %s:%u%s, client id %s, topics %s/..., discovery under %s/device/...", m->cfg.host,
		 m->cfg.port, *m->cfg.cafile ? " (TLS)" : "", m->client_id, m->cfg.base_topic,
		 m->cfg.discovery_prefix);
	attempt(m);
	return 0;
}

/* Write what is queued ("offline", DISCONNECT) before the socket goes. */
static void flush(struct mqtt *m)
{
	uint64_t end = loop_now_ms() + MQTT_FLUSH_MS;
	int fd;

	while ((fd = mosquitto_socket(m->mosq)) >= 0 && mosquitto_want_write(m->mosq) && loop_now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (poll(&p, 1, (int)(end - loop_now_ms())) <= 0)
			break;
		if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
			break;
	}
}

void mqtt_close(struct mqtt *m)
{
	char topic[HA_TOPIC_MAX];

	if (!m->opened)
		return;
	if (m->mosq && m->state == MQTT_CONNECTED) {
		status_topic(m, topic, sizeof(topic));
		publish(m, topic, "offline", 1, true);
		flush(m);
		set_state(m, MQTT_OFF);	/* the disconnect callback must not schedule a retry */
		mosquitto_disconnect(m->mosq);
		flush(m);
		log_info("mqtt: disconnected (offline published)");
	}
	set_state(m, MQTT_OFF);
	if (m->sock.loop)
		loop_remove(&m->sock);
	loop_timer_del(&m->misc_timer);
	loop_timer_del(&m->retry_timer);
	loop_timer_del(&m->birth_timer);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	m->mosq = NULL;
	for (unsigned i = 0; i < NDEV; i++)
		json_decref(m->docs[i]);
	json_decref(m->published);
	json_decref(m->keep);
	memset(m, 0, sizeof(*m));
	m->sock.fd = m->misc_timer.fd = m->retry_timer.fd = m->birth_timer.fd = -1;
}

int mqtt_reload(struct mqtt *m, const struct cfg *c)
{
	if (memcmp(&m->cfg, &c->mqtt, sizeof(c->mqtt)) != 0 || strcmp(m->state_dir, c->state_dir) != 0 ||
	    m->ha.cells != c->battery.cells) {
		struct loop *l = m->loop;

		log_info("mqtt: configuration changed; reconnecting");
		mqtt_close(m);
		return mqtt_open(m, l, c);
	}
	if (m->state == MQTT_CONNECTED)
		publish_all(m);
	return 0;
}
