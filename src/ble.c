/*
 * ble — BlueZ over D-Bus (sd-bus): the object cache, discovery, and one
 * state machine per pack (see ble.h for the picture).
 *
 * Invariants:
 *  - every link transition goes through link_set_state(), which logs it
 *    once and tells the caller; nothing else writes l->state;
 *  - an adapter has at most one link in its `connecting` slot, and its
 *    discovery is off while the slot is taken;
 *  - every asynchronous call a link or adapter makes keeps its slot in
 *    the owner (l->call, l->writes[], a->disc_call, a->power_call), so
 *    tearing the owner down cancels the reply callback with it; only
 *    fire-and-forget calls (no callback, no reply expected) go without;
 *  - the cache holds copies of what BlueZ announced; a link refers to
 *    objects by path and looks them up, so a removed object never leaves
 *    a dangling pointer;
 *  - sd_bus_process() runs only from the bus fd and bus timer callbacks;
 *    everything else just queues messages and calls ble_flush(), which
 *    re-arms the fd events and the timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "ble.h"
#include "service.h"

#define BLUEZ "org.bluez"
#define IFACE_ADAPTER "org.bluez.Adapter1"
#define IFACE_DEVICE "org.bluez.Device1"
#define IFACE_SERVICE "org.bluez.GattService1"
#define IFACE_CHAR "org.bluez.GattCharacteristic1"
#define IFACE_PROPS "org.freedesktop.DBus.Properties"
#define IFACE_OM "org.freedesktop.DBus.ObjectManager"

#define UUID_FFE0 "0000ffe0-0000-1000-8000-00805f9b34fb"

#define BLE_MAX_ADAPTERS 8
#define BLE_MAX_WRITES 4		/* WriteValue calls in flight per link */
#define CALL_TIMEOUT_MS 10000
#define CONNECT_CALL_MS 30000		/* Device1.Connect */
#define CONNECT_TIMEOUT_MS 35000	/* the whole connecting state */
#define RESOLVE_TIMEOUT_MS 20000
#define DISCOVER_CHECK_MS 60000		/* not seen for this long counts as a failure */
#define DISCOVERY_RETRY_MS 10000	/* after a refused StartDiscovery */
#define BUS_RETRY_MIN_MS 1000
#define BUS_RETRY_MAX_MS 30000
#define OBJECTS_RETRY_MS 5000
#define TICK_MS 1000
#define BAD_LOG_INTERVAL_MS 60000
#define PROCESS_BURST 256		/* bus messages per loop turn */
#define CLOSE_WAIT_MS 2000		/* ble_close() waits this long for Disconnect replies */

enum { CHR_READ = 1, CHR_WRITE = 2, CHR_WRITE_NR = 4, CHR_NOTIFY = 8, CHR_INDICATE = 16 };
enum { FILTER_NONE, FILTER_PACKS, FILTER_SCAN };
enum bus_state { BUS_DOWN, BUS_WAITING, BUS_READY };

struct badapter {
	struct ble *b;
	bool used;
	char *path;
	char name[16];
	bool powered;
	bool discovering;		/* BlueZ's Discovering property */
	bool disc_on;			/* our discovery session runs */
	bool disc_announced;		/* "discovering" logged, pauses are not news */
	int filter;			/* FILTER_* last set */
	int filter_want;		/* FILTER_* being set */
	sd_bus_slot *disc_call;
	uint64_t disc_retry_ms;
	struct ble_link *connecting;	/* the one Connect in flight */
	sd_bus_slot *power_call;
	int cycling;			/* 0; 1 powering off; 2 powering on */
};

struct bdev {
	struct bdev *next;
	char *path;
	char *adapter_path;
	struct ble_device pub;
};

struct bsvc {
	struct bsvc *next;
	char *path;
	char *device_path;
	bool ffe0;
};

struct bchr {
	struct bchr *next;
	char *path;
	char *service_path;
	uint16_t uuid16;		/* 0 when not a 16-bit SIG-based UUID */
	unsigned flags;			/* CHR_* */
	bool acquire;			/* NotifyAcquired present: AcquireNotify offered */
};

struct ble {
	struct loop *loop;
	sd_bus *bus;
	enum bus_state state;
	bool closing;
	unsigned disconnects;		/* Disconnect calls awaiting their reply */
	bool in_process;
	struct loop_source bus_src, bus_timer, tick;
	uint32_t bus_events;
	sd_bus_slot *matches[4];
	sd_bus_slot *objects_call;
	uint64_t bus_retry_ms, bus_retry_at, objects_retry_at;
	bool down_logged, missing_logged;
	struct badapter adapters[BLE_MAX_ADAPTERS];
	struct bdev *devices;
	struct bsvc *services;
	struct bchr *chars;
	struct ble_link *links;
	bool scan;
	char scan_adapter[16];
	bool scheduling, reschedule;
	uint32_t rng;
};

struct ble_link {
	struct ble_link *next;
	struct ble *b;
	char name[64];
	char address[18];
	char adapter_name[16];		/* bound adapter, "" = any */
	struct pack *pack;
	const struct ble_link_ops *ops;
	void *ctx;

	enum ble_state state;
	uint64_t since_ms;
	struct loop_source timer;	/* the state's timeout */
	struct loop_source cmd_timer;	/* a queued 0x96 */

	struct badapter *adapter;	/* of the current or last attempt */
	char last_adapter[16];
	char *dev_path;
	char *notify_path, *write_path;
	bool write_command;		/* write without response */
	bool stale_done;		/* stale-link cleanup done for this attempt */
	bool acquire_failed;		/* AcquireNotify refused: StartNotify this session */
	sd_bus_slot *call;		/* Disconnect / Connect / AcquireNotify / StartNotify */
	bool call_is_connect;
	sd_bus_slot *writes[BLE_MAX_WRITES];
	bool write_err_logged;

	int notify_fd;
	struct loop_source notify_src;
	bool via_fd;
	uint16_t mtu;

	bool queued_96;
	uint64_t cmd_deadline_ms;
	uint64_t last_cell_ms;

	uint32_t failures, connects, reconnects, power_cycles;
	bool cycle_considered;		/* this failure streak already reached the power-cycle step */
	uint32_t bad_seen;
	uint64_t bad_logged_ms;
};

