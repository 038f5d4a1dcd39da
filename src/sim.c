/*
 * sim — the BlueZ look-alike around the simulated packs (see sim.h).
 *
 * One sd-bus connection driven by the project's epoll loop (the bus fd
 * with sd_bus_get_events, a timer from sd_bus_get_timeout), one timer per
 * pack for its connect steps, its cell-info stream and its adverts, and
 * stdin for fault injection.
 *
 * BlueZ behaviours copied on purpose (bluez src/adapter.c, device.c,
 * gatt-client.c, error.c), because a client must cope with them:
 *  - a Device1 object exists only once discovery found the device; it stays
 *    after discovery stops (RSSI goes away) until RemoveDevice;
 *  - Connect replies only after Connected = true and ServicesResolved =
 *    true; on an LE device that is already connected it succeeds at once;
 *    Disconnect on a disconnected device succeeds (the docs list
 *    NotConnected, bluetoothd answers success);
 *  - the GATT objects stay exported after a disconnect (BlueZ's default
 *    Cache = always) unless gatt_cache = false: then they come and go with
 *    the link (InterfacesAdded / InterfacesRemoved);
 *  - AcquireNotify / AcquireWrite hand out one end of an AF_UNIX
 *    SOCK_SEQPACKET socketpair (one packet = one notification or write);
 *    the other end is shut down when the link drops (the client sees HUP);
 *    while notify is acquired, Value is not updated and StartNotify is
 *    refused, as in gatt-client.c;
 *  - WriteValue picks the procedure from options["type"] like
 *    gatt-client.c: "command" is sent even to a characteristic without
 *    write-without-response, and the peer silently drops it — so a client
 *    that writes to the notify-only FFE1 of a new module gets success and
 *    no answer.
 *
 * Invariants: an object's vtables are registered exactly while it is
 * exported (InterfacesAdded was sent and InterfacesRemoved was not);
 * GATT objects exist only on exported devices; a pack's link is one of
 * enum sim_link and changes only in pack_set_link(), which logs it.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "sim.h"

#define BLUEZ_NAME "org.bluez"
#define IFACE_ADAPTER "org.bluez.Adapter1"
#define IFACE_DEVICE "org.bluez.Device1"
#define IFACE_SERVICE "org.bluez.GattService1"
#define IFACE_CHR "org.bluez.GattCharacteristic1"
#define IFACE_DESC "org.bluez.GattDescriptor1"

/* Error names and texts as bluez src/error.c makes them. */
#define ERR_FAILED "org.bluez.Error.Failed"
#define ERR_IN_PROGRESS "org.bluez.Error.InProgress"
#define ERR_NOT_READY "org.bluez.Error.NotReady"
#define ERR_NOT_PERMITTED "org.bluez.Error.NotPermitted"
#define ERR_NOT_SUPPORTED "org.bluez.Error.NotSupported"
#define ERR_INVALID_ARGS "org.bluez.Error.InvalidArguments"
#define ERR_DOES_NOT_EXIST "org.bluez.Error.DoesNotExist"
#define ERR_LE_ABORT "le-connection-abort-by-local"	/* bluez error.h ERR_LE_CONN_ABORT_BY_LOCAL */

#define UUID16(x) "0000" x "-0000-1000-8000-00805f9b34fb"
#define UUID_OAD(x) "f000" x "-0451-4000-b000-000000000000"
#define UUID_CCCD UUID16("2902")
#define JK_COMPANY_ID 0x0B65		/* manufacturer data 88 A0 + MAC (jkbms-ble.md §1.2) */

#define CONNECT_MS 250			/* LE connection set-up, plus up to 150 ms */
#define RESOLVE_MS 150			/* GATT discovery, plus up to 150 ms */
#define FOUND_MS 200			/* first advert after StartDiscovery, plus 150 ms per pack */
#define RSSI_MS 1000			/* RSSI updates while discovering, plus up to 1 s */
#define MAX_CLIENTS 8			/* discovery clients per adapter */
#define MAX_FILTER_UUIDS 8

/* ------------------------------------------------------------ GATT layouts */

enum { P_READ = 1, P_WWR = 2, P_WRITE = 4, P_NOTIFY = 8 };
enum { ROLE_IN = 1, ROLE_OUT = 2 };	/* the BMS reads writes / sends notifications here */
enum gatt_kind { G_SERVICE, G_CHR, G_DESC };

struct gatt_def {
	enum gatt_kind kind;
	uint16_t handle;		/* declaration handle: names the object, as in BlueZ */
	const char *uuid;
	uint8_t props;			/* P_* (characteristics) */
	uint8_t role;			/* ROLE_* */
	int8_t parent;			/* index of the service / characteristic */
};

/* jkbms-ble.md §1.1.  Old module: FFE0 at 0x0E with FFE1 (0x1C) and FFE2
 * (write-without-response), then the TI OAD service. */
static const struct gatt_def layout_old[] = {
	{ G_SERVICE, 0x000e, UUID16("ffe0"), 0, 0, -1 },
	{ G_CHR, 0x000f, UUID16("ffe1"), P_WWR | P_WRITE | P_NOTIFY, ROLE_IN | ROLE_OUT, 0 },
	{ G_DESC, 0x0011, UUID_CCCD, 0, 0, 1 },
	{ G_CHR, 0x0012, UUID16("ffe2"), P_WWR, 0, 0 },
	{ G_SERVICE, 0x0030, UUID_OAD("ffc0"), 0, 0, -1 },
	{ G_CHR, 0x0031, UUID_OAD("ffc1"), P_WWR | P_WRITE | P_NOTIFY, 0, 4 },
	{ G_DESC, 0x0033, UUID_CCCD, 0, 0, 5 },
	{ G_CHR, 0x0034, UUID_OAD("ffc2"), P_WWR | P_WRITE | P_NOTIFY, 0, 4 },
	{ G_DESC, 0x0036, UUID_CCCD, 0, 0, 7 },
};

/* New module: only FFE0, two FFE1: write at 0x03 (0x0C), notify at 0x05
 * (0x12) with its CCCD at 0x06. */
static const struct gatt_def layout_new[] = {
	{ G_SERVICE, 0x0001, UUID16("ffe0"), 0, 0, -1 },
	{ G_CHR, 0x0002, UUID16("ffe1"), P_WWR | P_WRITE, ROLE_IN, 0 },
	{ G_CHR, 0x0004, UUID16("ffe1"), P_READ | P_NOTIFY, ROLE_OUT, 0 },
	{ G_DESC, 0x0006, UUID_CCCD, 0, 0, 2 },
};

#define SIM_GATT_MAX (sizeof(layout_old) / sizeof(layout_old[0]))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What the packs advertise (§1.2). */
static const char *const adv_uuids[] = { UUID16("fee7"), UUID16("ffe0") };

/* ------------------------------------------------------------------ state */

struct sim;
struct sim_pack;

struct sim_gatt {
	struct sim_pack *pack;
	const struct gatt_def *def;
	char path[128];
	sd_bus_slot *slots[3];
	int notify_fd, write_fd;	/* our ends of the acquired sockets, or -1 */
	struct loop_source notify_src, write_src;
	sd_bus_track *sessions;		/* StartNotify clients */
	bool notifying;			/* as last emitted */
	uint8_t value[SIM_NOTIFY_MAX];
	uint16_t value_len;
};

struct sim_filter {
	char uuids[MAX_FILTER_UUIDS][37];
	unsigned nuuids;
	bool has_rssi;
	int16_t rssi;
	bool bredr_only;
	char pattern[32];
};

struct sim_client {			/* one bus client of an adapter's discovery */
	struct sim_adapter *adapter;
	char name[64];			/* unique bus name; "" = slot free */
	sd_bus_track *track;
	bool session;			/* StartDiscovery called */
	bool has_filter;
	struct sim_filter filter;
};

struct sim_adapter {
	struct sim *sim;
	unsigned index;
	char path[32];
	char address[18];
	char alias[64];
	bool powered, discovering, discoverable, pairable;
	sd_bus_slot *slot;
	struct sim_client clients[MAX_CLIENTS];
};

enum sim_link {
	SIM_LINK_DOWN,
	SIM_LINK_CONNECTING,		/* Connect pending: LE connection being set up */
	SIM_LINK_RESOLVING,		/* Connected = true, GATT discovery running */
	SIM_LINK_UP,			/* ServicesResolved = true */
};

struct sim_pack {
	struct sim *sim;
	const struct sim_pack_config *cfg;
	struct sim_adapter *adapter;
	char path[64];
	uint8_t mac[6];
	char alias[64];			/* "" = the name */
	bool trusted;
	const struct gatt_def *layout;
	size_t ngatt;
	struct sim_gatt gatt[SIM_GATT_MAX];
	struct sim_battery bat;

	enum sim_link link;
	uint64_t link_at;		/* the next connect step, 0 = none */
	sd_bus_message *connect_msg;	/* the Connect waiting for its reply */
	const char *down_reason;	/* for Device1.Disconnected */
	const char *connect_error;	/* for a pending Connect when the link goes down */
	bool refuse, stale;

	bool exported, gatt_exported, rssi_valid;
	sd_bus_slot *dev_slot, *rssi_slot;
	uint64_t found_at, rssi_at;	/* discovery steps, 0 = none */
	int16_t rssi, rssi_base;

	struct loop_source timer;
};

struct sim {
	const struct sim_config *cfg;
	struct loop loop;
	sd_bus *bus;
	struct loop_source bus_src, bus_timer, stdin_src, signals;
	char line[512];
	size_t line_len;
	uint64_t start_ms;
	uint32_t rng;
	unsigned nadapters;
	struct sim_adapter adapters[SIM_MAX_ADAPTERS];
	unsigned npacks;
	struct sim_pack packs[SIM_MAX_PACKS];
};

static void pack_schedule(struct sim_pack *p);

/* ---------------------------------------------------------------- helpers */

static void sim_vlog(const struct sim *s, const char *fmt, va_list ap)
{
	uint64_t ms = loop_now_ms() - s->start_ms;
	char msg[600];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "jkbms sim: [%5llu.%03llu] %s\n", (unsigned long long)(ms / 1000),
		(unsigned long long)(ms % 1000), msg);
}

