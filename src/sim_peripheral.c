/*
 * sim_peripheral — one simulated JK-BMS as a BLE peripheral of the REAL
 * bluetoothd (see include/sim_peripheral.h).
 *
 * bluetoothd is the GATT server: it calls WriteValue on our FFE1 for every
 * write of the central (the bytes go to sim_battery_write()), StartNotify
 * when the central enables notifications and StopNotify when it disables
 * them or goes away; each notification is a PropertiesChanged on Value,
 * which bluetoothd forwards to the subscribed centrals (cut to MTU - 3, so
 * the chunks are kept at most that long here: 20 bytes until a WriteValue
 * tells the MTU, then min(MTU, the pack's mtu) - 3).
 *
 * One thread: sd_bus_wait() with the time to the next streamed frame as
 * the timeout, then sd_bus_process() until idle.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "sim_peripheral.h"

#define BLUEZ "org.bluez"
#define APP_PATH "/com/jkbridged/sim"
#define SERVICE_PATH APP_PATH "/service0"
#define CHAR_PATH SERVICE_PATH "/char0"
#define ADV_PATH "/com/jkbridged/adv0"
#define IFACE_SERVICE "org.bluez.GattService1"
#define IFACE_CHAR "org.bluez.GattCharacteristic1"
#define IFACE_ADV "org.bluez.LEAdvertisement1"
#define UUID_FFE0 "0000ffe0-0000-1000-8000-00805f9b34fb"
#define UUID_FFE1 "0000ffe1-0000-1000-8000-00805f9b34fb"
#define JK_MANUFACTURER 0x0B65

struct periph {
	sd_bus *bus;
	const struct sim_pack_config *cfg;
	struct sim_battery bat;
	char adapter_path[32];
	uint8_t mac[6];
	bool notifying;
	uint16_t mtu;			/* the ATT MTU, when a WriteValue told it */
	uint8_t value[SIM_NOTIFY_MAX];	/* the last notification: Value */
	uint16_t value_len;
	unsigned long notifications, writes;
	int registered;			/* replies to the two Register* calls, good ones */
	int failed;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("jkbms sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------- the link */

static uint16_t link_mtu(const struct periph *p)
{
	uint16_t m = p->mtu ? p->mtu : 23;

	return m < p->cfg->mtu ? m : p->cfg->mtu;
}

static void link_up(struct periph *p, const char *why)
{
	sim_battery_link_up(&p->bat, link_mtu(p), 0, now_ms());
	say("link up (%s), notifications of at most %u bytes", why, p->bat.payload_max);
}

/* Send what the BMS queued, one PropertiesChanged per notification. */
static void flush(struct periph *p)
{
	struct sim_notification n;

	while (sim_battery_pop(&p->bat, &n)) {
		if (!p->notifying)
			continue;
		memcpy(p->value, n.data, n.len);
		p->value_len = n.len;
		int r = sd_bus_emit_properties_changed(p->bus, CHAR_PATH, IFACE_CHAR, "Value", NULL);
		if (r < 0)
			say("PropertiesChanged failed: %s", strerror(-r));
		else
			p->notifications++;
	}
}

/* -------------------------------------------------- GattCharacteristic1 */

static int prop_value(sd_bus *bus, const char *path, const char *iface, const char *prop,
		      sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;

	return sd_bus_message_append_array(reply, 'y', p->value, p->value_len);
}

static int prop_notifying(sd_bus *bus, const char *path, const char *iface, const char *prop,
			  sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;

	return sd_bus_message_append(reply, "b", (int)p->notifying);
}

static int prop_flags(sd_bus *bus, const char *path, const char *iface, const char *prop,
		      sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "as", 3, "write-without-response", "write", "notify");
}

static int prop_service_uuid(sd_bus *bus, const char *path, const char *iface, const char *prop,
			     sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "s", UUID_FFE0);
}

static int prop_char_uuid(sd_bus *bus, const char *path, const char *iface, const char *prop,
			  sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "s", UUID_FFE1);
}

static int prop_service_path(sd_bus *bus, const char *path, const char *iface, const char *prop,
			     sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "o", SERVICE_PATH);
}

static int prop_true(sd_bus *bus, const char *path, const char *iface, const char *prop,
		     sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "b", 1);
}

/* The options dictionary of ReadValue/WriteValue: the MTU when given. */
static int read_options(sd_bus_message *m, uint16_t *mtu)
{
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			return r;
		if (strcmp(key, "mtu") == 0)
			r = sd_bus_message_read(m, "v", "q", mtu);
		else
			r = sd_bus_message_skip(m, "v");
		if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int m_read_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;
	sd_bus_message *reply = NULL;
	int r;

	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 &&
	    (r = sd_bus_message_append_array(reply, 'y', p->value, p->value_len)) >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	sd_bus_message_unref(reply);
	return r;
}