static void ble_schedule(struct ble *b);
static void ble_flush(struct ble *b);
static void link_fail(struct ble_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void link_try_start(struct ble_link *l);
static void link_connect_step(struct ble_link *l);
static void link_resolve(struct ble_link *l);
static void adapter_discovery(struct ble *b, struct badapter *a);

/* ------------------------------------------------------------- helpers */

static const char *const state_names[] = {
	[BLE_IDLE] = "idle",
	[BLE_DISCOVERING] = "discovering",
	[BLE_CONNECTING] = "connecting",
	[BLE_RESOLVING] = "resolving",
	[BLE_SUBSCRIBED] = "subscribed",
	[BLE_STREAMING] = "streaming",
	[BLE_BACKOFF] = "back-off",
};

const char *ble_state_name(enum ble_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void set_str(char **dst, const char *src)
{
	char *copy = src ? strdup(src) : NULL;

	free(*dst);
	*dst = copy;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static uint32_t ble_random(struct ble *b)
{
	uint32_t x = b->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return b->rng = x;
}

/* "0000ffe1-0000-1000-8000-00805f9b34fb" or "ffe1" -> 0xFFE1; else 0. */
static uint16_t uuid16(const char *s)
{
	static const char base[] = "-0000-1000-8000-00805f9b34fb";
	char hex[5] = "";

	if (!s)
		return 0;
	if (strlen(s) == 4)
		memcpy(hex, s, 4);
	else if (strlen(s) == 36 && strncmp(s, "0000", 4) == 0 && strcasecmp(s + 8, base) == 0)
		memcpy(hex, s + 4, 4);
	else
		return 0;
	return (uint16_t)strtoul(hex, NULL, 16);
}

/* The last path component: "/org/bluez/hci1" -> "hci1". */
static const char *path_leaf(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : (path ? path : "");
}

static const char *err_text(const sd_bus_error *e, char *buf, size_t cap)
{
	if (e->message && *e->message)
		snprintf(buf, cap, "%s (%s)", e->name ? e->name : "error", e->message);
	else
		snprintf(buf, cap, "%s", e->name ? e->name : "error");
	return buf;
}

static uint64_t now_ms(void)
{
	return loop_now_ms();
}

/* ---------------------------------------------------------------- cache */

static struct badapter *adapter_by_path(struct ble *b, const char *path)
{
	for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
		if (b->adapters[i].used && streq(b->adapters[i].path, path))
			return &b->adapters[i];
	return NULL;
}

static struct badapter *adapter_get(struct ble *b, const char *path)
{
	struct badapter *a = adapter_by_path(b, path);

	for (unsigned i = 0; !a && i < BLE_MAX_ADAPTERS; i++) {
		if (b->adapters[i].used)
			continue;
		a = &b->adapters[i];
		memset(a, 0, sizeof(*a));
		a->b = b;
		a->used = true;
		set_str(&a->path, path);
		copy_str(a->name, sizeof(a->name), path_leaf(path));
		log_info("adapter %s: present", a->name);
	}
	return a;
}

static struct bdev *dev_by_path(struct ble *b, const char *path)
{
	for (struct bdev *d = b->devices; d; d = d->next)
		if (streq(d->path, path))
			return d;
	return NULL;
}

/* ".../dev_C8_47_8C_E1_E2_AA" -> "C8:47:8C:E1:E2:AA" until Address says. */
static void dev_address_from_path(struct bdev *d)
{
	const char *leaf = path_leaf(d->path);

	if (strncmp(leaf, "dev_", 4) != 0 || strlen(leaf) != 4 + 17)
		return;
	copy_str(d->pub.address, sizeof(d->pub.address), leaf + 4);
	for (char *c = d->pub.address; *c; c++)
		if (*c == '_')
			*c = ':';
}

static struct bdev *dev_get(struct ble *b, const char *path)
{
	struct bdev *d = dev_by_path(b, path);
	char *slash;

	if (d)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->path = strdup(path);
	d->adapter_path = strdup(path);
	if (!d->path || !d->adapter_path) {
		free(d->path);
		free(d->adapter_path);
		free(d);
		return NULL;
	}
	slash = strrchr(d->adapter_path, '/');
	if (slash)
		*slash = '\0';
	copy_str(d->pub.adapter, sizeof(d->pub.adapter), path_leaf(d->adapter_path));
	dev_address_from_path(d);
	d->next = b->devices;
	b->devices = d;
	return d;
}

static struct bsvc *svc_get(struct ble *b, const char *path, bool create)
{
	struct bsvc *s;

	for (s = b->services; s; s = s->next)
		if (streq(s->path, path))
			return s;
	if (!create || !(s = calloc(1, sizeof(*s))))
		return NULL;
	if (!(s->path = strdup(path))) {
		free(s);
		return NULL;
	}
	s->next = b->services;
	b->services = s;
	return s;
}

static struct bchr *chr_get(struct ble *b, const char *path, bool create)
{
	struct bchr *c;

	for (c = b->chars; c; c = c->next)
		if (streq(c->path, path))
			return c;
	if (!create || !(c = calloc(1, sizeof(*c))))
		return NULL;
	if (!(c->path = strdup(path))) {
		free(c);
		return NULL;
	}
	c->next = b->chars;
	b->chars = c;
	return c;
}

static void dev_free(struct bdev *d)
{
	free(d->path);
	free(d->adapter_path);
	free(d);
}

static void svc_free(struct bsvc *s)
{
	free(s->path);
	free(s->device_path);
	free(s);
}

static void chr_free(struct bchr *c)
{
	free(c->path);
	free(c->service_path);
	free(c);
}

static void adapter_free(struct badapter *a)
{
	sd_bus_slot_unref(a->disc_call);
	sd_bus_slot_unref(a->power_call);
	free(a->path);
	memset(a, 0, sizeof(*a));
}

static void cache_clear(struct ble *b)
{
	while (b->devices) {
		struct bdev *d = b->devices;

		b->devices = d->next;
		dev_free(d);
	}
	while (b->services) {
		struct bsvc *s = b->services;

		b->services = s->next;
		svc_free(s);
	}
	while (b->chars) {
		struct bchr *c = b->chars;

		b->chars = c->next;
		chr_free(c);
	}
	for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
		if (b->adapters[i].used)
			adapter_free(&b->adapters[i]);
	for (struct ble_link *l = b->links; l; l = l->next)
		l->adapter = NULL;
}

/* ----------------------------------------------------- property parsing */

/* A variant of signature `sig` read into `p`; another type is skipped.
 * 1 read, 0 skipped, < 0 a broken message. */
static int read_var(sd_bus_message *m, const char *sig, void *p)
{
	int r = sd_bus_message_read(m, "v", sig, p);

	if (r == -ENXIO)
		return sd_bus_message_skip(m, "v") < 0 ? -EBADMSG : 0;
	return r < 0 ? r : 1;
}

static int read_var_bool(sd_bus_message *m, bool *out)
{
	int v = 0, r = read_var(m, "b", &v);

	if (r > 0)
		*out = v != 0;
	return r;
}

static int read_var_str(sd_bus_message *m, const char *sig, char *out, size_t cap)
{
	const char *s = NULL;
	int r = read_var(m, sig, &s);

	if (r > 0)
		copy_str(out, cap, s);
	return r;
}

static int read_var_dup(sd_bus_message *m, const char *sig, char **out)
{
	const char *s = NULL;
	int r = read_var(m, sig, &s);

	if (r > 0)
		set_str(out, s);
	return r;
}

/* A variant "as", each string handed to fn. */
static int read_var_strings(sd_bus_message *m, void (*fn)(void *obj, const char *s), void *obj)
{
	const char *s;
	int r = sd_bus_message_enter_container(m, 'v', "as");

	if (r == -ENXIO)
		return sd_bus_message_skip(m, "v") < 0 ? -EBADMSG : 0;
	if (r < 0 || (r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
		return r;
	while ((r = sd_bus_message_read_basic(m, 's', &s)) > 0)
		fn(obj, s);
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int read_var_manufacturer(sd_bus_message *m, struct ble_device *d)
{
	uint16_t id;
	int r = sd_bus_message_enter_container(m, 'v', "a{qv}");

	if (r == -ENXIO)
		return sd_bus_message_skip(m, "v") < 0 ? -EBADMSG : 0;
	if (r < 0 || (r = sd_bus_message_enter_container(m, 'a', "{qv}")) < 0)
		return r;
	d->n_manufacturer = 0;
	while ((r = sd_bus_message_enter_container(m, 'e', "qv")) > 0) {
		if ((r = sd_bus_message_read_basic(m, 'q', &id)) < 0 ||
		    (r = sd_bus_message_skip(m, "v")) < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
		if (d->n_manufacturer < sizeof(d->manufacturer) / sizeof(d->manufacturer[0]))
			d->manufacturer[d->n_manufacturer++] = id;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

typedef int (*prop_fn)(struct ble *b, void *obj, const char *name, sd_bus_message *m);

/* An a{sv}: each property to fn, which consumes exactly its variant. */
static int props_each(struct ble *b, sd_bus_message *m, prop_fn fn, void *obj)
{
	const char *name;
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read_basic(m, 's', &name)) < 0)
			return r;
		r = obj ? fn(b, obj, name, m) : sd_bus_message_skip(m, "v");
		if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int adapter_prop(struct ble *b, void *obj, const char *name, sd_bus_message *m)
{
	struct badapter *a = obj;

	if (strcmp(name, "Powered") == 0)
		return read_var_bool(m, &a->powered);
	if (strcmp(name, "Discovering") == 0)
		return read_var_bool(m, &a->discovering);
	return sd_bus_message_skip(m, "v");
}

static void dev_uuid(void *obj, const char *s)
{
	struct ble_device *d = obj;

	if (uuid16(s) == 0xFFE0)
		d->service_ffe0 = true;
}

static int dev_prop(struct ble *b, void *obj, const char *name, sd_bus_message *m)
{
	struct bdev *d = obj;
	int16_t rssi;
	int r;

	if (strcmp(name, "Address") == 0)
		return read_var_str(m, "s", d->pub.address, sizeof(d->pub.address));
	if (strcmp(name, "Name") == 0)
		return read_var_str(m, "s", d->pub.name, sizeof(d->pub.name));
	if (strcmp(name, "Alias") == 0 && !*d->pub.name)
		return read_var_str(m, "s", d->pub.name, sizeof(d->pub.name));
	if (strcmp(name, "Adapter") == 0) {
		r = read_var_dup(m, "o", &d->adapter_path);
		copy_str(d->pub.adapter, sizeof(d->pub.adapter), path_leaf(d->adapter_path));
		return r;
	}
	if (strcmp(name, "RSSI") == 0) {
		if ((r = read_var(m, "n", &rssi)) > 0) {
			d->pub.rssi = rssi;
			d->pub.have_rssi = true;
		}
		return r;
	}
	if (strcmp(name, "Connected") == 0)
		return read_var_bool(m, &d->pub.connected);
	if (strcmp(name, "ServicesResolved") == 0)
		return read_var_bool(m, &d->pub.services_resolved);
	if (strcmp(name, "UUIDs") == 0)
		return read_var_strings(m, dev_uuid, &d->pub);
	if (strcmp(name, "ManufacturerData") == 0)
		return read_var_manufacturer(m, &d->pub);
	return sd_bus_message_skip(m, "v");
}

static int svc_prop(struct ble *b, void *obj, const char *name, sd_bus_message *m)
{
	struct bsvc *s = obj;
	const char *uuid = NULL;
	int r;

	if (strcmp(name, "UUID") == 0) {
		if ((r = read_var(m, "s", &uuid)) > 0)
			s->ffe0 = uuid16(uuid) == 0xFFE0;
		return r;
	}
	if (strcmp(name, "Device") == 0)
		return read_var_dup(m, "o", &s->device_path);
	return sd_bus_message_skip(m, "v");
}

static void chr_flag(void *obj, const char *s)
{
	static const struct {
		const char *name;
		unsigned bit;
	} flags[] = {
		{ "read", CHR_READ },
		{ "write", CHR_WRITE },
		{ "write-without-response", CHR_WRITE_NR },
		{ "notify", CHR_NOTIFY },
		{ "indicate", CHR_INDICATE },
	};
	struct bchr *c = obj;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strcmp(s, flags[i].name) == 0)
			c->flags |= flags[i].bit;
}

static int chr_prop(struct ble *b, void *obj, const char *name, sd_bus_message *m)
{
	struct bchr *c = obj;
	const char *uuid = NULL;
	bool acquired;
	int r;

	if (strcmp(name, "UUID") == 0) {
		if ((r = read_var(m, "s", &uuid)) > 0)
			c->uuid16 = uuid16(uuid);
		return r;
	}
	if (strcmp(name, "Service") == 0)
		return read_var_dup(m, "o", &c->service_path);
	if (strcmp(name, "Flags") == 0) {
		c->flags = 0;
		return read_var_strings(m, chr_flag, c);
	}
	if (strcmp(name, "NotifyAcquired") == 0) {
		/* Present only where AcquireNotify is offered (BlueZ docs). */
		if ((r = read_var_bool(m, &acquired)) > 0)
			c->acquire = true;
		return r;
	}
	return sd_bus_message_skip(m, "v");
}

/* ------------------------------------------------------------ D-Bus calls */

static int bus_call(struct ble *b, sd_bus_slot **slot, const char *path, const char *iface,
		    const char *member, sd_bus_message_handler_t cb, void *ud, uint64_t timeout_ms,
		    const char *types, ...)
{
	sd_bus_message *m = NULL;
	va_list ap;
	int r;

	if (!b->bus)
		return -ENOTCONN;
	r = sd_bus_message_new_method_call(b->bus, &m, BLUEZ, path, iface, member);
	if (r >= 0 && types) {
		va_start(ap, types);
		r = sd_bus_message_appendv(m, types, ap);
		va_end(ap);
	}
	if (r >= 0)
		r = sd_bus_call_async(b->bus, slot, m, cb, ud, timeout_ms * 1000);
	sd_bus_message_unref(m);
	return r;
}

/* Fire and forget: no reply is asked for. */
static void bus_send(struct ble *b, const char *path, const char *iface, const char *member)
{
	int r = bus_call(b, NULL, path, iface, member, NULL, NULL, CALL_TIMEOUT_MS, NULL);

	if (r < 0)
		log_debug("bluez: %s %s not sent: %s", member, path, strerror(-r));
}

static int on_disconnect_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;

	if (b->disconnects)
		b->disconnects--;
	return 0;
}

/* Disconnect without an owner for the reply (the link may be gone by
 * then); ble_close() waits for the count to drain before it leaves the
 * bus, so the BMS is free for the next start or the phone app. */
static void bus_disconnect(struct ble *b, const char *dev_path)
{
	int r = bus_call(b, NULL, dev_path, IFACE_DEVICE, "Disconnect", on_disconnect_reply, b,
			 CALL_TIMEOUT_MS, NULL);

	if (r >= 0)
		b->disconnects++;
	else
		log_debug("bluez: Disconnect %s not sent: %s", dev_path, strerror(-r));
}

/* The reply's error as text, or NULL when the call succeeded. */
static const char *reply_error(sd_bus_message *m, char *buf, size_t cap)
{
	if (!sd_bus_message_is_method_error(m, NULL))
		return NULL;
	return err_text(sd_bus_message_get_error(m), buf, cap);
}

static bool reply_error_is(sd_bus_message *m, const char *name)
{
	return sd_bus_message_is_method_error(m, name) > 0;
}

/* ----------------------------------------------------------- link state */

static void link_set_state(struct ble_link *l, enum ble_state s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void link_set_state(struct ble_link *l, enum ble_state s, const char *fmt, ...)
{
	char detail[256] = "";
	va_list ap;

	if (s == l->state)
		return;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	l->state = s;
	l->since_ms = now_ms();
	service_log(s == BLE_BACKOFF ? LOG_WARNING : LOG_INFO, "pack %s: %s%s%s", l->name,
		    ble_state_name(s), *detail ? ", " : "", detail);
	if (l->ops->on_state)
		l->ops->on_state(l->ctx, s);
}

static bool link_connected_state(const struct ble_link *l)
{
	return l->state == BLE_RESOLVING || l->state == BLE_SUBSCRIBED || l->state == BLE_STREAMING;
}

static bool adapter_allowed(const struct ble_link *l, const struct badapter *a)
{
	return a->used && (!*l->adapter_name || strcmp(a->name, l->adapter_name) == 0);
}

static bool adapter_usable(const struct badapter *a)
{
	return a->used && a->powered && !a->cycling;
}

static unsigned adapter_load(const struct ble *b, const struct badapter *a)
{
	unsigned n = 0;

	for (const struct ble_link *l = b->links; l; l = l->next)
		n += l->adapter == a && (link_connected_state(l) || l->state == BLE_CONNECTING);
	return n;
}

/* The link's Device1 on a usable adapter: a free connect slot first, then
 * the adapter carrying the fewest links. */
static struct bdev *link_find_device(struct ble_link *l, struct badapter **out)
{
	struct bdev *best = NULL;
	unsigned best_score = ~0u;

	for (struct bdev *d = l->b->devices; d; d = d->next) {
		struct badapter *a = adapter_by_path(l->b, d->adapter_path);
		unsigned score;

		if (strcasecmp(d->pub.address, l->address) != 0 || !a || !adapter_allowed(l, a) ||
		    !adapter_usable(a))
			continue;
		score = (a->connecting ? 1000 : 0) + adapter_load(l->b, a);
		if (score < best_score) {
			best = d;
			best_score = score;
			*out = a;
		}
	}
	return best;
}

static struct badapter *link_any_adapter(struct ble_link *l)
{
	for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
		if (adapter_allowed(l, &l->b->adapters[i]) && adapter_usable(&l->b->adapters[i]))
			return &l->b->adapters[i];
	return NULL;
}

/* Release everything the session holds; the state is the caller's. */
static void link_teardown(struct ble_link *l, bool disconnect)
{
	struct ble *b = l->b;
	struct bdev *d = l->dev_path ? dev_by_path(b, l->dev_path) : NULL;
	bool abandon_connect = l->call && l->call_is_connect;

	l->call = sd_bus_slot_unref(l->call);
	l->call_is_connect = false;
	for (unsigned i = 0; i < BLE_MAX_WRITES; i++)
		l->writes[i] = sd_bus_slot_unref(l->writes[i]);
	if (l->notify_fd >= 0) {
		loop_remove(&l->notify_src);
		close(l->notify_fd);
		l->notify_fd = -1;
	} else if (l->notify_path && d && d->pub.connected &&
		   (l->state == BLE_SUBSCRIBED || l->state == BLE_STREAMING)) {
		bus_send(b, l->notify_path, IFACE_CHAR, "StopNotify");
	}
	l->via_fd = false;
	l->queued_96 = false;
	loop_timer_arm(&l->cmd_timer, 0, 0);
	if (l->adapter && l->adapter->connecting == l)
		l->adapter->connecting = NULL;
	/* A Connect we gave up on may still be pending inside BlueZ. */
	if (disconnect && d && (d->pub.connected || abandon_connect))
		bus_disconnect(b, l->dev_path);
	set_str(&l->dev_path, NULL);
	set_str(&l->notify_path, NULL);
	set_str(&l->write_path, NULL);
	l->acquire_failed = false;
	l->write_err_logged = false;
	pack_reset_link(l->pack);
}

static uint64_t link_backoff_ms(struct ble_link *l)
{
	unsigned shift = l->failures > 1 ? l->failures - 1 : 0;
	uint64_t d = shift >= 7 ? BLE_BACKOFF_MAX_MS : (uint64_t)BLE_BACKOFF_MIN_MS << shift;

	if (d > BLE_BACKOFF_MAX_MS)
		d = BLE_BACKOFF_MAX_MS;
	/* Up to 20 % shorter, so packs that failed together do not retry together. */
	return d - d * (ble_random(l->b) % 201) / 1000;
}

static void adapter_power_cycle(struct ble *b, struct badapter *a, struct ble_link *why);

/* After BLE_POWER_CYCLE_AFTER consecutive failures: once per streak, and
 * only when no other pack streams through the adapter (then the radio
 * works and the pack is the problem). */
static void link_consider_power_cycle(struct ble_link *l)
{
	struct badapter *a = l->adapter && l->adapter->used ? l->adapter : link_any_adapter(l);

	if (l->failures < BLE_POWER_CYCLE_AFTER || l->cycle_considered || !a || a->cycling)
		return;
	l->cycle_considered = true;
	for (struct ble_link *o = l->b->links; o; o = o->next)
		if (o != l && o->adapter == a && o->state == BLE_STREAMING) {
			log_notice("adapter %s: not power-cycled for pack %s (%u failures): "
				   "pack %s streams through it", a->name, l->name, l->failures, o->name);
			return;
		}
	l->power_cycles++;
	adapter_power_cycle(l->b, a, l);
}

static void link_fail(struct ble_link *l, const char *fmt, ...)
{
	const struct jk_stream_stats *st = &l->pack->stream.stats;
	bool had_session = l->state == BLE_SUBSCRIBED || l->state == BLE_STREAMING;
	char why[256], session[96] = "";
	uint64_t delay;
	va_list ap;

	if (l->state == BLE_BACKOFF)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	link_teardown(l, true);
	l->failures++;
	delay = link_backoff_ms(l);
	if (had_session)
		snprintf(session, sizeof(session), " (%u frames, %u bad checksums so far)", st->frames,
			 st->bad_checksums);
	link_set_state(l, BLE_BACKOFF, "retry in %.1f s: %s%s", delay / 1000.0, why, session);
	loop_timer_arm(&l->timer, delay, 0);
	link_consider_power_cycle(l);
	ble_schedule(l->b);
}

static void link_try_start(struct ble_link *l)
{
	struct ble *b = l->b;
	struct badapter *a = NULL;
	struct bdev *d;

	if (b->state != BUS_READY) {
		link_set_state(l, BLE_IDLE, "waiting for BlueZ");
		return;
	}
	if (!link_any_adapter(l)) {
		link_set_state(l, BLE_IDLE, "waiting for %s%s", *l->adapter_name ? "adapter " : "an adapter",
			       l->adapter_name);
		return;
	}
	d = link_find_device(l, &a);
	if (!d) {
		if (l->state != BLE_DISCOVERING)
			loop_timer_arm(&l->timer, DISCOVER_CHECK_MS, 0);
		link_set_state(l, BLE_DISCOVERING, NULL);
		return;
	}
	if (a->connecting) {
		link_set_state(l, BLE_IDLE, "waiting for %s", a->name);
		return;
	}
	a->connecting = l;
	l->adapter = a;
	copy_str(l->last_adapter, sizeof(l->last_adapter), a->name);
	set_str(&l->dev_path, d->path);
	l->stale_done = false;
	if (d->pub.have_rssi)
		link_set_state(l, BLE_CONNECTING, "via %s, RSSI %d dBm", a->name, d->pub.rssi);
	else
		link_set_state(l, BLE_CONNECTING, "via %s", a->name);
	loop_timer_arm(&l->timer, CONNECT_TIMEOUT_MS, 0);
	adapter_discovery(b, a);	/* paused while the Connect is in flight */
	link_connect_step(l);
}

/* --------------------------------------------------------- connecting */

static int on_stale_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble_link *l = ud;

	l->call = sd_bus_slot_unref(l->call);
	l->stale_done = true;
	link_connect_step(l);
	return 0;
}

static int on_connect_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble_link *l = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	l->call = sd_bus_slot_unref(l->call);
	l->call_is_connect = false;
	if (err && !reply_error_is(m, "org.bluez.Error.AlreadyConnected")) {
		link_fail(l, "connect failed: %s", err);
		return 0;
	}
	if (l->adapter && l->adapter->connecting == l)
		l->adapter->connecting = NULL;
	link_set_state(l, BLE_RESOLVING, NULL);
	loop_timer_arm(&l->timer, RESOLVE_TIMEOUT_MS, 0);
	link_resolve(l);
	ble_schedule(l->b);
	return 0;
}

/* Discovery paused -> stale-link cleanup -> Connect, one call at a time. */
static void link_connect_step(struct ble_link *l)
{
	struct ble *b = l->b;
	struct badapter *a = l->adapter;
	struct bdev *d = l->dev_path ? dev_by_path(b, l->dev_path) : NULL;
	int r;

	if (l->state != BLE_CONNECTING || l->call)
		return;
	if (!d || !a) {
		link_fail(l, "device object vanished before connecting");
		return;
	}
	if (a->disc_on || a->disc_call)
		return;		/* the discovery reply steps again */
	if (d->pub.connected && !l->stale_done) {
		log_notice("pack %s: still connected from an earlier session; disconnecting it first", l->name);
		r = bus_call(b, &l->call, l->dev_path, IFACE_DEVICE, "Disconnect", on_stale_reply, l,
			     CALL_TIMEOUT_MS, NULL);
	} else {
		r = bus_call(b, &l->call, l->dev_path, IFACE_DEVICE, "Connect", on_connect_reply, l,
			     CONNECT_CALL_MS, NULL);
		l->call_is_connect = r >= 0;
	}
	if (r < 0)
		link_fail(l, "cannot call BlueZ: %s", strerror(-r));
}

/* ----------------------------------------------------------- resolving */

static bool chr_on_device(struct ble *b, const struct bchr *c, const char *dev_path)
{
	struct bsvc *s = c->service_path ? svc_get(b, c->service_path, false) : NULL;

	return s && s->ffe0 && streq(s->device_path, dev_path);
}

/* FFE1 by property: the one that notifies, the one that takes writes
 * (without response preferred); the same one on old modules. */
static void link_find_chars(struct ble_link *l, struct bchr **notify, struct bchr **write)
{
	*notify = *write = NULL;
	for (struct bchr *c = l->b->chars; c; c = c->next) {
		if (c->uuid16 != 0xFFE1 || !chr_on_device(l->b, c, l->dev_path))
			continue;
		if ((c->flags & (CHR_NOTIFY | CHR_INDICATE)) && (!*notify || !((*notify)->flags & CHR_NOTIFY)))
			*notify = c;
		if ((c->flags & CHR_WRITE_NR) && (!*write || !((*write)->flags & CHR_WRITE_NR)))
			*write = c;
		else if ((c->flags & CHR_WRITE) && !*write)
			*write = c;
	}
}

static void link_subscribed(struct ble_link *l);
static void on_notify_fd(struct loop_source *src, uint32_t events);

static int on_acquire_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble_link *l = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));
	uint16_t mtu = 0;
	int fd = -1, r;

	l->call = sd_bus_slot_unref(l->call);
	if (err) {
		log_debug("pack %s: AcquireNotify refused (%s); using StartNotify", l->name, err);
		l->acquire_failed = true;
		link_resolve(l);
		return 0;
	}
	r = sd_bus_message_read(m, "hq", &fd, &mtu);
	if (r >= 0)
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);	/* the message owns its fd */
	if (r < 0 || fd < 0) {
		link_fail(l, "AcquireNotify gave no usable fd");
		return 0;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	l->notify_fd = fd;
	l->mtu = mtu;
	l->via_fd = true;
	link_subscribed(l);
	return 0;
}

static int on_start_notify_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble_link *l = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	l->call = sd_bus_slot_unref(l->call);
	if (err) {
		link_fail(l, "StartNotify failed: %s", err);
		return 0;
	}
	link_subscribed(l);
	return 0;
}

static void link_resolve(struct ble_link *l)
{
	struct ble *b = l->b;
	struct bdev *d = l->dev_path ? dev_by_path(b, l->dev_path) : NULL;
	struct bchr *n, *w;
	int r;

	if (l->state != BLE_RESOLVING || l->call)
		return;
	if (!d) {
		link_fail(l, "device object vanished");
		return;
	}
	if (!d->pub.services_resolved)
		return;
	link_find_chars(l, &n, &w);
	if (!n || !w)
		return;		/* GATT objects can trail ServicesResolved (bluez #1489) */
	set_str(&l->notify_path, n->path);
	set_str(&l->write_path, w->path);
	l->write_command = (w->flags & CHR_WRITE_NR) != 0;
	if (n->acquire && !l->acquire_failed)
		r = bus_call(b, &l->call, n->path, IFACE_CHAR, "AcquireNotify", on_acquire_reply, l,
			     CALL_TIMEOUT_MS, "a{sv}", 0);
	else
		r = bus_call(b, &l->call, n->path, IFACE_CHAR, "StartNotify", on_start_notify_reply, l,
			     CALL_TIMEOUT_MS, NULL);
	if (r < 0)
		link_fail(l, "cannot call BlueZ: %s", strerror(-r));
}

/* Why resolving timed out, as precisely as the cache can tell. */
static const char *link_resolve_problem(struct ble_link *l)
{
	struct bdev *d = l->dev_path ? dev_by_path(l->b, l->dev_path) : NULL;
	struct bchr *n, *w;
	bool ffe0 = false;

	if (!d || !d->pub.services_resolved)
		return "services not resolved";
	for (struct bsvc *s = l->b->services; s; s = s->next)
		ffe0 |= s->ffe0 && streq(s->device_path, l->dev_path);
	if (!ffe0)
		return "no FFE0 service (a v19 unit may need `bluetoothctl remove`)";
	link_find_chars(l, &n, &w);
	if (!n)
		return "no FFE1 characteristic that notifies";
	if (!w)
		return "no FFE1 characteristic that takes writes";
	return "subscribing took too long";
}

/* ------------------------------------------------------------ streaming */

static int on_write_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble_link *l = ud;
	sd_bus_slot *slot = sd_bus_get_current_slot(sd_bus_message_get_bus(m));
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	for (unsigned i = 0; i < BLE_MAX_WRITES; i++)
		if (l->writes[i] == slot)
			l->writes[i] = sd_bus_slot_unref(l->writes[i]);
	if (err && !l->write_err_logged) {
		log_warn("pack %s: write failed: %s", l->name, err);
		l->write_err_logged = true;
	}
	return 0;
}