static void sim_log(const struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_log(const struct sim *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_vlog(s, fmt, ap);
	va_end(ap);
}

static void pack_log(const struct sim_pack *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pack_log(const struct sim_pack *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sim_log(p->sim, "%s: %s", p->cfg->address, msg);
}

static uint32_t sim_rand(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 17;
	s->rng ^= s->rng << 5;
	return s->rng;
}

static const char *sender_of(sd_bus_message *m)
{
	const char *s = sd_bus_message_get_sender(m);

	return s ? s : "?";
}

static void emit_changed(struct sim *s, const char *path, const char *iface, const char *prop)
{
	int r = sd_bus_emit_properties_changed(s->bus, path, iface, prop, NULL);

	if (r < 0)
		sim_log(s, "%s: PropertiesChanged %s: %s", path, prop, strerror(-r));
}

/* A property that went away (RSSI after discovery): listed as invalidated,
 * which sd_bus_emit_properties_changed() cannot do for a removed vtable. */
static void emit_invalidated(struct sim *s, const char *path, const char *iface, const char *prop)
{
	sd_bus_message *m = NULL;
	int r = sd_bus_message_new_signal(s->bus, &m, path, "org.freedesktop.DBus.Properties",
					  "PropertiesChanged");

	if (r >= 0)
		r = sd_bus_message_append(m, "sa{sv}as", iface, 0, 1, prop);
	if (r >= 0)
		r = sd_bus_send(s->bus, m, NULL);
	if (r < 0)
		sim_log(s, "%s: PropertiesChanged (invalidated %s): %s", path, prop, strerror(-r));
	sd_bus_message_unref(m);
}

static int append_strv(sd_bus_message *reply, const char *const *v, size_t n)
{
	int r = sd_bus_message_open_container(reply, 'a', "s");

	for (size_t i = 0; r >= 0 && i < n; i++)
		r = sd_bus_message_append(reply, "s", v[i]);
	return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* The Flags of a characteristic, in gatt-client.c's order. */
static int append_flags(sd_bus_message *reply, uint8_t props)
{
	static const struct {
		uint8_t prop;
		const char *name;
	} names[] = {
		{ P_READ, "read" }, { P_WWR, "write-without-response" },
		{ P_WRITE, "write" }, { P_NOTIFY, "notify" },
	};
	const char *v[NELEM(names)];
	size_t n = 0;

	for (size_t i = 0; i < NELEM(names); i++)
		if (props & names[i].prop)
			v[n++] = names[i].name;
	return append_strv(reply, v, n);
}

/* A method reply carrying one byte array ("ay" in sd_bus_message_append()
 * wants the bytes as varargs, not a buffer). */
static int reply_bytes(sd_bus_message *m, const void *data, size_t len)
{
	sd_bus_message *reply = NULL;
	int r = sd_bus_message_new_method_return(m, &reply);

	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', data, len);
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	sd_bus_message_unref(reply);
	return r < 0 ? r : 1;
}

static uint16_t pack_mtu(const struct sim_pack *p)
{
	return p->cfg->mtu;
}

enum sim_module sim_module_for_address(const char *address)
{
	return strncasecmp(address, "C8:47:8C", 8) == 0 || strncasecmp(address, "C8:47:80", 8) == 0 ?
		       SIM_MODULE_OLD : SIM_MODULE_NEW;
}

/* The UART block a pack's module forwards in (sim_battery_link_up()). */
static uint16_t sim_block_len(const struct sim_pack_config *p)
{
	/* 128/22/128/22 in the JK02_32S and new-module captures: 150-byte
	 * UART blocks; the older units send the frame in one go. */
	return p->battery.protocol == JK_PROTO_JK02_32S || p->module == SIM_MODULE_NEW ? 150 : 0;
}

/* ------------------------------------------------------ the bus and loop */

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* After anything that may have queued messages: what sd-bus waits for. */
static void bus_update(struct sim *s)
{
	uint64_t usec;
	int ev = sd_bus_get_events(s->bus);

	if (ev >= 0)
		loop_modify(&s->bus_src, (uint32_t)ev);
	if (sd_bus_get_timeout(s->bus, &usec) >= 0 && usec != UINT64_MAX) {
		uint64_t now = now_usec();
		uint64_t ms = usec > now ? (usec - now + 999) / 1000 : 1;

		loop_timer_arm(&s->bus_timer, ms ? ms : 1, 0);
	} else {
		loop_timer_arm(&s->bus_timer, 0, 0);
	}
}

static void bus_process(struct sim *s)
{
	int r;

	while ((r = sd_bus_process(s->bus, NULL)) > 0)
		;
	if (r < 0) {
		sim_log(s, "D-Bus connection lost: %s", strerror(-r));
		loop_stop(&s->loop, 1);
		return;
	}
	bus_update(s);
}

static void on_bus(struct loop_source *src, uint32_t events)
{
	bus_process(src->data);
}

static void on_bus_timer(struct loop_source *src, uint32_t events)
{
	loop_timer_ack(src);
	bus_process(src->data);
}

/* ------------------------------------------------------- GATT characteristics */

static struct sim_gatt *gatt_parent(struct sim_gatt *g)
{
	return &g->pack->gatt[g->def->parent];
}

static void gatt_update_notifying(struct sim_gatt *g)
{
	bool on = g->sessions && sd_bus_track_count(g->sessions) > 0;

	if (on == g->notifying)
		return;
	g->notifying = on;
	if (g->slots[0])
		emit_changed(g->pack->sim, g->path, IFACE_CHR, "Notifying");
}

/* Track handlers return 1: on 0, sd-bus queues the (still empty) track
 * again and dispatches it for ever (bus-track.c bus_track_dispatch()). */
static int on_sessions_gone(sd_bus_track *t, void *userdata)
{
	struct sim_gatt *g = userdata;

	if (g->notifying)
		pack_log(g->pack, "notifications stopped: the client left the bus");
	gatt_update_notifying(g);
	return 1;
}

/* Close our end of an acquired socket; the client reads EOF / HUP. */
static void gatt_release(struct sim_gatt *g, bool write)
{
	int *fd = write ? &g->write_fd : &g->notify_fd;

	if (*fd < 0)
		return;
	loop_remove(write ? &g->write_src : &g->notify_src);
	shutdown(*fd, SHUT_RDWR);
	close(*fd);
	*fd = -1;
	if (g->slots[0])
		emit_changed(g->pack->sim, g->path, IFACE_CHR, write ? "WriteAcquired" : "NotifyAcquired");
	pack_log(g->pack, "%s released (%s)", write ? "write socket" : "notify socket",
		 g->path + strlen(g->pack->path) + 1);
}

/* A notification out of the BMS on one characteristic. */
static void gatt_notify(struct sim_gatt *g, const uint8_t *data, size_t len)
{
	if (g->notify_fd >= 0) {
		if (send(g->notify_fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
			gatt_release(g, false);
		return;	/* acquired: Value is left alone (gatt-client.c notify_io_cb) */
	}
	if (!g->notifying)
		return;
	memcpy(g->value, data, len);
	g->value_len = (uint16_t)len;
	emit_changed(g->pack->sim, g->path, IFACE_CHR, "Value");
}

/* Deliver what the BMS queued, if the link carries it. */
static void pack_pump(struct sim_pack *p)
{
	struct sim_notification n;

	while (sim_battery_pop(&p->bat, &n)) {
		if (p->link != SIM_LINK_UP || p->stale)
			continue;
		for (size_t i = 0; i < p->ngatt; i++)
			if (p->gatt[i].def->role & ROLE_OUT)
				gatt_notify(&p->gatt[i], n.data, n.len);
	}
}

/* Bytes written by the client to a characteristic of the pack. */
static void pack_write(struct sim_pack *p, struct sim_gatt *g, const uint8_t *data, size_t len)
{
	struct sim_command cmds[4];
	char text[160];
	unsigned n;

	if (!(g->def->role & ROLE_IN)) {
		pack_log(p, "%zu bytes written to %s (%s) dropped: not the BMS's characteristic", len,
			 g->path + strlen(p->path) + 1, g->def->uuid);
		return;
	}
	if (p->stale) {
		pack_log(p, "%zu bytes written into a stale link: lost", len);
		return;
	}
	n = sim_battery_write(&p->bat, data, len, loop_now_ms(), cmds, NELEM(cmds));
	for (unsigned i = 0; i < n && i < NELEM(cmds); i++) {
		sim_command_describe(&cmds[i], text, sizeof(text));
		pack_log(p, "command received: %s", text);
	}
	if (n == 0 && p->bat.rx_len == 0)
		pack_log(p, "%zu bytes written, no command in them", len);
	pack_pump(p);
	pack_schedule(p);
}

static void on_notify_fd(struct loop_source *src, uint32_t events)
{
	struct sim_gatt *g = src->data;
	uint8_t buf[SIM_NOTIFY_MAX];
	ssize_t n = recv(g->notify_fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		gatt_release(g, false);		/* the client closed it */
	bus_update(g->pack->sim);
}

static void on_write_fd(struct loop_source *src, uint32_t events)
{
	struct sim_gatt *g = src->data;
	uint8_t buf[SIM_NOTIFY_MAX];

	for (;;) {
		ssize_t n = recv(g->write_fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0 && g->pack->link == SIM_LINK_UP) {
			pack_write(g->pack, g, buf, (size_t)n);
			continue;
		}
		if (n > 0)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			gatt_release(g, true);
		break;
	}
	bus_update(g->pack->sim);
}

static bool gatt_ready(const struct sim_gatt *g)
{
	return g->pack->link == SIM_LINK_UP;
}

static int chr_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;

	if (strcmp(prop, "UUID") == 0)
		return sd_bus_message_append(reply, "s", g->def->uuid);
	if (strcmp(prop, "Service") == 0)
		return sd_bus_message_append(reply, "o", gatt_parent(g)->path);
	if (strcmp(prop, "Value") == 0)
		return sd_bus_message_append_array(reply, 'y', g->value, g->value_len);
	if (strcmp(prop, "Flags") == 0)
		return append_flags(reply, g->def->props);
	if (strcmp(prop, "Handle") == 0)
		return sd_bus_message_append(reply, "q", g->def->handle);
	if (strcmp(prop, "MTU") == 0)
		return sd_bus_message_append(reply, "q", pack_mtu(g->pack));
	if (strcmp(prop, "Notifying") == 0)
		return sd_bus_message_append(reply, "b", (int)g->notifying);
	if (strcmp(prop, "NotifyAcquired") == 0)
		return sd_bus_message_append(reply, "b", (int)(g->notify_fd >= 0));
	if (strcmp(prop, "WriteAcquired") == 0)
		return sd_bus_message_append(reply, "b", (int)(g->write_fd >= 0));
	return -ENOENT;
}

/* options a{sv}: "offset" (q) and "type" (s); the rest is ignored, as in
 * gatt-client.c parse_options(). */
static int read_options(sd_bus_message *m, uint16_t *offset, const char **type)
{
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(m, "s", &key);
		if (r >= 0 && strcasecmp(key, "offset") == 0)
			r = sd_bus_message_read(m, "v", "q", offset);
		else if (r >= 0 && strcasecmp(key, "type") == 0 && type)
			r = sd_bus_message_read(m, "v", "s", type);
		else if (r >= 0)
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	return r < 0 ? -EINVAL : 0;
}

static int chr_read_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;
	uint16_t offset = 0;

	if (!gatt_ready(g))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	if (read_options(m, &offset, NULL) < 0)
		return sd_bus_error_set(err, ERR_INVALID_ARGS, "Invalid arguments in method call");
	if (!(g->def->props & P_READ))
		return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Read not permitted");
	if (offset > g->value_len)
		return sd_bus_error_set(err, ERR_INVALID_ARGS, "Invalid offset");
	return reply_bytes(m, g->value + offset, g->value_len - offset);
}

/* gatt-client.c characteristic_write_value(): the procedure follows
 * options["type"], or the Flags when there is none. */
static int chr_write_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;
	uint8_t props = g->def->props;
	const char *type = NULL;
	uint16_t offset = 0;
	const void *data;
	size_t len;

	if (!gatt_ready(g))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	if (g->write_fd >= 0)
		return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Write acquired");
	if (sd_bus_message_read_array(m, 'y', &data, &len) < 0 || read_options(m, &offset, &type) < 0)
		return sd_bus_error_set(err, ERR_INVALID_ARGS, "Invalid arguments in method call");
	if (type && strcasecmp(type, "reliable") == 0)
		return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	if ((!type && props & P_WRITE) || (type && strcasecmp(type, "request") == 0)) {
		if (!(props & P_WRITE))	/* the peer answers Write Not Permitted */
			return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Write not permitted");
		if (offset)
			return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	} else if ((type && strcasecmp(type, "command") != 0) || offset ||
		   (!type && !(props & P_WWR))) {
		return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	} else if (len > (size_t)pack_mtu(g->pack) - 3) {
		return sd_bus_error_set(err, ERR_FAILED, "Failed to initiate write");
	} else if (!(props & P_WWR)) {		/* a Write Command the peer drops */
		pack_log(g->pack, "%zu bytes sent as a command to %s, which has no write-without-response: "
			 "dropped by the peer", len, g->path + strlen(g->pack->path) + 1);
		return sd_bus_reply_method_return(m, NULL);
	}
	pack_write(g->pack, g, data, len);
	return sd_bus_reply_method_return(m, NULL);
}

static int gatt_acquire(struct sim_gatt *g, sd_bus_message *m, bool write, sd_bus_error *err)
{
	struct loop_source *src = write ? &g->write_src : &g->notify_src;
	int fds[2], r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return sd_bus_error_set(err, ERR_FAILED, strerror(errno));
	r = loop_add(&g->pack->sim->loop, src, fds[0], EPOLLIN, write ? on_write_fd : on_notify_fd, g);
	if (r >= 0)
		r = sd_bus_reply_method_return(m, "hq", fds[1], pack_mtu(g->pack));
	close(fds[1]);		/* the reply holds its own copy */
	if (r < 0) {
		loop_remove(src);
		close(fds[0]);
		return sd_bus_error_set(err, ERR_FAILED, strerror(-r));
	}
	*(write ? &g->write_fd : &g->notify_fd) = fds[0];
	emit_changed(g->pack->sim, g->path, IFACE_CHR, write ? "WriteAcquired" : "NotifyAcquired");
	pack_log(g->pack, "%s acquired by %s (%s, MTU %u)", write ? "write socket" : "notify socket",
		 sender_of(m), g->path + strlen(g->pack->path) + 1, pack_mtu(g->pack));
	return 1;
}

static int chr_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;

	if (!gatt_ready(g))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	if (g->write_fd >= 0)
		return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Write acquired");
	if (!(g->def->props & P_WWR))
		return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	return gatt_acquire(g, m, true, err);
}

static int chr_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;

	if (!gatt_ready(g))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	if (g->notify_fd >= 0)
		return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Notify acquired");
	if (g->notifying)
		return sd_bus_error_set(err, ERR_IN_PROGRESS, "In Progress");
	if (!(g->def->props & P_NOTIFY))
		return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	return gatt_acquire(g, m, false, err);
}

/* As bluetoothd: a session per client, kept across disconnects while the
 * client stays on the bus; success even when not connected. */
static int chr_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;
	int r;

	if (g->notify_fd >= 0)
		return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Notify acquired");
	if (!(g->def->props & P_NOTIFY))
		return sd_bus_error_set(err, ERR_NOT_SUPPORTED, "Operation is not supported");
	if (!g->sessions) {
		r = sd_bus_track_new(g->pack->sim->bus, &g->sessions, on_sessions_gone, g);
		if (r < 0)
			return sd_bus_error_set(err, ERR_FAILED, "Failed allocate notify session");
	}
	r = sd_bus_track_add_sender(g->sessions, m);
	if (r < 0)
		return sd_bus_error_set(err, ERR_FAILED, "Failed allocate notify session");
	if (r > 0)
		pack_log(g->pack, "notifications started by %s (%s)", sender_of(m),
			 g->path + strlen(g->pack->path) + 1);
	gatt_update_notifying(g);
	return sd_bus_reply_method_return(m, NULL);
}