static int m_write_value(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;
	struct sim_command cmds[4];
	const void *data;
	size_t len;
	uint16_t mtu = 0;
	unsigned n;
	int r;

	if ((r = sd_bus_message_read_array(m, 'y', &data, &len)) < 0 || (r = read_options(m, &mtu)) < 0)
		return sd_bus_error_set(err, "org.bluez.Error.InvalidArguments", "bad WriteValue arguments");
	if (mtu && mtu != p->mtu) {
		p->mtu = mtu;
		if (p->bat.linked) {	/* the MTU is known now: longer notifications */
			uint16_t m2 = link_mtu(p);

			p->bat.payload_max = m2 - 3 > SIM_NOTIFY_MAX ? SIM_NOTIFY_MAX : (uint16_t)(m2 - 3);
			say("ATT MTU %u: notifications of at most %u bytes", mtu, p->bat.payload_max);
		}
	}
	if (!p->bat.linked)
		link_up(p, "write");
	p->writes++;
	n = sim_battery_write(&p->bat, data, len, now_ms(), cmds, 4);
	for (unsigned i = 0; i < n && i < 4; i++) {
		char what[64];

		sim_command_describe(&cmds[i], what, sizeof(what));
		say("command %s", what);
	}
	r = sd_bus_reply_method_return(m, NULL);
	flush(p);
	return r;
}

static int m_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;
	int r;

	if (!p->bat.linked)
		link_up(p, "StartNotify");
	if (!p->notifying) {
		p->notifying = true;
		say("notifications on");
		sd_bus_emit_properties_changed(p->bus, CHAR_PATH, IFACE_CHAR, "Notifying", NULL);
	}
	r = sd_bus_reply_method_return(m, NULL);
	flush(p);
	return r;
}

static int m_stop_notify(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;

	if (p->notifying) {
		p->notifying = false;
		say("notifications off: link down (%lu writes, %lu notifications)", p->writes, p->notifications);
		sd_bus_emit_properties_changed(p->bus, CHAR_PATH, IFACE_CHAR, "Notifying", NULL);
	}
	sim_battery_link_down(&p->bat);
	p->mtu = 0;
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable char_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("UUID", "s", prop_char_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Service", "o", prop_service_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Flags", "as", prop_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Value", "ay", prop_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Notifying", "b", prop_notifying, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_METHOD("ReadValue", "a{sv}", "ay", m_read_value, 0),
	SD_BUS_METHOD("WriteValue", "aya{sv}", "", m_write_value, 0),
	SD_BUS_METHOD("StartNotify", "", "", m_start_notify, 0),
	SD_BUS_METHOD("StopNotify", "", "", m_stop_notify, 0),
	SD_BUS_VTABLE_END,
};

static const sd_bus_vtable service_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("UUID", "s", prop_service_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Primary", "b", prop_true, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_VTABLE_END,
};

/* ------------------------------------------------------ LEAdvertisement1 */

static int prop_adv_type(sd_bus *bus, const char *path, const char *iface, const char *prop,
			 sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "s", "peripheral");
}

static int prop_adv_uuids(sd_bus *bus, const char *path, const char *iface, const char *prop,
			  sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	return sd_bus_message_append(reply, "as", 1, UUID_FFE0);
}

static int prop_adv_name(sd_bus *bus, const char *path, const char *iface, const char *prop,
			 sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;

	return sd_bus_message_append(reply, "s", p->cfg->battery.name);
}

/* {0x0B65: 88 A0 + the MAC}, as the JK modules advertise (jkbms-ble.md §1.1). */
static int prop_adv_manufacturer(sd_bus *bus, const char *path, const char *iface, const char *prop,
				 sd_bus_message *reply, void *userdata, sd_bus_error *err)
{
	struct periph *p = userdata;
	uint8_t data[8] = { 0x88, 0xA0 };
	int r;

	memcpy(data + 2, p->mac, 6);
	if ((r = sd_bus_message_open_container(reply, 'a', "{qv}")) < 0 ||
	    (r = sd_bus_message_open_container(reply, 'e', "qv")) < 0 ||
	    (r = sd_bus_message_append(reply, "q", (uint16_t)JK_MANUFACTURER)) < 0 ||
	    (r = sd_bus_message_open_container(reply, 'v', "ay")) < 0 ||
	    (r = sd_bus_message_append_array(reply, 'y', data, sizeof(data))) < 0 ||
	    (r = sd_bus_message_close_container(reply)) < 0 || (r = sd_bus_message_close_container(reply)) < 0)
		return r;
	return sd_bus_message_close_container(reply);
}

static int m_release(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	say("advertisement released by bluetoothd");
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable adv_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Type", "s", prop_adv_type, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("ServiceUUIDs", "as", prop_adv_uuids, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("LocalName", "s", prop_adv_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("ManufacturerData", "a{qv}", prop_adv_manufacturer, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Discoverable", "b", prop_true, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_METHOD("Release", "", "", m_release, 0),
	SD_BUS_VTABLE_END,
};