static int link_write(struct ble_link *l, const uint8_t *cmd, size_t n)
{
	sd_bus_message *m = NULL;
	sd_bus_slot **slot = NULL;
	int r;

	if ((l->state != BLE_SUBSCRIBED && l->state != BLE_STREAMING) || !l->write_path || !l->b->bus)
		return -ENOTCONN;
	for (unsigned i = 0; i < BLE_MAX_WRITES && !slot; i++)
		if (!l->writes[i])
			slot = &l->writes[i];
	if (!slot)
		return -EBUSY;
	r = sd_bus_message_new_method_call(l->b->bus, &m, BLUEZ, l->write_path, IFACE_CHAR, "WriteValue");
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', cmd, n);
	if (r >= 0)
		r = sd_bus_message_append(m, "a{sv}", 1, "type", "s", l->write_command ? "command" : "request");
	if (r >= 0)
		r = sd_bus_call_async(l->b->bus, slot, m, on_write_reply, l, CALL_TIMEOUT_MS * 1000);
	sd_bus_message_unref(m);
	return r < 0 ? r : 0;
}

static void link_request(struct ble_link *l, enum jk_request req)
{
	uint8_t cmd[JK_CMD_LEN];
	int r;

	if (req == JK_REQ_CELL_INFO) {
		l->queued_96 = false;
		loop_timer_arm(&l->cmd_timer, 0, 0);
	}
	jk_cmd_request(cmd, req);
	r = link_write(l, cmd, sizeof(cmd));
	if (r < 0)
		log_debug("pack %s: request 0x%02X not sent: %s", l->name, req, strerror(-r));
}