static int chr_stop_notify(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;

	if (g->notify_fd >= 0) {
		gatt_release(g, false);
		return sd_bus_reply_method_return(m, NULL);
	}
	if (!g->sessions || sd_bus_track_count_sender(g->sessions, m) <= 0)
		return sd_bus_error_set(err, ERR_FAILED, "No notify session started");
	sd_bus_track_remove_sender(g->sessions, m);
	pack_log(g->pack, "notifications stopped by %s", sender_of(m));
	gatt_update_notifying(g);
	return sd_bus_reply_method_return(m, NULL);
}

#define EMITS SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define CONST SD_BUS_VTABLE_PROPERTY_CONST

static const sd_bus_vtable chr_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("UUID", "s", chr_get, 0, CONST),
	SD_BUS_PROPERTY("Service", "o", chr_get, 0, CONST),
	SD_BUS_PROPERTY("Value", "ay", chr_get, 0, EMITS),
	SD_BUS_PROPERTY("Flags", "as", chr_get, 0, CONST),
	SD_BUS_PROPERTY("Handle", "q", chr_get, 0, CONST),
	SD_BUS_PROPERTY("MTU", "q", chr_get, 0, EMITS),
	SD_BUS_METHOD_WITH_NAMES("ReadValue", "a{sv}", SD_BUS_PARAM(options), "ay", SD_BUS_PARAM(value),
				 chr_read_value, 0),
	SD_BUS_METHOD_WITH_NAMES("WriteValue", "aya{sv}", SD_BUS_PARAM(value) SD_BUS_PARAM(options), "", ,
				 chr_write_value, 0),
	SD_BUS_METHOD_WITH_NAMES("AcquireWrite", "a{sv}", SD_BUS_PARAM(options), "hq",
				 SD_BUS_PARAM(fd) SD_BUS_PARAM(mtu), chr_acquire_write, 0),
	SD_BUS_METHOD_WITH_NAMES("AcquireNotify", "a{sv}", SD_BUS_PARAM(options), "hq",
				 SD_BUS_PARAM(fd) SD_BUS_PARAM(mtu), chr_acquire_notify, 0),
	SD_BUS_METHOD("StartNotify", "", "", chr_start_notify, 0),
	SD_BUS_METHOD("StopNotify", "", "", chr_stop_notify, 0),
	SD_BUS_VTABLE_END,
};

/* Present only on characteristics with "notify", as in gatt-client.c. */
static const sd_bus_vtable chr_notify_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("Notifying", "b", chr_get, 0, EMITS),
	SD_BUS_PROPERTY("NotifyAcquired", "b", chr_get, 0, EMITS),
	SD_BUS_VTABLE_END,
};

/* Present only on characteristics with "write-without-response". */
static const sd_bus_vtable chr_wwr_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("WriteAcquired", "b", chr_get, 0, EMITS),
	SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------- services, descriptors */

static int svc_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *g = userdata;

	if (strcmp(prop, "UUID") == 0)
		return sd_bus_message_append(reply, "s", g->def->uuid);
	if (strcmp(prop, "Primary") == 0)
		return sd_bus_message_append(reply, "b", 1);
	if (strcmp(prop, "Device") == 0)
		return sd_bus_message_append(reply, "o", g->pack->path);
	if (strcmp(prop, "Includes") == 0)
		return sd_bus_message_append(reply, "ao", 0);
	if (strcmp(prop, "Handle") == 0)
		return sd_bus_message_append(reply, "q", g->def->handle);
	return -ENOENT;
}

static const sd_bus_vtable svc_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("UUID", "s", svc_get, 0, CONST),
	SD_BUS_PROPERTY("Primary", "b", svc_get, 0, CONST),
	SD_BUS_PROPERTY("Device", "o", svc_get, 0, CONST),
	SD_BUS_PROPERTY("Includes", "ao", svc_get, 0, CONST),
	SD_BUS_PROPERTY("Handle", "q", svc_get, 0, CONST),
	SD_BUS_VTABLE_END,
};

/* The CCCD: 01 00 while notifications are on. */
static void cccd_value(const struct sim_gatt *d, uint8_t v[2])
{
	const struct sim_gatt *c = &d->pack->gatt[d->def->parent];

	v[0] = c->notifying || c->notify_fd >= 0;
	v[1] = 0;
}

static int desc_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		    sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	static const char *const flags[] = { "read", "write" };
	struct sim_gatt *d = userdata;
	uint8_t v[2];

	if (strcmp(prop, "UUID") == 0)
		return sd_bus_message_append(reply, "s", d->def->uuid);
	if (strcmp(prop, "Characteristic") == 0)
		return sd_bus_message_append(reply, "o", gatt_parent(d)->path);
	if (strcmp(prop, "Value") == 0) {
		cccd_value(d, v);
		return sd_bus_message_append_array(reply, 'y', v, sizeof(v));
	}
	if (strcmp(prop, "Flags") == 0)
		return append_strv(reply, flags, NELEM(flags));
	if (strcmp(prop, "Handle") == 0)
		return sd_bus_message_append(reply, "q", d->def->handle);
	return -ENOENT;
}