/* ------------------------------------------------------- registration */

static int on_registered(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct periph *p = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	if (e) {
		say("registration refused: %s: %s", e->name, e->message ? e->message : "");
		p->failed++;
	} else {
		p->registered++;
	}
	return 0;
}

static int bus_connect(sd_bus **bus, const char *address)
{
	int r;

	if (!address)
		return sd_bus_open_system(bus);
	if ((r = sd_bus_new(bus)) < 0)
		return r;
	if ((r = sd_bus_set_address(*bus, address)) >= 0 && (r = sd_bus_set_bus_client(*bus, 1)) >= 0)
		r = sd_bus_start(*bus);
	if (r < 0)
		*bus = sd_bus_unref(*bus);
	return r;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int serve(struct periph *p, const char *adapter)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	char *address = NULL;
	int r;

	snprintf(p->adapter_path, sizeof(p->adapter_path), "/org/bluez/%s", adapter);
	r = sd_bus_get_property_string(p->bus, BLUEZ, p->adapter_path, "org.bluez.Adapter1", "Address", &err,
				       &address);
	if (r < 0 || parse_mac(address, p->mac) < 0) {
		say("%s: no such adapter: %s", adapter, err.message ? err.message : strerror(-r));
		sd_bus_error_free(&err);
		free(address);
		return 1;
	}
	if ((r = sd_bus_add_object_manager(p->bus, NULL, APP_PATH)) < 0 ||
	    (r = sd_bus_add_object_vtable(p->bus, NULL, SERVICE_PATH, IFACE_SERVICE, service_vtable, p)) < 0 ||
	    (r = sd_bus_add_object_vtable(p->bus, NULL, CHAR_PATH, IFACE_CHAR, char_vtable, p)) < 0 ||
	    (r = sd_bus_add_object_vtable(p->bus, NULL, ADV_PATH, IFACE_ADV, adv_vtable, p)) < 0) {
		say("exporting the objects failed: %s", strerror(-r));
		free(address);
		return 1;
	}
	/* Asynchronous: bluetoothd calls GetManagedObjects back before it replies. */
	if ((r = sd_bus_call_method_async(p->bus, NULL, BLUEZ, p->adapter_path, "org.bluez.GattManager1",
					  "RegisterApplication", on_registered, p, "oa{sv}", APP_PATH, 0)) < 0 ||
	    (r = sd_bus_call_method_async(p->bus, NULL, BLUEZ, p->adapter_path, "org.bluez.LEAdvertisingManager1",
					  "RegisterAdvertisement", on_registered, p, "oa{sv}", ADV_PATH, 0)) < 0) {
		say("registering failed: %s", strerror(-r));
		free(address);
		return 1;
	}
	say("%s (%s): %s \"%s\", SOC %.1f %%, registering GATT FFE0/FFE1 and the advertisement", adapter,
	    address, jk_protocol_name(p->cfg->battery.protocol), p->cfg->battery.name,
	    p->cfg->battery.soc_permille / 10.0);
	free(address);

	bool announced = false;

	while (!stop) {
		uint64_t due, now;

		while ((r = sd_bus_process(p->bus, NULL)) > 0)
			;
		if (r < 0) {
			say("bus: %s", strerror(-r));
			return 1;
		}
		if (p->failed)
			return 1;
		if (p->registered == 2 && !announced) {
			say("registered: advertising on %s", adapter);
			announced = true;
		}
		now = now_ms();
		sim_battery_tick(&p->bat, now);
		flush(p);
		due = sim_battery_next_due_ms(&p->bat);
		r = sd_bus_wait(p->bus, due == UINT64_MAX ? (uint64_t)-1 : due > now ? (due - now) * 1000 : 0);
		if (r < 0 && r != -EINTR) {
			say("bus: %s", strerror(-r));
			return 1;
		}
	}
	say("stopping on signal %d (%lu writes, %lu notifications)", (int)stop, p->writes, p->notifications);
	return 0;
}

int sim_peripheral_run(const struct sim_config *c, const char *bus_address, const char *adapter)
{
	static struct periph p;
	struct sigaction sa = { .sa_handler = on_signal };
	int r, status;

	memset(&p, 0, sizeof(p));
	p.cfg = &c->packs[0];
	if (c->npacks > 1)
		say("--peripheral serves the first pack only (%s)", p.cfg->battery.name);
	sim_battery_init(&p.bat, &p.cfg->battery, now_ms());
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = bus_connect(&p.bus, bus_address)) < 0) {
		say("cannot connect to the bus: %s", strerror(-r));
		return 1;
	}
	status = serve(&p, adapter);
	sd_bus_flush(p.bus);
	p.bus = sd_bus_flush_close_unref(p.bus);
	return status;
}