/* 0x96 after the BMS acknowledged what was sent before, or after `ms`. */
static void link_queue_96(struct ble_link *l, uint64_t ms)
{
	l->queued_96 = true;
	l->cmd_deadline_ms = now_ms() + ms;
	loop_timer_arm(&l->cmd_timer, ms, 0);
}

static void link_subscribed(struct ble_link *l)
{
	char mtu[24] = "";

	l->connects++;
	if (l->connects > 1)
		l->reconnects++;
	if (l->via_fd) {
		if (loop_add(l->b->loop, &l->notify_src, l->notify_fd, EPOLLIN, on_notify_fd, l) < 0) {
			link_fail(l, "cannot watch the notification fd: %s", strerror(errno));
			return;
		}
		snprintf(mtu, sizeof(mtu), ", MTU %u", l->mtu);
	}
	link_set_state(l, BLE_SUBSCRIBED, "%s%s", l->via_fd ? "notify fd" : "StartNotify", mtu);
	l->last_cell_ms = now_ms();
	link_request(l, JK_REQ_DEVICE_INFO);
	link_queue_96(l, BLE_HANDSHAKE_MS);
	loop_timer_arm(&l->timer, BLE_HANDSHAKE_MS + BLE_SILENCE_MS, 0);
}

static void link_note_bad_checksums(struct ble_link *l)
{
	uint32_t bad = l->pack->stream.stats.bad_checksums;
	uint64_t now = now_ms();

	if (bad == l->bad_seen)
		return;
	l->bad_seen = bad;
	if (l->bad_logged_ms && now - l->bad_logged_ms < BAD_LOG_INTERVAL_MS)
		return;
	l->bad_logged_ms = now;
	log_warn("pack %s: %u bad checksums on the link so far (those frames are dropped)", l->name, bad);
}