static int desc_read_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_gatt *d = userdata;
	uint8_t v[2];

	if (!gatt_ready(d))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	cccd_value(d, v);
	return reply_bytes(m, v, sizeof(v));
}

/* gatt-client.c refuses CCCD writes: StartNotify / AcquireNotify do it. */
static int desc_write_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	if (!gatt_ready(userdata))
		return sd_bus_error_set(err, ERR_FAILED, "Not connected");
	return sd_bus_error_set(err, ERR_NOT_PERMITTED, "Write not permitted");
}

static const sd_bus_vtable desc_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("UUID", "s", desc_get, 0, CONST),
	SD_BUS_PROPERTY("Characteristic", "o", desc_get, 0, CONST),
	SD_BUS_PROPERTY("Value", "ay", desc_get, 0, EMITS),
	SD_BUS_PROPERTY("Flags", "as", desc_get, 0, CONST),
	SD_BUS_PROPERTY("Handle", "q", desc_get, 0, CONST),
	SD_BUS_METHOD_WITH_NAMES("ReadValue", "a{sv}", SD_BUS_PARAM(flags), "ay", SD_BUS_PARAM(value),
				 desc_read_value, 0),
	SD_BUS_METHOD_WITH_NAMES("WriteValue", "aya{sv}", SD_BUS_PARAM(value) SD_BUS_PARAM(flags), "", ,
				 desc_write_value, 0),
	SD_BUS_VTABLE_END,
};

static int gatt_register(struct sim_gatt *g)
{
	sd_bus *bus = g->pack->sim->bus;
	int r;

	switch (g->def->kind) {
	case G_SERVICE:
		return sd_bus_add_object_vtable(bus, &g->slots[0], g->path, IFACE_SERVICE, svc_vtable, g);
	case G_DESC:
		return sd_bus_add_object_vtable(bus, &g->slots[0], g->path, IFACE_DESC, desc_vtable, g);
	case G_CHR:
		break;
	}
	r = sd_bus_add_object_vtable(bus, &g->slots[0], g->path, IFACE_CHR, chr_vtable, g);
	if (r >= 0 && g->def->props & P_NOTIFY)
		r = sd_bus_add_object_vtable(bus, &g->slots[1], g->path, IFACE_CHR, chr_notify_vtable, g);
	if (r >= 0 && g->def->props & P_WWR)
		r = sd_bus_add_object_vtable(bus, &g->slots[2], g->path, IFACE_CHR, chr_wwr_vtable, g);
	return r;
}

static void gatt_unregister(struct sim_gatt *g)
{
	for (size_t i = 0; i < NELEM(g->slots); i++)
		g->slots[i] = sd_bus_slot_unref(g->slots[i]);
}

/* Parents before children, as bluetoothd exports them. */
static void gatt_export(struct sim_pack *p)
{
	for (size_t i = 0; i < p->ngatt; i++) {
		struct sim_gatt *g = &p->gatt[i];
		int r = gatt_register(g);

		if (r >= 0)
			r = sd_bus_emit_object_added(p->sim->bus, g->path);
		if (r < 0)
			pack_log(p, "%s: cannot export: %s", g->path, strerror(-r));
	}
	p->gatt_exported = true;
}

/* Children before parents; InterfacesRemoved while the vtables still exist. */
static void gatt_unexport(struct sim_pack *p)
{
	for (size_t i = p->ngatt; i-- > 0;) {
		struct sim_gatt *g = &p->gatt[i];

		gatt_release(g, false);
		gatt_release(g, true);
		g->sessions = sd_bus_track_unref(g->sessions);
		g->notifying = false;
		g->value_len = 0;
		if (g->slots[0])
			sd_bus_emit_object_removed(p->sim->bus, g->path);
		gatt_unregister(g);
	}
	p->gatt_exported = false;
}

/* ------------------------------------------------------------------ devices */

static const char *pack_alias(const struct sim_pack *p)
{
	return *p->alias ? p->alias : p->cfg->battery.name;
}

static int append_manufacturer_data(sd_bus_message *reply, const struct sim_pack *p)
{
	uint8_t data[8] = { 0x88, 0xA0 };
	int r;

	memcpy(data + 2, p->mac, sizeof(p->mac));
	r = sd_bus_message_open_container(reply, 'a', "{qv}");
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'e', "qv");
	if (r >= 0)
		r = sd_bus_message_append(reply, "q", (uint16_t)JK_COMPANY_ID);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'v', "ay");
	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', data, sizeof(data));
	for (int i = 0; r >= 0 && i < 3; i++)
		r = sd_bus_message_close_container(reply);
	return r;
}

static int dev_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	static const uint8_t adv_flags[] = { 0x06 };	/* LE general discoverable, no BR/EDR */
	struct sim_pack *p = userdata;

	if (strcmp(prop, "Address") == 0)
		return sd_bus_message_append(reply, "s", p->cfg->address);
	if (strcmp(prop, "AddressType") == 0)
		return sd_bus_message_append(reply, "s", "public");
	if (strcmp(prop, "Name") == 0)
		return sd_bus_message_append(reply, "s", p->cfg->battery.name);
	if (strcmp(prop, "Alias") == 0)
		return sd_bus_message_append(reply, "s", pack_alias(p));
	if (strcmp(prop, "Trusted") == 0)
		return sd_bus_message_append(reply, "b", (int)p->trusted);
	if (strcmp(prop, "Paired") == 0 || strcmp(prop, "Bonded") == 0 || strcmp(prop, "Blocked") == 0 ||
	    strcmp(prop, "LegacyPairing") == 0)
		return sd_bus_message_append(reply, "b", 0);
	if (strcmp(prop, "Connected") == 0)
		return sd_bus_message_append(reply, "b", (int)(p->link >= SIM_LINK_RESOLVING));
	if (strcmp(prop, "ServicesResolved") == 0)
		return sd_bus_message_append(reply, "b", (int)(p->link == SIM_LINK_UP));
	if (strcmp(prop, "Adapter") == 0)
		return sd_bus_message_append(reply, "o", p->adapter->path);
	if (strcmp(prop, "UUIDs") == 0)
		return append_strv(reply, adv_uuids, NELEM(adv_uuids));
	if (strcmp(prop, "ManufacturerData") == 0)
		return append_manufacturer_data(reply, p);
	if (strcmp(prop, "AdvertisingFlags") == 0)
		return sd_bus_message_append_array(reply, 'y', adv_flags, sizeof(adv_flags));
	if (strcmp(prop, "RSSI") == 0)
		return sd_bus_message_append(reply, "n", p->rssi);
	return -ENOENT;
}

static int dev_set(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *value, void *userdata, sd_bus_error *err)
{
	struct sim_pack *p = userdata;
	const char *s;
	int b, r;

	if (strcmp(prop, "Alias") == 0) {
		r = sd_bus_message_read(value, "s", &s);
		if (r < 0)
			return r;
		snprintf(p->alias, sizeof(p->alias), "%s", s);	/* "" = back to the name */
	} else {
		r = sd_bus_message_read(value, "b", &b);
		if (r < 0)
			return r;
		p->trusted = b;
	}
	emit_changed(p->sim, p->path, IFACE_DEVICE, prop);
	return 1;
}

static void pack_set_link(struct sim_pack *p, enum sim_link to, const char *why);

static int dev_connect(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_pack *p = userdata;
	char why[96];

	if (!p->adapter->powered)
		return sd_bus_error_set(err, ERR_NOT_READY, "Resource Not Ready");
	if (p->link == SIM_LINK_CONNECTING)
		return sd_bus_error_set(err, ERR_IN_PROGRESS, "In Progress");
	if (p->link != SIM_LINK_DOWN) {	/* device.c dev_connect(): LE already connected */
		pack_log(p, "Connect from %s: already connected%s", sender_of(m),
			 p->stale ? " (stale link: nothing will answer)" : "");
		return sd_bus_reply_method_return(m, NULL);
	}
	p->connect_msg = sd_bus_message_ref(m);
	snprintf(why, sizeof(why), "Connect from %s", sender_of(m));
	pack_set_link(p, SIM_LINK_CONNECTING, why);
	return 1;
}

static void pack_disconnect(struct sim_pack *p, const char *reason, const char *why)
{
	p->down_reason = reason;
	pack_set_link(p, SIM_LINK_DOWN, why);
}

static int dev_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_pack *p = userdata;
	char why[96];

	if (p->link != SIM_LINK_DOWN) {
		if (p->link == SIM_LINK_CONNECTING)	/* device_request_disconnect() */
			p->connect_error = "Cancelled";
		snprintf(why, sizeof(why), "Disconnect from %s", sender_of(m));
		pack_disconnect(p, "org.bluez.Reason.Local", why);
	}
	return sd_bus_reply_method_return(m, NULL);	/* also when not connected, as bluetoothd */
}

static const sd_bus_vtable dev_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("Address", "s", dev_get, 0, CONST),
	SD_BUS_PROPERTY("AddressType", "s", dev_get, 0, CONST),
	SD_BUS_PROPERTY("Name", "s", dev_get, 0, CONST),
	SD_BUS_WRITABLE_PROPERTY("Alias", "s", dev_get, dev_set, 0, EMITS),
	SD_BUS_PROPERTY("Paired", "b", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("Bonded", "b", dev_get, 0, EMITS),
	SD_BUS_WRITABLE_PROPERTY("Trusted", "b", dev_get, dev_set, 0, EMITS),
	SD_BUS_PROPERTY("Blocked", "b", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("LegacyPairing", "b", dev_get, 0, CONST),
	SD_BUS_PROPERTY("Connected", "b", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("ServicesResolved", "b", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("Adapter", "o", dev_get, 0, CONST),
	SD_BUS_PROPERTY("UUIDs", "as", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("ManufacturerData", "a{qv}", dev_get, 0, EMITS),
	SD_BUS_PROPERTY("AdvertisingFlags", "ay", dev_get, 0, EMITS),
	SD_BUS_METHOD("Connect", "", "", dev_connect, 0),
	SD_BUS_METHOD("Disconnect", "", "", dev_disconnect, 0),
	SD_BUS_SIGNAL_WITH_NAMES("Disconnected", "ss", SD_BUS_PARAM(name) SD_BUS_PARAM(message), 0),
	SD_BUS_VTABLE_END,
};

/* RSSI exists only while discovery hears the device (adapter.c drops it
 * when discovery stops): its own vtable, added and removed. */
static const sd_bus_vtable dev_rssi_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("RSSI", "n", dev_get, 0, EMITS),
	SD_BUS_VTABLE_END,
};

static void pack_rssi_set(struct sim_pack *p, bool valid)
{
	if (valid == p->rssi_valid)
		return;
	p->rssi_valid = valid;
	if (!p->exported)
		return;
	if (valid) {
		sd_bus_add_object_vtable(p->sim->bus, &p->rssi_slot, p->path, IFACE_DEVICE, dev_rssi_vtable, p);
		emit_changed(p->sim, p->path, IFACE_DEVICE, "RSSI");
	} else {
		p->rssi_slot = sd_bus_slot_unref(p->rssi_slot);
		emit_invalidated(p->sim, p->path, IFACE_DEVICE, "RSSI");
	}
}

/* The device object appears (discovery found it, or a stale link had it). */
static void pack_export(struct sim_pack *p, bool heard)
{
	int r = sd_bus_add_object_vtable(p->sim->bus, &p->dev_slot, p->path, IFACE_DEVICE, dev_vtable, p);

	p->rssi_valid = heard;
	if (r >= 0 && heard)
		r = sd_bus_add_object_vtable(p->sim->bus, &p->rssi_slot, p->path, IFACE_DEVICE, dev_rssi_vtable, p);
	if (r >= 0)
		r = sd_bus_emit_object_added(p->sim->bus, p->path);
	if (r < 0) {
		pack_log(p, "cannot export %s: %s", p->path, strerror(-r));
		return;
	}
	p->exported = true;
	if (heard)
		pack_log(p, "found by hci%u: %s, RSSI %d, %s module", p->adapter->index,
			 p->cfg->battery.name, p->rssi, p->cfg->module == SIM_MODULE_OLD ? "old" : "new");
}

static void pack_unexport(struct sim_pack *p)
{
	if (!p->exported)
		return;
	gatt_unexport(p);
	sd_bus_emit_object_removed(p->sim->bus, p->path);
	p->rssi_slot = sd_bus_slot_unref(p->rssi_slot);
	p->dev_slot = sd_bus_slot_unref(p->dev_slot);
	p->exported = p->rssi_valid = false;
	pack_log(p, "device object removed");
}

/* ------------------------------------------------------------ the link */

static const char *const link_names[] = {
	[SIM_LINK_DOWN] = "disconnected",
	[SIM_LINK_CONNECTING] = "connecting",
	[SIM_LINK_RESOLVING] = "connected",
	[SIM_LINK_UP] = "services resolved",
};

static void link_down(struct sim_pack *p, enum sim_link from)
{
	struct sim *s = p->sim;

	if (from == SIM_LINK_UP)
		emit_changed(s, p->path, IFACE_DEVICE, "ServicesResolved");
	for (size_t i = 0; i < p->ngatt; i++) {
		gatt_release(&p->gatt[i], false);
		gatt_release(&p->gatt[i], true);
	}
	sim_battery_link_down(&p->bat);
	if (from >= SIM_LINK_RESOLVING) {
		emit_changed(s, p->path, IFACE_DEVICE, "Connected");
		sd_bus_emit_signal(s->bus, p->path, IFACE_DEVICE, "Disconnected", "ss",
				   p->down_reason ? p->down_reason : "org.bluez.Reason.Unknown",
				   "Connection terminated");
	}
	if (!s->cfg->gatt_cache && p->gatt_exported)
		gatt_unexport(p);
	if (p->connect_msg) {
		sd_bus_reply_method_errorf(p->connect_msg, ERR_FAILED, "%s",
					   p->connect_error ? p->connect_error : ERR_LE_ABORT);
		p->connect_msg = sd_bus_message_unref(p->connect_msg);
	}
	p->connect_error = NULL;
	p->stale = false;
	p->link_at = 0;
	p->down_reason = NULL;
	if (p->adapter->discovering)	/* it advertises again */
		p->found_at = loop_now_ms() + FOUND_MS;
}

/* Every change of the link goes through here, and is logged here. */
static void pack_set_link(struct sim_pack *p, enum sim_link to, const char *why)
{
	enum sim_link from = p->link;
	uint64_t now = loop_now_ms();

	if (from == to)
		return;
	p->link = to;
	pack_log(p, "%s%s%s%s", link_names[to], why ? " (" : "", why ? why : "", why ? ")" : "");
	switch (to) {
	case SIM_LINK_CONNECTING:
		p->link_at = now + CONNECT_MS + sim_rand(p->sim) % 150;
		pack_rssi_set(p, false);	/* a connected JK module stops advertising */
		break;
	case SIM_LINK_RESOLVING:
		sim_battery_link_up(&p->bat, pack_mtu(p), sim_block_len(p->cfg), now);
		emit_changed(p->sim, p->path, IFACE_DEVICE, "Connected");
		p->link_at = now + RESOLVE_MS + sim_rand(p->sim) % 150;
		break;
	case SIM_LINK_UP:
		p->link_at = 0;
		if (!p->gatt_exported)
			gatt_export(p);
		emit_changed(p->sim, p->path, IFACE_DEVICE, "ServicesResolved");
		if (p->connect_msg) {
			sd_bus_reply_method_return(p->connect_msg, NULL);
			p->connect_msg = sd_bus_message_unref(p->connect_msg);
		}
		break;
	case SIM_LINK_DOWN:
		link_down(p, from);
		break;
	}
	pack_schedule(p);
}

static void pack_link_step(struct sim_pack *p, uint64_t now)
{
	if (!p->link_at || now < p->link_at)
		return;
	p->link_at = 0;
	if (p->link == SIM_LINK_CONNECTING && p->refuse)
		pack_disconnect(p, NULL, "refused: " ERR_LE_ABORT);
	else if (p->link == SIM_LINK_CONNECTING)
		pack_set_link(p, SIM_LINK_RESOLVING, "LE link up, resolving services");
	else if (p->link == SIM_LINK_RESOLVING)
		pack_set_link(p, SIM_LINK_UP, p->cfg->module == SIM_MODULE_OLD ?
				  "old module: one FFE1 to write and notify" :
				  "new module: FFE1 char0002 to write, FFE1 char0004 to notify");
}

/* ---------------------------------------------------------------- discovery */

static bool uuid_listed(const struct sim_filter *f)
{
	for (unsigned i = 0; i < f->nuuids; i++)
		for (size_t j = 0; j < NELEM(adv_uuids); j++)
			if (strcasecmp(f->uuids[i], adv_uuids[j]) == 0)
				return true;
	return false;
}

static bool filter_matches(const struct sim_filter *f, const struct sim_pack *p)
{
	size_t n = strlen(f->pattern);

	if (f->bredr_only)
		return false;
	if (f->nuuids && !uuid_listed(f))
		return false;
	if (f->has_rssi && p->rssi <= f->rssi)
		return false;
	return !n || strncasecmp(p->cfg->address, f->pattern, n) == 0 ||
	       strncmp(p->cfg->battery.name, f->pattern, n) == 0;
}

/* Filters of several clients are merged: one that takes the device is enough. */
static bool adapter_reports(const struct sim_adapter *a, const struct sim_pack *p)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		const struct sim_client *c = &a->clients[i];

		if (*c->name && c->session && (!c->has_filter || filter_matches(&c->filter, p)))
			return true;
	}
	return false;
}

static void pack_discovery_step(struct sim_pack *p, uint64_t now)
{
	struct sim *s = p->sim;

	if (!p->adapter->discovering || p->link != SIM_LINK_DOWN) {
		p->found_at = p->rssi_at = 0;
		return;
	}
	if (p->found_at && now >= p->found_at) {
		p->found_at = 0;
		p->rssi = (int16_t)(p->rssi_base + (int)(sim_rand(s) % 7) - 3);
		if (!adapter_reports(p->adapter, p))
			p->found_at = now + RSSI_MS;	/* heard, filtered out; a filter may change */
		else if (!p->exported)
			pack_export(p, true);
		else
			pack_rssi_set(p, true);
		if (p->rssi_valid)
			p->rssi_at = now + RSSI_MS + sim_rand(s) % 1000;
	}
	if (p->rssi_at && now >= p->rssi_at && p->rssi_valid) {
		p->rssi = (int16_t)(p->rssi_base + (int)(sim_rand(s) % 7) - 3);
		emit_changed(s, p->path, IFACE_DEVICE, "RSSI");
		p->rssi_at = now + RSSI_MS + sim_rand(s) % 1000;
	}
}

static bool adapter_connecting(const struct sim_adapter *a)
{
	const struct sim *s = a->sim;

	for (unsigned i = 0; i < s->npacks; i++)
		if (s->packs[i].adapter == a && s->packs[i].link == SIM_LINK_CONNECTING)
			return true;
	return false;
}

/* Discovering follows the sessions (and Powered). */
static void adapter_discovery_update(struct sim_adapter *a)
{
	struct sim *s = a->sim;
	bool want = false;
	uint64_t now = loop_now_ms();
	unsigned k = 0;

	for (size_t i = 0; i < MAX_CLIENTS; i++)
		want |= *a->clients[i].name && a->clients[i].session;
	want &= a->powered;
	if (want == a->discovering)
		return;
	a->discovering = want;
	emit_changed(s, a->path, IFACE_ADAPTER, "Discovering");
	sim_log(s, "hci%u: discovery %s", a->index, want ? "started" : "stopped");
	for (unsigned i = 0; i < s->npacks; i++) {
		struct sim_pack *p = &s->packs[i];

		if (p->adapter != a)
			continue;
		p->found_at = want ? now + FOUND_MS + 150 * k++ : 0;
		p->rssi_at = 0;
		if (!want)
			pack_rssi_set(p, false);
		pack_schedule(p);
	}
}

static struct sim_client *client_find(struct sim_adapter *a, const char *name)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (*a->clients[i].name && strcmp(a->clients[i].name, name) == 0)
			return &a->clients[i];
	return NULL;
}

static void client_free(struct sim_client *c)
{
	c->track = sd_bus_track_unref(c->track);
	memset(c->name, 0, sizeof(c->name));
	c->session = c->has_filter = false;
}