static void link_bytes(struct ble_link *l, const uint8_t *p, size_t n)
{
	uint32_t frames = l->pack->stream.stats.frames;
	uint32_t ev = l->ops->on_bytes(l->ctx, p, n);
	uint64_t now = now_ms();

	link_note_bad_checksums(l);
	if (l->state != BLE_SUBSCRIBED && l->state != BLE_STREAMING)
		return;
	if (l->queued_96 && (ev & PACK_EV_ACK))
		link_request(l, JK_REQ_CELL_INFO);
	else if (l->queued_96 && l->pack->stream.stats.frames != frames &&
		 l->cmd_deadline_ms > now + BLE_ACK_GRACE_MS)
		link_queue_96(l, BLE_ACK_GRACE_MS);	/* the frame's ack should follow */
	if (!(ev & PACK_EV_CELL_INFO))
		return;
	l->last_cell_ms = now;
	loop_timer_arm(&l->timer, BLE_SILENCE_MS, 0);
	if (l->state == BLE_SUBSCRIBED) {
		l->failures = 0;
		l->cycle_considered = false;
		link_set_state(l, BLE_STREAMING, "%s", jk_protocol_name(l->pack->learned));
	}
}

static void on_notify_fd(struct loop_source *src, uint32_t events)
{
	struct ble_link *l = src->data;
	uint8_t buf[2048];
	bool drained = false;

	for (int i = 0; i < 64 && l->notify_fd >= 0; i++) {
		ssize_t n = read(l->notify_fd, buf, sizeof(buf));

		if (n > 0) {
			link_bytes(l, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			drained = true;
			break;
		}
		if (n == 0)
			link_fail(l, "notification fd closed");
		else
			link_fail(l, "notification fd: %s", strerror(errno));
		break;
	}
	if (drained && (events & (EPOLLHUP | EPOLLERR)) && l->notify_fd >= 0)
		link_fail(l, "notification fd hung up");
	ble_flush(l->b);
}

/* -------------------------------------------------------------- timers */

static void link_silence(struct ble_link *l)
{
	uint64_t silent = now_ms() - l->last_cell_ms;

	if (silent >= BLE_SILENCE_LOSS_MS) {
		link_fail(l, "no cell-info frame for %u s", (unsigned)(silent / 1000));
		return;
	}
	if (l->state == BLE_STREAMING)
		link_set_state(l, BLE_SUBSCRIBED, "no cell-info frame for %u s, asking again",
			       (unsigned)(silent / 1000));
	link_request(l, JK_REQ_CELL_INFO);
	loop_timer_arm(&l->timer, BLE_SILENCE_MS, 0);
}

static void on_link_timer(struct loop_source *src, uint32_t events)
{
	struct ble_link *l = src->data;

	loop_timer_ack(src);
	switch (l->state) {
	case BLE_IDLE:
		break;
	case BLE_DISCOVERING:
		/* Not seen for a while: a failure, for the power-cycle ladder. */
		l->failures++;
		link_consider_power_cycle(l);
		loop_timer_arm(&l->timer, DISCOVER_CHECK_MS, 0);
		break;
	case BLE_CONNECTING:
		link_fail(l, "connect timed out after %u s", CONNECT_TIMEOUT_MS / 1000);
		break;
	case BLE_RESOLVING:
		link_fail(l, "%s", link_resolve_problem(l));
		break;
	case BLE_SUBSCRIBED:
	case BLE_STREAMING:
		link_silence(l);
		break;
	case BLE_BACKOFF:
		link_try_start(l);
		ble_schedule(l->b);
		break;
	}
	ble_flush(l->b);
}

static void on_cmd_timer(struct loop_source *src, uint32_t events)
{
	struct ble_link *l = src->data;

	loop_timer_ack(src);
	if (l->queued_96 && (l->state == BLE_SUBSCRIBED || l->state == BLE_STREAMING))
		link_request(l, JK_REQ_CELL_INFO);
	ble_flush(l->b);
}

/* ------------------------------------------------------------ adapters */

static bool adapter_scanned(const struct ble *b, const struct badapter *a)
{
	return b->scan && (!*b->scan_adapter || strcmp(b->scan_adapter, a->name) == 0);
}

/* Some pack that may use the adapter is missing. */
static bool adapter_needed(const struct ble *b, const struct badapter *a)
{
	for (const struct ble_link *l = b->links; l; l = l->next)
		if ((l->state == BLE_DISCOVERING || l->state == BLE_BACKOFF) && adapter_allowed(l, a))
			return true;
	return false;
}

static void adapter_discovery_done(struct badapter *a)
{
	adapter_discovery(a->b, a);
	if (a->connecting)
		link_connect_step(a->connecting);
}

static int on_filter_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct badapter *a = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	a->disc_call = sd_bus_slot_unref(a->disc_call);
	/* The filter only narrows what BlueZ reports: discover without it. */
	if (err)
		log_debug("adapter %s: SetDiscoveryFilter: %s", a->name, err);
	a->filter = a->filter_want;
	adapter_discovery_done(a);
	return 0;
}

static int on_start_discovery_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct badapter *a = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	a->disc_call = sd_bus_slot_unref(a->disc_call);
	if (err && !reply_error_is(m, "org.bluez.Error.InProgress")) {
		log_warn("adapter %s: discovery not started: %s", a->name, err);
		a->disc_retry_ms = now_ms() + DISCOVERY_RETRY_MS;
	} else {
		a->disc_on = true;
		service_log(a->disc_announced ? LOG_DEBUG : LOG_INFO, "adapter %s: discovering", a->name);
		a->disc_announced = true;
	}
	adapter_discovery_done(a);
	return 0;
}