/* The client left the bus: its session and filter go (adapter.c
 * discovery_disconnect()). */
static int on_client_gone(sd_bus_track *t, void *userdata)
{
	struct sim_client *c = userdata;
	struct sim_adapter *a = c->adapter;

	if (c->session)
		sim_log(a->sim, "hci%u: discovery client %s left the bus", a->index, c->name);
	client_free(c);
	adapter_discovery_update(a);
	return 1;
}

static struct sim_client *client_get(struct sim_adapter *a, const char *name)
{
	struct sim_client *c = client_find(a, name);

	for (size_t i = 0; !c && i < MAX_CLIENTS; i++)
		if (!*a->clients[i].name)
			c = &a->clients[i];
	if (!c || *c->name)
		return c;
	c->adapter = a;
	if (sd_bus_track_new(a->sim->bus, &c->track, on_client_gone, c) < 0 ||
	    sd_bus_track_add_name(c->track, name) < 0) {
		client_free(c);
		return NULL;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

static int adapter_start_discovery(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_adapter *a = userdata;
	struct sim_client *c = client_find(a, sender_of(m));

	if (!a->powered)
		return sd_bus_error_set(err, ERR_NOT_READY, "Resource Not Ready");
	if ((c && c->session) || adapter_connecting(a))	/* btd_error_busy() */
		return sd_bus_error_set(err, ERR_IN_PROGRESS, "Operation already in progress");
	c = client_get(a, sender_of(m));
	if (!c)
		return sd_bus_error_set(err, ERR_FAILED, "Too many discovery clients");
	c->session = true;
	adapter_discovery_update(a);
	return sd_bus_reply_method_return(m, NULL);
}

static int adapter_stop_discovery(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_adapter *a = userdata;
	struct sim_client *c = client_find(a, sender_of(m));

	if (!a->powered)
		return sd_bus_error_set(err, ERR_NOT_READY, "Resource Not Ready");
	if (!c || !c->session)
		return sd_bus_error_set(err, ERR_FAILED, "No discovery started");
	client_free(c);		/* the session and its filter */
	adapter_discovery_update(a);
	return sd_bus_reply_method_return(m, NULL);
}

/* "ffe0", "0000ffe0" or a full UUID -> the lower-case 128-bit form. */
static int uuid_normalize(const char *in, char out[37])
{
	size_t n = strlen(in);

	if (n == 4)
		snprintf(out, 37, "0000%s-0000-1000-8000-00805f9b34fb", in);
	else if (n == 8)
		snprintf(out, 37, "%s-0000-1000-8000-00805f9b34fb", in);
	else if (n == 36)
		snprintf(out, 37, "%s", in);
	else
		return -EINVAL;
	for (char *c = out; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
	return 0;
}

static int filter_read_uuids(sd_bus_message *m, struct sim_filter *f)
{
	const char *u;
	int r = sd_bus_message_enter_container(m, 'v', "as");

	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "s");
	while (r >= 0 && (r = sd_bus_message_read(m, "s", &u)) > 0) {
		if (f->nuuids == MAX_FILTER_UUIDS || uuid_normalize(u, f->uuids[f->nuuids]) < 0)
			return -EINVAL;
		f->nuuids++;
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	return r;
}

/* One entry of the SetDiscoveryFilter dict; -EINVAL for what BlueZ refuses. */
static int filter_read_entry(sd_bus_message *m, const char *key, struct sim_filter *f, bool *pathloss)
{
	const char *s;
	uint16_t q;
	int b;

	if (strcmp(key, "UUIDs") == 0)
		return filter_read_uuids(m, f);
	if (strcmp(key, "RSSI") == 0) {
		f->has_rssi = true;
		return sd_bus_message_read(m, "v", "n", &f->rssi);
	}
	if (strcmp(key, "Pathloss") == 0) {
		*pathloss = true;
		return sd_bus_message_read(m, "v", "q", &q);
	}
	if (strcmp(key, "Transport") == 0) {
		if (sd_bus_message_read(m, "v", "s", &s) < 0)
			return -EINVAL;
		if (strcmp(s, "auto") && strcmp(s, "le") && strcmp(s, "bredr"))
			return -EINVAL;
		f->bredr_only = strcmp(s, "bredr") == 0;
		return 0;
	}
	if (strcmp(key, "Pattern") == 0) {
		if (sd_bus_message_read(m, "v", "s", &s) < 0)
			return -EINVAL;
		snprintf(f->pattern, sizeof(f->pattern), "%s", s);
		return 0;
	}
	if (strcmp(key, "DuplicateData") == 0 || strcmp(key, "Discoverable") == 0 ||
	    strcmp(key, "AutoConnect") == 0)
		return sd_bus_message_read(m, "v", "b", &b);
	return -EINVAL;
}

static int read_filter(sd_bus_message *m, struct sim_filter *f, unsigned *nkeys)
{
	bool pathloss = false;
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	memset(f, 0, sizeof(*f));
	*nkeys = 0;
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(m, "s", &key);
		if (r >= 0)
			r = filter_read_entry(m, key, f, &pathloss);
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
		(*nkeys)++;
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	if (r >= 0 && pathloss && f->has_rssi)	/* adapter.c: not both */
		r = -EINVAL;
	return r < 0 ? -EINVAL : 0;
}

static int adapter_set_filter(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_adapter *a = userdata;
	struct sim_filter f;
	struct sim_client *c;
	unsigned nkeys;

	if (!a->powered)
		return sd_bus_error_set(err, ERR_NOT_READY, "Resource Not Ready");
	if (read_filter(m, &f, &nkeys) < 0)
		return sd_bus_error_set(err, ERR_INVALID_ARGS, "Invalid arguments in method call");
	c = client_get(a, sender_of(m));
	if (!c)
		return sd_bus_error_set(err, ERR_FAILED, "Too many discovery clients");
	c->has_filter = nkeys > 0;	/* an empty dict removes the filter */
	c->filter = f;
	sim_log(a->sim, "hci%u: discovery filter from %s: %u keys%s%s", a->index, c->name, nkeys,
		f.nuuids ? ", UUIDs" : "", f.bredr_only ? ", Transport bredr" : "");
	return sd_bus_reply_method_return(m, NULL);
}

static int adapter_get_filters(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	static const char *const keys[] = {
		"UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern",
	};
	sd_bus_message *reply = NULL;
	int r = sd_bus_message_new_method_return(m, &reply);

	if (r >= 0)
		r = append_strv(reply, keys, NELEM(keys));
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	sd_bus_message_unref(reply);
	return r < 0 ? r : 1;
}

static int adapter_remove_device(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct sim_adapter *a = userdata;
	struct sim *s = a->sim;
	const char *path;
	struct sim_pack *p = NULL;

	if (sd_bus_message_read(m, "o", &path) < 0)
		return sd_bus_error_set(err, ERR_INVALID_ARGS, "Invalid arguments in method call");
	for (unsigned i = 0; !p && i < s->npacks; i++)
		if (s->packs[i].adapter == a && s->packs[i].exported && strcmp(s->packs[i].path, path) == 0)
			p = &s->packs[i];
	if (!p)
		return sd_bus_error_set(err, ERR_DOES_NOT_EXIST, "Does Not Exist");
	if (p->link != SIM_LINK_DOWN)
		pack_disconnect(p, "org.bluez.Reason.Local", "RemoveDevice");
	pack_unexport(p);
	p->found_at = a->discovering ? loop_now_ms() + FOUND_MS : 0;	/* heard again */
	pack_schedule(p);
	return sd_bus_reply_method_return(m, NULL);
}

static void adapter_set_powered(struct sim_adapter *a, bool on)
{
	struct sim *s = a->sim;

	if (on == a->powered)
		return;
	a->powered = on;
	sim_log(s, "hci%u: powered %s", a->index, on ? "on" : "off");
	if (!on) {
		for (size_t i = 0; i < MAX_CLIENTS; i++)
			client_free(&a->clients[i]);
		adapter_discovery_update(a);
		for (unsigned i = 0; i < s->npacks; i++)
			if (s->packs[i].adapter == a && s->packs[i].link != SIM_LINK_DOWN)
				pack_disconnect(&s->packs[i], "org.bluez.Reason.Local", "adapter powered off");
	}
	emit_changed(s, a->path, IFACE_ADAPTER, "Powered");
	emit_changed(s, a->path, IFACE_ADAPTER, "PowerState");
}

static int adapter_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		       sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	static const char *const roles[] = { "central", "peripheral" };
	struct sim_adapter *a = userdata;

	if (strcmp(prop, "Address") == 0)
		return sd_bus_message_append(reply, "s", a->address);
	if (strcmp(prop, "AddressType") == 0)
		return sd_bus_message_append(reply, "s", "public");
	if (strcmp(prop, "Name") == 0)
		return sd_bus_message_append(reply, "s", "jkbms-sim");
	if (strcmp(prop, "Alias") == 0)
		return sd_bus_message_append(reply, "s", *a->alias ? a->alias : "jkbms-sim");
	if (strcmp(prop, "Class") == 0)
		return sd_bus_message_append(reply, "u", (uint32_t)0);
	if (strcmp(prop, "Powered") == 0)
		return sd_bus_message_append(reply, "b", (int)a->powered);
	if (strcmp(prop, "PowerState") == 0)
		return sd_bus_message_append(reply, "s", a->powered ? "on" : "off");
	if (strcmp(prop, "Discoverable") == 0)
		return sd_bus_message_append(reply, "b", (int)a->discoverable);
	if (strcmp(prop, "Pairable") == 0)
		return sd_bus_message_append(reply, "b", (int)a->pairable);
	if (strcmp(prop, "DiscoverableTimeout") == 0)
		return sd_bus_message_append(reply, "u", (uint32_t)180);
	if (strcmp(prop, "PairableTimeout") == 0)
		return sd_bus_message_append(reply, "u", (uint32_t)0);
	if (strcmp(prop, "Discovering") == 0)
		return sd_bus_message_append(reply, "b", (int)a->discovering);
	if (strcmp(prop, "UUIDs") == 0)
		return sd_bus_message_append(reply, "as", 0);
	if (strcmp(prop, "Roles") == 0)
		return append_strv(reply, roles, NELEM(roles));
	return -ENOENT;
}

static int adapter_set(sd_bus *bus, const char *path, const char *iface, const char *prop,
		       sd_bus_message *value, void *userdata, sd_bus_error *err)
{
	struct sim_adapter *a = userdata;
	const char *s;
	int b, r;

	if (strcmp(prop, "Alias") == 0) {
		r = sd_bus_message_read(value, "s", &s);
		if (r < 0)
			return r;
		snprintf(a->alias, sizeof(a->alias), "%s", s);
		emit_changed(a->sim, a->path, IFACE_ADAPTER, prop);
		return 1;
	}
	r = sd_bus_message_read(value, "b", &b);
	if (r < 0)
		return r;
	if (strcmp(prop, "Powered") == 0) {
		adapter_set_powered(a, b);
		return 1;
	}
	if (strcmp(prop, "Discoverable") == 0 && b && !a->powered)
		return sd_bus_error_set(err, ERR_NOT_READY, "Resource Not Ready");
	*(strcmp(prop, "Discoverable") == 0 ? &a->discoverable : &a->pairable) = b;
	emit_changed(a->sim, a->path, IFACE_ADAPTER, prop);
	return 1;
}

static const sd_bus_vtable adapter_vtable[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),	/* bluetoothd checks no uid */
	SD_BUS_PROPERTY("Address", "s", adapter_get, 0, CONST),
	SD_BUS_PROPERTY("AddressType", "s", adapter_get, 0, CONST),
	SD_BUS_PROPERTY("Name", "s", adapter_get, 0, CONST),
	SD_BUS_WRITABLE_PROPERTY("Alias", "s", adapter_get, adapter_set, 0, EMITS),
	SD_BUS_PROPERTY("Class", "u", adapter_get, 0, EMITS),
	SD_BUS_WRITABLE_PROPERTY("Powered", "b", adapter_get, adapter_set, 0, EMITS),
	SD_BUS_PROPERTY("PowerState", "s", adapter_get, 0, EMITS),
	SD_BUS_WRITABLE_PROPERTY("Discoverable", "b", adapter_get, adapter_set, 0, EMITS),
	SD_BUS_WRITABLE_PROPERTY("Pairable", "b", adapter_get, adapter_set, 0, EMITS),
	SD_BUS_PROPERTY("DiscoverableTimeout", "u", adapter_get, 0, EMITS),
	SD_BUS_PROPERTY("PairableTimeout", "u", adapter_get, 0, EMITS),
	SD_BUS_PROPERTY("Discovering", "b", adapter_get, 0, EMITS),
	SD_BUS_PROPERTY("UUIDs", "as", adapter_get, 0, EMITS),
	SD_BUS_PROPERTY("Roles", "as", adapter_get, 0, CONST),
	SD_BUS_METHOD("StartDiscovery", "", "", adapter_start_discovery, 0),
	SD_BUS_METHOD("StopDiscovery", "", "", adapter_stop_discovery, 0),
	SD_BUS_METHOD_WITH_NAMES("RemoveDevice", "o", SD_BUS_PARAM(device), "", , adapter_remove_device, 0),
	SD_BUS_METHOD_WITH_NAMES("SetDiscoveryFilter", "a{sv}", SD_BUS_PARAM(filter), "", ,
				 adapter_set_filter, 0),
	SD_BUS_METHOD_WITH_NAMES("GetDiscoveryFilters", "", , "as", SD_BUS_PARAM(filters),
				 adapter_get_filters, 0),
	SD_BUS_VTABLE_END,
};

/* ------------------------------------------------------------ pack timer */

static void pack_schedule(struct sim_pack *p)
{
	uint64_t now = loop_now_ms(), next = sim_battery_next_due_ms(&p->bat);

	if (p->link_at && p->link_at < next)
		next = p->link_at;
	if (p->found_at && p->found_at < next)
		next = p->found_at;
	if (p->rssi_at && p->rssi_at < next)
		next = p->rssi_at;
	if (next == UINT64_MAX)
		loop_timer_arm(&p->timer, 0, 0);
	else
		loop_timer_arm(&p->timer, next > now ? next - now : 1, 0);
}

static void on_pack_timer(struct loop_source *src, uint32_t events)
{
	struct sim_pack *p = src->data;
	uint64_t now = loop_now_ms();

	loop_timer_ack(src);
	pack_link_step(p, now);
	sim_battery_tick(&p->bat, now);
	pack_pump(p);
	pack_discovery_step(p, now);
	pack_schedule(p);
	bus_update(p->sim);
}

/* ------------------------------------------------ fault injection (stdin) */

enum fault {
	FAULT_REFUSE,
	FAULT_SILENCE,
	FAULT_JUNK,
	FAULT_CORRUPT,
	FAULT_STALE,
};

static const char *const fault_names[] = {
	[FAULT_REFUSE] = "refuse", [FAULT_SILENCE] = "silence", [FAULT_JUNK] = "junk",
	[FAULT_CORRUPT] = "corrupt", [FAULT_STALE] = "stale",
};

/* The link stays Connected as if an earlier client held it: Connect
 * succeeds at once, nothing answers, until someone calls Disconnect. */
static void pack_set_stale(struct sim_pack *p, bool on)
{
	if (!on) {
		if (p->stale && p->link != SIM_LINK_DOWN)
			pack_disconnect(p, "org.bluez.Reason.Timeout", "stale link timed out");
		p->stale = false;
		return;
	}
	p->stale = true;
	if (p->link != SIM_LINK_DOWN)
		return;
	if (!p->exported)
		pack_export(p, false);
	pack_rssi_set(p, false);
	p->link = SIM_LINK_CONNECTING;	/* quietly: the earlier client's connect */
	pack_set_link(p, SIM_LINK_RESOLVING, "stale link, held by an earlier client");
	pack_set_link(p, SIM_LINK_UP, NULL);
	p->stale = true;
}

static void pack_set_fault(struct sim_pack *p, enum fault f, bool on)
{
	switch (f) {
	case FAULT_REFUSE:
		p->refuse = on;
		break;
	case FAULT_SILENCE:
		sim_battery_set_fault(&p->bat, SIM_FAULT_SILENCE, on);
		break;
	case FAULT_JUNK:
		sim_battery_set_fault(&p->bat, SIM_FAULT_JUNK, on);
		break;
	case FAULT_CORRUPT:
		sim_battery_set_fault(&p->bat, SIM_FAULT_CORRUPT, on);
		break;
	case FAULT_STALE:
		pack_set_stale(p, on);
		break;
	}
}

static struct sim_pack *sim_find_pack(struct sim *s, const char *addr)
{
	for (unsigned i = 0; i < s->npacks; i++)
		if (strcasecmp(s->packs[i].cfg->address, addr) == 0)
			return &s->packs[i];
	sim_log(s, "stdin: no pack with address '%s'", addr);
	return NULL;
}

static void cmd_status(struct sim *s)
{
	for (unsigned i = 0; i < s->npacks; i++) {
		struct sim_pack *p = &s->packs[i];
		int32_t ma;
		uint16_t soc;

		sim_battery_advance(&p->bat, loop_now_ms());
		ma = sim_battery_current_ma(&p->bat);
		soc = sim_battery_soc_permille(&p->bat);
		pack_log(p, "hci%u %s, %s, SOC %u.%u %%, current %.3f A%s%s%s%s%s%s", p->adapter->index,
			 p->exported ? "known" : "not discovered", link_names[p->link], soc / 10, soc % 10,
			 ma / 1000.0, p->bat.streaming ? ", streaming" : "", p->refuse ? ", refuse" : "",
			 p->bat.faults & SIM_FAULT_SILENCE ? ", silence" : "",
			 p->bat.faults & SIM_FAULT_JUNK ? ", junk" : "",
			 p->bat.faults & SIM_FAULT_CORRUPT ? ", corrupt" : "", p->stale ? ", stale" : "");
	}
}

static void cmd_drop(struct sim_pack *p)
{
	if (p->link == SIM_LINK_DOWN)
		pack_log(p, "drop: not connected");
	else
		pack_disconnect(p, "org.bluez.Reason.Timeout", "link lost");
}

/* set ADDR soc=N current=A temperature=C: all checked before any applies. */
static void cmd_set(struct sim *s, struct sim_pack *p, char **argv, int argc)
{
	double soc = -1, current = 0, temp = 0;
	bool has_current = false, has_temp = false;

	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '='), *end = NULL;
		double v = eq ? strtod(eq + 1, &end) : 0;

		if (!eq || end == eq + 1 || *end) {
			sim_log(s, "stdin: set: '%s' is not key=number", argv[i]);
			return;
		}
		*eq = '\0';
		if (strcmp(argv[i], "soc") == 0 && v >= 0 && v <= 100)
			soc = v;
		else if (strcmp(argv[i], "current") == 0 && v >= -1000 && v <= 1000)
			current = v, has_current = true;
		else if (strcmp(argv[i], "temperature") == 0 && v >= -40 && v <= 100)
			temp = v, has_temp = true;
		else {
			sim_log(s, "stdin: set: %s=%g is not one of soc=0..100, current=-1000..1000 (A), "
				   "temperature=-40..100 (C)", argv[i], v);
			return;
		}
	}
	sim_battery_advance(&p->bat, loop_now_ms());
	if (soc >= 0)
		sim_battery_set_soc(&p->bat, (uint16_t)(soc * 10 + 0.5));
	if (has_current)
		sim_battery_set_load(&p->bat, (int32_t)(current * 1000 + (current < 0 ? -0.5 : 0.5)));
	if (has_temp)
		sim_battery_set_temp(&p->bat, (int16_t)(temp * 10 + (temp < 0 ? -0.5 : 0.5)));
	pack_log(p, "set: SOC %.1f %%, load %.3f A, temperature %.1f C",
		 sim_battery_soc_permille(&p->bat) / 10.0, p->bat.load_ma / 1000.0, p->bat.temp_dc / 10.0);
}

static void cmd_help(struct sim *s)
{
	sim_log(s, "commands: drop ADDR | refuse|silence|junk|corrupt|stale ADDR on|off | "
		   "set ADDR soc=N current=A temperature=C | status | help");
}