static int on_stop_discovery_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct badapter *a = ud;

	a->disc_call = sd_bus_slot_unref(a->disc_call);
	a->disc_on = false;
	if (a->connecting)
		log_debug("adapter %s: discovery paused for a connect", a->name);
	adapter_discovery_done(a);
	return 0;
}

/* Discovery on exactly while some pack that may use the adapter is
 * missing (or a scan wants it), and off while a Connect is in flight. */
static void adapter_discovery(struct ble *b, struct badapter *a)
{
	int filter = adapter_scanned(b, a) ? FILTER_SCAN : FILTER_PACKS;
	bool want = adapter_usable(a) && !a->connecting && (adapter_scanned(b, a) || adapter_needed(b, a));
	int r = 0;

	if (a->disc_call || !b->bus || b->state != BUS_READY)
		return;
	if (!want && !a->disc_on && !a->connecting && a->disc_announced && adapter_usable(a) &&
	    !adapter_needed(b, a)) {
		log_info("adapter %s: discovery off, no pack missing", a->name);
		a->disc_announced = false;
	}
	if (want && !a->disc_on) {
		if (now_ms() < a->disc_retry_ms)
			return;
		a->filter_want = filter;
		if (a->filter != filter && filter == FILTER_SCAN)
			r = bus_call(b, &a->disc_call, a->path, IFACE_ADAPTER, "SetDiscoveryFilter",
				     on_filter_reply, a, CALL_TIMEOUT_MS, "a{sv}", 1, "Transport", "s", "le");
		else if (a->filter != filter)
			r = bus_call(b, &a->disc_call, a->path, IFACE_ADAPTER, "SetDiscoveryFilter",
				     on_filter_reply, a, CALL_TIMEOUT_MS, "a{sv}", 2, "Transport", "s", "le",
				     "UUIDs", "as", 1, UUID_FFE0);
		else
			r = bus_call(b, &a->disc_call, a->path, IFACE_ADAPTER, "StartDiscovery",
				     on_start_discovery_reply, a, CALL_TIMEOUT_MS, NULL);
	} else if (!want && a->disc_on) {
		r = bus_call(b, &a->disc_call, a->path, IFACE_ADAPTER, "StopDiscovery",
			     on_stop_discovery_reply, a, CALL_TIMEOUT_MS, NULL);
		if (r < 0)
			a->disc_on = false;
	}
	if (r < 0) {
		log_debug("adapter %s: discovery call not sent: %s", a->name, strerror(-r));
		a->disc_retry_ms = now_ms() + DISCOVERY_RETRY_MS;
	}
}

static void adapter_set_powered(struct badapter *a, bool on);

static int on_power_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct badapter *a = ud;
	char buf[256];
	const char *err = reply_error(m, buf, sizeof(buf));

	a->power_call = sd_bus_slot_unref(a->power_call);
	if (err) {
		log_warn("adapter %s: power-cycle failed: %s", a->name, err);
		a->cycling = 0;
	} else if (a->cycling == 1) {
		a->cycling = 2;
		adapter_set_powered(a, true);
		return 0;
	} else {
		a->cycling = 0;
		log_notice("adapter %s: power-cycle done", a->name);
		/* The reset is the cure being tried: retry soon, not after the long delay. */
		for (struct ble_link *l = a->b->links; l; l = l->next)
			if (l->state == BLE_BACKOFF && adapter_allowed(l, a))
				loop_timer_arm(&l->timer, BLE_BACKOFF_MIN_MS, 0);
	}
	ble_schedule(a->b);
	return 0;
}

static void adapter_set_powered(struct badapter *a, bool on)
{
	int r = bus_call(a->b, &a->power_call, a->path, IFACE_PROPS, "Set", on_power_reply, a,
			 CALL_TIMEOUT_MS, "ssv", IFACE_ADAPTER, "Powered", "b", (int)on);

	if (r < 0) {
		log_warn("adapter %s: cannot power-cycle: %s", a->name, strerror(-r));
		a->cycling = 0;
	}
}

static void adapter_power_cycle(struct ble *b, struct badapter *a, struct ble_link *why)
{
	log_warn("adapter %s: power-cycling it, pack %s failed %u times in a row", a->name, why->name,
		 why->failures);
	a->cycling = 1;
	a->disc_on = false;	/* powering off ends every discovery session */
	a->filter = FILTER_NONE;
	adapter_set_powered(a, false);
}

/* Links attached to the adapter lose it; nothing may pick it meanwhile. */
static void adapter_remove(struct ble *b, struct badapter *a)
{
	log_warn("adapter %s: removed", a->name);
	a->powered = false;
	for (struct ble_link *l = b->links; l; l = l->next) {
		if (l->adapter != a)
			continue;
		if (l->state == BLE_CONNECTING || link_connected_state(l))
			link_fail(l, "adapter %s removed", a->name);
		l->adapter = NULL;
	}
	adapter_free(a);
}

/* -------------------------------------------------------- object events */