static void sim_command(struct sim *s, char *line)
{
	char *argv[8], *save = NULL;
	int argc = 0;
	struct sim_pack *p;

	for (char *t = strtok_r(line, " \t\r", &save); t && argc < 8; t = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = t;
	if (argc == 0 || argv[0][0] == '#')
		return;
	if (strcmp(argv[0], "help") == 0) {
		cmd_help(s);
		return;
	}
	if (strcmp(argv[0], "status") == 0) {
		cmd_status(s);
		return;
	}
	if (strcmp(argv[0], "drop") == 0 && argc == 2) {
		if ((p = sim_find_pack(s, argv[1])))
			cmd_drop(p);
		return;
	}
	if (strcmp(argv[0], "set") == 0 && argc >= 3) {
		if ((p = sim_find_pack(s, argv[1])))
			cmd_set(s, p, argv + 2, argc - 2);
		return;
	}
	for (size_t f = 0; f < NELEM(fault_names); f++) {
		if (strcmp(argv[0], fault_names[f]) != 0)
			continue;
		if (argc != 3 || (strcmp(argv[2], "on") && strcmp(argv[2], "off"))) {
			sim_log(s, "stdin: usage: %s ADDR on|off", fault_names[f]);
			return;
		}
		if ((p = sim_find_pack(s, argv[1]))) {
			pack_log(p, "%s %s", fault_names[f], argv[2]);
			pack_set_fault(p, (enum fault)f, strcmp(argv[2], "on") == 0);
		}
		return;
	}
	sim_log(s, "stdin: unknown command '%s' (ignored; 'help' lists the commands)", argv[0]);
}

static void on_stdin(struct loop_source *src, uint32_t events)
{
	struct sim *s = src->data;
	ssize_t n = read(src->fd, s->line + s->line_len, sizeof(s->line) - 1 - s->line_len);
	char *nl;

	if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		sim_log(s, "stdin closed: no more fault injection");
		loop_remove(src);
		return;
	}
	if (n < 0)
		return;
	s->line_len += (size_t)n;
	s->line[s->line_len] = '\0';
	while ((nl = strchr(s->line, '\n'))) {
		*nl = '\0';
		sim_command(s, s->line);
		s->line_len -= (size_t)(nl + 1 - s->line);
		memmove(s->line, nl + 1, s->line_len + 1);
	}
	if (s->line_len == sizeof(s->line) - 1) {
		sim_log(s, "stdin: line too long, dropped");
		s->line_len = 0;
	}
	bus_update(s);
}

static void on_signal(struct loop_source *src, uint32_t events)
{
	struct sim *s = src->data;
	int sig;

	while ((sig = loop_signal_read(src)) > 0) {
		sim_log(s, "%s: stopping", strsignal(sig));
		loop_stop(&s->loop, 0);
	}
}

/* ---------------------------------------------------------------- set-up */

static int bus_open(sd_bus **bus, const char *address)
{
	int r;

	if (!address)
		return sd_bus_open_system(bus);	/* honours DBUS_SYSTEM_BUS_ADDRESS */
	r = sd_bus_new(bus);
	if (r >= 0)
		r = sd_bus_set_address(*bus, address);
	if (r >= 0)
		r = sd_bus_set_bus_client(*bus, 1);
	if (r >= 0)
		r = sd_bus_start(*bus);
	return r;
}

static struct sim_adapter *sim_adapter_for(struct sim *s, unsigned index)
{
	struct sim_adapter *a;

	for (unsigned i = 0; i < s->nadapters; i++)
		if (s->adapters[i].index == index)
			return &s->adapters[i];
	if (s->nadapters == SIM_MAX_ADAPTERS)
		return NULL;
	a = &s->adapters[s->nadapters++];
	a->sim = s;
	a->index = index;
	a->powered = a->pairable = true;
	snprintf(a->path, sizeof(a->path), "/org/bluez/hci%u", index);
	snprintf(a->address, sizeof(a->address), "00:1A:7D:DA:71:%02X", 0x10 + index);
	return a;
}

static void gatt_init(struct sim_pack *p)
{
	p->layout = p->cfg->module == SIM_MODULE_OLD ? layout_old : layout_new;
	p->ngatt = p->cfg->module == SIM_MODULE_OLD ? NELEM(layout_old) : NELEM(layout_new);
	for (size_t i = 0; i < p->ngatt; i++) {
		struct sim_gatt *g = &p->gatt[i];
		const struct gatt_def *d = &p->layout[i];
		const char *base = d->parent < 0 ? p->path : p->gatt[d->parent].path;
		const char *fmt = d->kind == G_SERVICE ? "%s/service%04x" : d->kind == G_CHR ? "%s/char%04x" :
											"%s/desc%04x";

		g->pack = p;
		g->def = d;
		g->notify_fd = g->write_fd = -1;
		g->notify_src.fd = g->write_src.fd = -1;
		snprintf(g->path, sizeof(g->path), fmt, base, d->handle);
	}
}

static int pack_init(struct sim *s, struct sim_pack *p, const struct sim_pack_config *c, unsigned k)
{
	p->sim = s;
	p->cfg = c;
	p->adapter = sim_adapter_for(s, c->adapter);
	if (!p->adapter)
		return -ENOSPC;
	snprintf(p->path, sizeof(p->path), "%s/dev_%s", p->adapter->path, c->address);
	for (char *ch = p->path; *ch; ch++)
		if (*ch == ':')
			*ch = '_';
	sscanf(c->address, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &p->mac[0], &p->mac[1], &p->mac[2], &p->mac[3],
	       &p->mac[4], &p->mac[5]);
	gatt_init(p);
	sim_battery_init(&p->bat, &c->battery, loop_now_ms());
	p->rssi_base = (int16_t)(-58 - 5 * (int)k);
	p->rssi = p->rssi_base;
	p->timer.fd = -1;
	return loop_timer_add(&s->loop, &p->timer, on_pack_timer, p);
}

static void pack_apply_start_faults(struct sim_pack *p)
{
	const struct sim_pack_config *c = p->cfg;

	pack_set_fault(p, FAULT_REFUSE, c->refuse);
	pack_set_fault(p, FAULT_SILENCE, c->silence);
	pack_set_fault(p, FAULT_JUNK, c->junk);
	pack_set_fault(p, FAULT_CORRUPT, c->corrupt);
	if (c->stale)
		pack_set_fault(p, FAULT_STALE, true);
}

static int sim_export(struct sim *s)
{
	int r = sd_bus_add_object_manager(s->bus, NULL, "/");

	for (unsigned i = 0; r >= 0 && i < s->nadapters; i++) {
		struct sim_adapter *a = &s->adapters[i];

		r = sd_bus_add_object_vtable(s->bus, &a->slot, a->path, IFACE_ADAPTER, adapter_vtable, a);
		if (r >= 0)
			r = sd_bus_emit_object_added(s->bus, a->path);
	}
	return r;
}

static int sim_setup(struct sim *s, const struct sim_config *c, const char *bus_address)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	int r;

	s->cfg = c;
	s->start_ms = loop_now_ms();
	s->rng = 0x2545F491u;
	r = loop_init(&s->loop);
	if (r < 0)
		return r;
	s->bus_src.fd = s->bus_timer.fd = s->stdin_src.fd = s->signals.fd = -1;
	r = bus_open(&s->bus, bus_address);
	if (r < 0) {
		sim_log(s, "cannot connect to the %s bus%s%s: %s", bus_address ? "given" : "system",
			bus_address ? " " : "", bus_address ? bus_address : "", strerror(-r));
		return r;
	}
	r = sd_bus_request_name(s->bus, BLUEZ_NAME, 0);
	if (r < 0) {
		sim_log(s, "cannot own %s on the bus: %s%s", BLUEZ_NAME, strerror(-r),
			r == -EEXIST ? " (is bluetoothd or another simulator running?)" : "");
		return r;
	}
	for (unsigned i = 0; r >= 0 && i < c->npacks; i++)
		r = pack_init(s, &s->packs[s->npacks++], &c->packs[i], i);
	if (r >= 0)
		r = sim_export(s);
	if (r >= 0)
		r = loop_add(&s->loop, &s->bus_src, sd_bus_get_fd(s->bus), EPOLLIN, on_bus, s);
	if (r >= 0)
		r = loop_timer_add(&s->loop, &s->bus_timer, on_bus_timer, s);
	if (r >= 0)
		r = loop_signals_add(&s->loop, &s->signals, sigs, NELEM(sigs), on_signal, s);
	if (r < 0) {
		sim_log(s, "set-up failed: %s", strerror(-r));
		return r;
	}
	if (loop_add(&s->loop, &s->stdin_src, STDIN_FILENO, EPOLLIN, on_stdin, s) < 0)
		sim_log(s, "stdin cannot be watched (a file or /dev/null?): no fault injection");
	return 0;
}

static void sim_teardown(struct sim *s)
{
	for (unsigned i = 0; i < s->npacks; i++) {
		struct sim_pack *p = &s->packs[i];

		if (p->connect_msg) {
			sd_bus_reply_method_errorf(p->connect_msg, ERR_FAILED, "%s", ERR_LE_ABORT);
			p->connect_msg = sd_bus_message_unref(p->connect_msg);
		}
		pack_unexport(p);
		loop_timer_del(&p->timer);
	}
	for (unsigned i = 0; i < s->nadapters; i++) {
		for (size_t j = 0; j < MAX_CLIENTS; j++)
			client_free(&s->adapters[i].clients[j]);
		s->adapters[i].slot = sd_bus_slot_unref(s->adapters[i].slot);
	}
	loop_remove(&s->stdin_src);
	loop_remove(&s->bus_src);
	loop_timer_del(&s->bus_timer);
	loop_signals_del(&s->signals);
	s->bus = sd_bus_flush_close_unref(s->bus);
	loop_close(&s->loop);
}

int sim_run(const struct sim_config *c, const char *bus_address)
{
	struct sim *s = calloc(1, sizeof(*s));
	int rc = 1;

	if (!s) {
		fprintf(stderr, "jkbms sim: out of memory\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (sim_setup(s, c, bus_address) == 0) {
		sim_log(s, "serving %u pack%s on %u adapter%s as %s (gatt_cache %s); stdin takes commands, "
			   "'help' lists them", s->npacks, s->npacks == 1 ? "" : "s", s->nadapters,
			s->nadapters == 1 ? "" : "s", BLUEZ_NAME, c->gatt_cache ? "on" : "off");
		for (unsigned i = 0; i < s->npacks; i++)
			pack_apply_start_faults(&s->packs[i]);
		bus_update(s);
		rc = loop_run(&s->loop);
		rc = rc < 0 ? 1 : rc;
	}
	sim_teardown(s);
	free(s);
	return rc;
}