static int object_add(struct ble *b, sd_bus_message *m)
{
	const char *path, *iface;
	int r = sd_bus_message_read_basic(m, 'o', &path);

	if (r < 0 || (r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		if ((r = sd_bus_message_read_basic(m, 's', &iface)) < 0)
			return r;
		if (strcmp(iface, IFACE_ADAPTER) == 0)
			r = props_each(b, m, adapter_prop, adapter_get(b, path));
		else if (strcmp(iface, IFACE_DEVICE) == 0)
			r = props_each(b, m, dev_prop, dev_get(b, path));
		else if (strcmp(iface, IFACE_SERVICE) == 0)
			r = props_each(b, m, svc_prop, svc_get(b, path, true));
		else if (strcmp(iface, IFACE_CHAR) == 0)
			r = props_each(b, m, chr_prop, chr_get(b, path, true));
		else
			r = sd_bus_message_skip(m, "a{sv}");
		if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* Something in the cache changed: resolving links look again, idle ones
 * may start, discovery follows. */
static void ble_changed(struct ble *b)
{
	for (struct ble_link *l = b->links; l; l = l->next)
		if (l->state == BLE_RESOLVING)
			link_resolve(l);
	ble_schedule(b);
}

static void device_remove(struct ble *b, const char *path)
{
	struct bdev **pp = &b->devices;

	while (*pp && !streq((*pp)->path, path))
		pp = &(*pp)->next;
	if (*pp) {
		struct bdev *d = *pp;

		*pp = d->next;
		dev_free(d);
	}
	for (struct ble_link *l = b->links; l; l = l->next)
		if (streq(l->dev_path, path) && (l->state == BLE_CONNECTING || link_connected_state(l)))
			link_fail(l, "BlueZ removed the device");
}

static void service_remove(struct ble *b, const char *path)
{
	for (struct bsvc **pp = &b->services; *pp; pp = &(*pp)->next)
		if (streq((*pp)->path, path)) {
			struct bsvc *s = *pp;

			*pp = s->next;
			svc_free(s);
			return;
		}
}

static void char_remove(struct ble *b, const char *path)
{
	for (struct bchr **pp = &b->chars; *pp; pp = &(*pp)->next)
		if (streq((*pp)->path, path)) {
			struct bchr *c = *pp;

			*pp = c->next;
			chr_free(c);
			break;
		}
	for (struct ble_link *l = b->links; l; l = l->next)
		if ((streq(l->notify_path, path) || streq(l->write_path, path)) && link_connected_state(l))
			link_fail(l, "characteristic removed");
}

static int on_interfaces_added(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;
	int r;

	if (b->state != BUS_READY)
		return 0;	/* the GetManagedObjects reply will have it */
	r = object_add(b, m);
	if (r < 0)
		log_debug("bluez: unreadable InterfacesAdded: %s", strerror(-r));
	ble_changed(b);
	return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;
	const char *path, *iface;
	struct badapter *a;
	char *copy;
	int r;

	if (b->state != BUS_READY || sd_bus_message_read_basic(m, 'o', &path) < 0 ||
	    sd_bus_message_enter_container(m, 'a', "s") < 0)
		return 0;
	if (!(copy = strdup(path)))
		return 0;
	while ((r = sd_bus_message_read_basic(m, 's', &iface)) > 0) {
		if (strcmp(iface, IFACE_ADAPTER) == 0 && (a = adapter_by_path(b, copy)))
			adapter_remove(b, a);
		else if (strcmp(iface, IFACE_DEVICE) == 0)
			device_remove(b, copy);
		else if (strcmp(iface, IFACE_SERVICE) == 0)
			service_remove(b, copy);
		else if (strcmp(iface, IFACE_CHAR) == 0)
			char_remove(b, copy);
	}
	free(copy);
	ble_changed(b);
	return 0;
}

struct chr_change {
	struct bchr *c;
	const void *value;
	size_t len;
	bool have_value;
};

static int chr_change_prop(struct ble *b, void *obj, const char *name, sd_bus_message *m)
{
	struct chr_change *cc = obj;
	int r;

	if (strcmp(name, "Value") != 0)
		return cc->c ? chr_prop(b, cc->c, name, m) : sd_bus_message_skip(m, "v");
	r = sd_bus_message_enter_container(m, 'v', "ay");
	if (r == -ENXIO)
		return sd_bus_message_skip(m, "v");
	if (r < 0 || (r = sd_bus_message_read_array(m, 'y', &cc->value, &cc->len)) < 0)
		return r;
	cc->have_value = true;
	return sd_bus_message_exit_container(m);
}

/* Notifications without an fd arrive as Value changes. */
static void chr_changed(struct ble *b, const char *path, sd_bus_message *m)
{
	struct chr_change cc = { .c = chr_get(b, path, false) };

	if (props_each(b, m, chr_change_prop, &cc) < 0 || !cc.have_value)
		return;
	for (struct ble_link *l = b->links; l; l = l->next)
		if (!l->via_fd && streq(l->notify_path, path) && cc.len > 0)
			link_bytes(l, cc.value, cc.len);
}

static void dev_changed(struct ble *b, const char *path, sd_bus_message *m)
{
	struct bdev *d = dev_by_path(b, path);
	bool was_connected;
	const char *inval;

	if (!d)
		return;
	was_connected = d->pub.connected;
	if (props_each(b, m, dev_prop, d) < 0)
		return;
	if (sd_bus_message_enter_container(m, 'a', "s") > 0) {
		while (sd_bus_message_read_basic(m, 's', &inval) > 0)
			if (strcmp(inval, "RSSI") == 0)
				d->pub.have_rssi = false;
		sd_bus_message_exit_container(m);
	}
	for (struct ble_link *l = b->links; l; l = l->next)
		if (streq(l->dev_path, path) && link_connected_state(l) && was_connected && !d->pub.connected)
			link_fail(l, "disconnected");
	ble_changed(b);
}

static void adapter_changed(struct ble *b, const char *path, sd_bus_message *m)
{
	struct badapter *a = adapter_by_path(b, path);
	bool was_powered;

	if (!a)
		return;
	was_powered = a->powered;
	if (props_each(b, m, adapter_prop, a) < 0 || was_powered == a->powered)
		return;
	if (!a->powered) {
		a->disc_on = false;
		a->filter = FILTER_NONE;
		if (!a->cycling)
			log_warn("adapter %s: powered off", a->name);
		for (struct ble_link *l = b->links; l; l = l->next)
			if (l->adapter == a && (l->state == BLE_CONNECTING || link_connected_state(l)))
				link_fail(l, "adapter %s powered off", a->name);
	} else if (!a->cycling) {
		log_info("adapter %s: powered on", a->name);
	}
	ble_schedule(b);
}

static int on_properties_changed(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;
	const char *path = sd_bus_message_get_path(m), *iface;

	if (b->state != BUS_READY || !path || sd_bus_message_read_basic(m, 's', &iface) < 0)
		return 0;
	if (strcmp(iface, IFACE_CHAR) == 0)
		chr_changed(b, path, m);
	else if (strcmp(iface, IFACE_DEVICE) == 0)
		dev_changed(b, path, m);
	else if (strcmp(iface, IFACE_ADAPTER) == 0)
		adapter_changed(b, path, m);
	return 0;
}

/* ---------------------------------------------------- BlueZ on the bus */

static void bluez_gone(struct ble *b, enum bus_state next, const char *why)
{
	b->state = next;
	b->objects_call = sd_bus_slot_unref(b->objects_call);
	cache_clear(b);
	for (struct ble_link *l = b->links; l; l = l->next)
		if (l->state == BLE_CONNECTING || link_connected_state(l))
			link_fail(l, "%s", why);
	ble_schedule(b);
}

static int on_objects_reply(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;
	char buf[256], names[128] = "";
	const char *err = reply_error(m, buf, sizeof(buf));
	unsigned n = 0;
	int r;

	b->objects_call = sd_bus_slot_unref(b->objects_call);
	b->objects_retry_at = now_ms() + OBJECTS_RETRY_MS;
	if (err) {
		if (!reply_error_is(m, SD_BUS_ERROR_SERVICE_UNKNOWN) &&
		    !reply_error_is(m, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
			log_warn("bluez: GetManagedObjects failed: %s; retrying", err);
		else if (!b->missing_logged)
			log_warn("bluez: org.bluez is not on the system bus; waiting for it");
		b->missing_logged = true;
		return 0;
	}
	cache_clear(b);
	r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0)
		if ((r = object_add(b, m)) >= 0)
			r = sd_bus_message_exit_container(m);
	if (r < 0) {
		log_warn("bluez: unreadable object list: %s; retrying", strerror(-r));
		cache_clear(b);
		return 0;
	}
	b->state = BUS_READY;
	b->missing_logged = false;
	for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
		if (b->adapters[i].used)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s%s",
				 n++ ? ", " : "", b->adapters[i].name, b->adapters[i].powered ? "" : " (off)");
	log_info("bluez: ready, %s", n ? names : "no adapter yet");
	ble_changed(b);
	return 0;
}

static void load_objects(struct ble *b)
{
	int r;

	b->objects_call = sd_bus_slot_unref(b->objects_call);
	b->objects_retry_at = now_ms() + OBJECTS_RETRY_MS;
	r = bus_call(b, &b->objects_call, "/", IFACE_OM, "GetManagedObjects", on_objects_reply, b,
		     CALL_TIMEOUT_MS, NULL);
	if (r < 0)
		log_debug("bluez: GetManagedObjects not sent: %s", strerror(-r));
}

static int on_name_owner_changed(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct ble *b = ud;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || strcmp(name, BLUEZ) != 0)
		return 0;
	if (*old_owner && b->state == BUS_READY) {
		log_warn("bluez: org.bluez left the system bus");
		bluez_gone(b, BUS_WAITING, "BlueZ left the bus");
	}
	if (*new_owner) {
		log_info("bluez: org.bluez is on the system bus");
		load_objects(b);
	}
	return 0;
}

/* ------------------------------------------------------------ the bus */

static void bus_close(struct ble *b, bool flush)
{
	for (unsigned i = 0; i < sizeof(b->matches) / sizeof(b->matches[0]); i++)
		b->matches[i] = sd_bus_slot_unref(b->matches[i]);
	b->objects_call = sd_bus_slot_unref(b->objects_call);
	loop_remove(&b->bus_src);
	loop_timer_arm(&b->bus_timer, 0, 0);
	if (b->bus && flush)
		sd_bus_flush(b->bus);
	b->bus = sd_bus_close_unref(b->bus);
	b->disconnects = 0;
}

static void bus_lost(struct ble *b, int r)
{
	log_warn("bluez: system bus connection lost (%s); reconnecting", strerror(-r));
	bluez_gone(b, BUS_DOWN, "system bus lost");
	bus_close(b, false);
	b->bus_retry_at = now_ms() + b->bus_retry_ms;
}

static void bus_process(struct ble *b)
{
	int r = 0;

	if (!b->bus || b->in_process)
		return;
	b->in_process = true;
	for (int i = 0; i < PROCESS_BURST && (r = sd_bus_process(b->bus, NULL)) > 0; i++)
		;
	b->in_process = false;
	if (r < 0) {
		bus_lost(b, r);
		return;
	}
	ble_flush(b);
}

/* Re-arm the bus fd's events and its timeout after anything was queued. */
static void ble_flush(struct ble *b)
{
	struct timespec ts;
	uint64_t usec, now_us;
	uint32_t ev;
	int r;

	if (!b->bus || b->in_process)
		return;
	r = sd_bus_get_events(b->bus);
	if (r < 0) {
		bus_lost(b, r);
		return;
	}
	ev = ((r & POLLIN) ? EPOLLIN : 0) | ((r & POLLOUT) ? EPOLLOUT : 0);
	if (ev != b->bus_events && loop_modify(&b->bus_src, ev) == 0)
		b->bus_events = ev;
	if (sd_bus_get_timeout(b->bus, &usec) < 0 || usec == UINT64_MAX) {
		loop_timer_arm(&b->bus_timer, 0, 0);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	loop_timer_arm(&b->bus_timer, usec > now_us ? (usec - now_us + 999) / 1000 : 1, 0);
}

static void on_bus_io(struct loop_source *src, uint32_t events)
{
	bus_process(src->data);
}

static void on_bus_timer(struct loop_source *src, uint32_t events)
{
	loop_timer_ack(src);
	bus_process(src->data);
}

static int bus_setup(struct ble *b)
{
	static const char *const rules[] = {
		"type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',"
		"member='InterfacesAdded'",
		"type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',"
		"member='InterfacesRemoved'",
		"type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
		"member='PropertiesChanged'",
		"type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
		"interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
	};
	static const sd_bus_message_handler_t handlers[] = {
		on_interfaces_added, on_interfaces_removed, on_properties_changed, on_name_owner_changed,
	};
	int fd = sd_bus_get_fd(b->bus), r;

	if (fd < 0)
		return fd;
	if ((r = loop_add(b->loop, &b->bus_src, fd, EPOLLIN, on_bus_io, b)) < 0)
		return r;
	b->bus_events = EPOLLIN;
	for (unsigned i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((r = sd_bus_add_match_async(b->bus, &b->matches[i], rules[i], handlers[i], NULL, b)) < 0)
			return r;
	return 0;
}

static void bus_open(struct ble *b)
{
	int r = sd_bus_open_system(&b->bus);

	if (r >= 0)
		r = bus_setup(b);
	if (r < 0) {
		if (!b->down_logged)
			log_warn("bluez: system bus unreachable (%s); retrying", strerror(-r));
		b->down_logged = true;
		bus_close(b, false);
		b->state = BUS_DOWN;
		b->bus_retry_at = now_ms() + b->bus_retry_ms;
		b->bus_retry_ms = b->bus_retry_ms * 2 > BUS_RETRY_MAX_MS ? BUS_RETRY_MAX_MS : b->bus_retry_ms * 2;
		return;
	}
	b->down_logged = false;
	b->bus_retry_ms = BUS_RETRY_MIN_MS;
	b->state = BUS_WAITING;
	load_objects(b);
}

static void on_tick(struct loop_source *src, uint32_t events)
{
	struct ble *b = src->data;
	uint64_t now = now_ms();

	loop_timer_ack(src);
	if (b->state == BUS_DOWN && now >= b->bus_retry_at)
		bus_open(b);
	else if (b->state == BUS_WAITING && !b->objects_call && now >= b->objects_retry_at)
		load_objects(b);
	ble_schedule(b);
	ble_flush(b);
}

/* Idle and discovering links try to start; discovery follows the need. */
static void ble_schedule(struct ble *b)
{
	if (b->closing)
		return;
	if (b->scheduling) {
		b->reschedule = true;
		return;
	}
	b->scheduling = true;
	do {
		b->reschedule = false;
		for (struct ble_link *l = b->links; l; l = l->next)
			if (l->state == BLE_IDLE || l->state == BLE_DISCOVERING)
				link_try_start(l);
		for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
			if (b->adapters[i].used)
				adapter_discovery(b, &b->adapters[i]);
	} while (b->reschedule);
	b->scheduling = false;
}

/* ---------------------------------------------------------- public API */

struct ble *ble_open(struct loop *loop)
{
	struct ble *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->loop = loop;
	b->rng = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)now_ms() ^ 1u;
	b->bus_retry_ms = BUS_RETRY_MIN_MS;
	b->bus_src.fd = -1;
	b->bus_timer.fd = b->tick.fd = -1;	/* a failed add below must not close fd 0 */
	if (loop_timer_add(loop, &b->bus_timer, on_bus_timer, b) < 0 ||
	    loop_timer_add(loop, &b->tick, on_tick, b) < 0 || loop_timer_arm(&b->tick, TICK_MS, TICK_MS) < 0) {
		loop_timer_del(&b->bus_timer);
		loop_timer_del(&b->tick);
		free(b);
		return NULL;
	}
	bus_open(b);
	ble_flush(b);
	return b;
}

/* Blocking, once, at the end: the loop no longer runs. */
static void ble_drain_disconnects(struct ble *b)
{
	uint64_t deadline = now_ms() + CLOSE_WAIT_MS;
	int r = 0;

	while (b->bus && b->disconnects > 0 && r >= 0 && now_ms() < deadline) {
		r = sd_bus_process(b->bus, NULL);
		if (r == 0)
			r = sd_bus_wait(b->bus, (deadline - now_ms()) * 1000);
	}
}

void ble_close(struct ble *b)
{
	if (!b)
		return;
	b->closing = true;
	while (b->links)
		ble_link_free(b->links);
	ble_drain_disconnects(b);
	cache_clear(b);
	bus_close(b, true);
	loop_timer_del(&b->bus_timer);
	loop_timer_del(&b->tick);
	free(b);
}

bool ble_ready(const struct ble *b)
{
	return b && b->state == BUS_READY;
}

unsigned ble_adapters(const struct ble *b, const char **names, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < BLE_MAX_ADAPTERS; i++)
		if (b->adapters[i].used) {
			if (n < max)
				names[n] = b->adapters[i].name;
			n++;
		}
	return n;
}

struct ble_link *ble_link_new(struct ble *b, const struct ble_link_config *cfg)
{
	struct ble_link *l = calloc(1, sizeof(*l)), **tail;

	if (!l)
		return NULL;
	l->b = b;
	copy_str(l->name, sizeof(l->name), cfg->name);
	copy_str(l->address, sizeof(l->address), cfg->address);
	copy_str(l->adapter_name, sizeof(l->adapter_name), cfg->adapter);
	l->pack = cfg->pack;
	l->ops = cfg->ops;
	l->ctx = cfg->ctx;
	l->state = BLE_IDLE;
	l->since_ms = now_ms();
	l->notify_fd = -1;
	l->notify_src.fd = -1;
	l->timer.fd = l->cmd_timer.fd = -1;	/* a failed add below must not close fd 0 */
	if (loop_timer_add(b->loop, &l->timer, on_link_timer, l) < 0 ||
	    loop_timer_add(b->loop, &l->cmd_timer, on_cmd_timer, l) < 0) {
		loop_timer_del(&l->timer);
		loop_timer_del(&l->cmd_timer);
		free(l);
		return NULL;
	}
	for (tail = &b->links; *tail; tail = &(*tail)->next)
		;
	*tail = l;
	ble_schedule(b);
	ble_flush(b);
	return l;
}

void ble_link_free(struct ble_link *l)
{
	struct ble *b;

	if (!l)
		return;
	b = l->b;
	link_teardown(l, true);
	for (struct ble_link **pp = &b->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	loop_timer_del(&l->timer);
	loop_timer_del(&l->cmd_timer);
	free(l);
	ble_schedule(b);
	ble_flush(b);
}

enum ble_state ble_link_state(const struct ble_link *l)
{
	return l->state;
}

void ble_link_stats(const struct ble_link *l, struct ble_link_stats *out)
{
	const struct bdev *d = NULL;

	memset(out, 0, sizeof(*out));
	for (const struct bdev *x = l->b->devices; x && !d; x = x->next)
		if (strcasecmp(x->pub.address, l->address) == 0 &&
		    (!*l->last_adapter || strcmp(x->pub.adapter, l->last_adapter) == 0))
			d = x;
	out->state = l->state;
	out->state_since_ms = l->since_ms;
	copy_str(out->adapter, sizeof(out->adapter), l->last_adapter);
	if (d && d->pub.have_rssi) {
		out->have_rssi = true;
		out->rssi = d->pub.rssi;
	}
	out->notify_fd = l->via_fd;
	out->connects = l->connects;
	out->reconnects = l->reconnects;
	out->failures = l->failures;
	out->power_cycles = l->power_cycles;
	out->frames = l->pack->stream.stats.frames;
	out->bad_checksums = l->pack->stream.stats.bad_checksums;
}

int ble_link_write(struct ble_link *l, const uint8_t *cmd, size_t n)
{
	int r = link_write(l, cmd, n);

	ble_flush(l->b);
	return r;
}

int ble_link_switch(struct ble_link *l, enum jk_switch sw, bool on)
{
	static const char *const names[] = {
		[JK_SWITCH_CHARGING] = "charging",
		[JK_SWITCH_DISCHARGING] = "discharging",
		[JK_SWITCH_BALANCER] = "balancer",
	};
	uint8_t cmd[JK_CMD_LEN];
	int r = jk_cmd_switch(cmd, l->pack->learned, sw, on);

	if (r < 0)
		return r;
	if ((r = link_write(l, cmd, sizeof(cmd))) < 0)
		return r;
	log_notice("pack %s: %s switch set %s", l->name, names[sw], on ? "on" : "off");
	/* Switch states live in the settings frame: ask for it once acked. */
	link_queue_96(l, BLE_HANDSHAKE_MS);
	ble_flush(l->b);
	return 0;
}

void ble_scan(struct ble *b, const char *adapter, bool on)
{
	b->scan = on;
	copy_str(b->scan_adapter, sizeof(b->scan_adapter), adapter);
	ble_schedule(b);
	ble_flush(b);
}

void ble_foreach_device(const struct ble *b, void (*fn)(void *ctx, const struct ble_device *d), void *ctx)
{
	for (const struct bdev *d = b->devices; d; d = d->next)
		fn(ctx, &d->pub);
}

unsigned ble_device_match(const struct ble_device *d)
{
	unsigned m = 0;

	if (d->service_ffe0)
		m |= BLE_MATCH_SERVICE;
	for (unsigned i = 0; i < d->n_manufacturer; i++)
		if (d->manufacturer[i] == 0x0B65 || d->manufacturer[i] == 0x4B4A)
			m |= BLE_MATCH_MANUFACTURER;
	if (strncmp(d->name, "JK-", 3) == 0 || strncmp(d->name, "JK_", 3) == 0)
		m |= BLE_MATCH_NAME;
	return m;
}
