/*
 * jkbms scan / dump — the tool's BlueZ commands, on the daemon's own ble
 * module and loop (so they meet BlueZ exactly as the daemon does).
 *
 *	jkbms scan [--timeout S] [--adapter hciN]
 *	jkbms dump ADDRESS [--protocol P] [--adapter hciN] [--count N] [--timeout S]
 *	           [--switch charging|discharging|balancer=on|off]
 *
 * scan discovers for S seconds (default 10) and lists the devices that
 * look like a JK-BMS, with why: service FFE0, manufacturer ID 0x0B65 or
 * 0x4B4A, or a name starting with JK- or JK_.  dump connects, runs the
 * handshake and prints every decoded frame as one JSON object per line
 * (the `jkbms decode` format) until N frames, the timeout, or SIGINT; with
 * --switch it writes the switch once streaming and stops when a settings
 * frame confirms the new state.  Link states and a summary go to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ble.h"
#include "jk_decode.h"
#include "jk_json.h"
#include "jkbms_cmds.h"
#include "loop.h"
#include "pack.h"
#include "service.h"

enum { EXIT_USAGE = 2 };

static int parse_seconds(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 86400)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static void on_stop_signal(struct loop_source *src, uint32_t events)
{
	while (loop_signal_read(src) > 0)
		loop_stop(src->data, 130);
}

static void on_deadline(struct loop_source *src, uint32_t events)
{
	loop_timer_ack(src);
	loop_stop(src->data, 1);
}

/* The loop, SIGINT/SIGTERM and an optional deadline, as both commands use them. */
struct session {
	struct loop loop;
	struct loop_source signals, deadline;
};

static int session_open(struct session *s, unsigned timeout_s)
{
	static const int sigs[] = { SIGINT, SIGTERM };

	if (loop_init(&s->loop) < 0 ||
	    loop_signals_add(&s->loop, &s->signals, sigs, 2, on_stop_signal, &s->loop) < 0 ||
	    loop_timer_add(&s->loop, &s->deadline, on_deadline, &s->loop) < 0)
		return -1;
	return timeout_s ? loop_timer_arm(&s->deadline, (uint64_t)timeout_s * 1000, 0) : 0;
}

static void session_close(struct session *s)
{
	loop_timer_del(&s->deadline);
	loop_signals_del(&s->signals);
	loop_close(&s->loop);
}

/* ----------------------------------------------------------------- scan */

struct scan_result {
	struct ble_device dev[256];
	unsigned n, seen;
};

static void scan_collect(void *ctx, const struct ble_device *d)
{
	struct scan_result *r = ctx;

	r->seen++;
	if (ble_device_match(d) && r->n < sizeof(r->dev) / sizeof(r->dev[0]))
		r->dev[r->n++] = *d;
}

static int by_rssi(const void *a, const void *b)
{
	const struct ble_device *x = a, *y = b;
	int rx = x->have_rssi ? x->rssi : -1000, ry = y->have_rssi ? y->rssi : -1000;

	return ry - rx;
}

static void scan_print(const struct ble_device *d)
{
	unsigned m = ble_device_match(d);
	char why[96] = "", rssi[8] = "?";

	if (m & BLE_MATCH_SERVICE)
		strcat(why, "service FFE0");
	for (unsigned i = 0; i < d->n_manufacturer; i++)
		if (d->manufacturer[i] == 0x0B65 || d->manufacturer[i] == 0x4B4A)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), "%smanufacturer 0x%04X",
				 *why ? ", " : "", d->manufacturer[i]);
	if (m & BLE_MATCH_NAME)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "%sname %.3s", *why ? ", " : "", d->name);
	if (d->have_rssi)
		snprintf(rssi, sizeof(rssi), "%d", d->rssi);
	else if (d->connected)	/* a connected unit does not advertise */
		snprintf(rssi, sizeof(rssi), "conn");
	printf("%-17s  %5s  %-20s  %-7s  %s\n", d->address, rssi, *d->name ? d->name : "-", d->adapter, why);
}

static void scan_usage(FILE *to)
{
	fprintf(to,
		"usage: jkbms scan [--timeout S] [--adapter hciN]\n"
		"List nearby JK-BMS units (BlueZ discovery for S seconds, default 10): address,\n"
		"RSSI in dBm (\"conn\": connected, so not advertising), name, adapter and why it\n"
		"matched (service FFE0, manufacturer ID 0x0B65 or 0x4B4A, name prefix JK- or JK_).\n");
}

int jkbms_scan_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct scan_result res;
	const char *adapter = NULL, *names[8];
	unsigned timeout_s = 10, nadapters;
	struct session s;
	struct ble *b;
	int c, rc;

	while ((c = getopt_long(argc, argv, "t:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_seconds(optarg, &timeout_s) < 0 || timeout_s == 0) {
				fprintf(stderr, "jkbms scan: --timeout wants whole seconds (1-86400)\n");
				return EXIT_USAGE;
			}
			break;
		case 'a': adapter = optarg; break;
		case 'h': scan_usage(stdout); return 0;
		default: scan_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		scan_usage(stderr);
		return EXIT_USAGE;
	}
	if (session_open(&s, timeout_s) < 0 || !(b = ble_open(&s.loop))) {
		fprintf(stderr, "jkbms scan: cannot start: %s\n", strerror(errno));
		return 1;
	}
	ble_scan(b, adapter, true);
	rc = loop_run(&s.loop);
	nadapters = ble_adapters(b, names, 8);
	if (!ble_ready(b) || nadapters == 0) {
		fprintf(stderr, "jkbms scan: %s\n", !ble_ready(b) ? "BlueZ is not reachable on the system bus"
								  : "no Bluetooth adapter");
		ble_close(b);
		session_close(&s);
		return 1;
	}
	ble_foreach_device(b, scan_collect, &res);
	qsort(res.dev, res.n, sizeof(res.dev[0]), by_rssi);
	if (res.n)
		printf("%-17s  %5s  %-20s  %-7s  %s\n", "ADDRESS", "RSSI", "NAME", "ADAPTER", "MATCHED BY");
	for (unsigned i = 0; i < res.n; i++)
		scan_print(&res.dev[i]);
	fprintf(stderr, "jkbms scan: %u JK-BMS unit%s among %u devices%s\n", res.n, res.n == 1 ? "" : "s",
		res.seen, rc == 130 ? " (interrupted)" : "");
	ble_scan(b, adapter, false);
	ble_close(b);
	session_close(&s);
	return 0;
}

/* ----------------------------------------------------------------- dump */

struct dump {
	struct session s;
	struct pack pack;
	struct ble_link *link;
	unsigned count, printed;
	bool want_switch, switch_on, switch_sent, confirmed;
	enum jk_switch sw;
};

static bool settings_switch(const struct jk_settings *st, enum jk_switch sw)
{
	switch (sw) {
	case JK_SWITCH_CHARGING: return st->charging_switch;
	case JK_SWITCH_DISCHARGING: return st->discharging_switch;
	case JK_SWITCH_BALANCER: return st->balancer_switch;
	}
	return false;
}

static uint32_t dump_frame(void *ctx, const uint8_t *frame)
{
	struct dump *d = ctx;
	uint32_t ev = 0;
	enum jk_protocol proto = pack_learn(&d->pack, frame, &ev);
	struct jk_settings st;

	if (!jk_json_print_frame(stdout, frame, proto))
		return ev | PACK_EV_UNDECODABLE;
	fflush(stdout);
	d->printed++;
	if (jk_frame_type(frame) == JK_FRAME_CELL_INFO)
		ev |= PACK_EV_CELL_INFO;
	if (jk_frame_type(frame) == JK_FRAME_SETTINGS && d->switch_sent &&
	    jk_decode_settings(frame, proto, &st) == 0 && settings_switch(&st, d->sw) == d->switch_on) {
		fprintf(stderr, "jkbms dump: the settings frame confirms the switch is %s\n",
			d->switch_on ? "on" : "off");
		d->confirmed = true;
		loop_stop(&d->s.loop, 0);
	}
	if (d->count && d->printed >= d->count)
		loop_stop(&d->s.loop, 0);
	return ev;
}

/* The reassembly pack_feed() does, without a bank: frames are printed. */
static uint32_t dump_bytes(void *ctx, const uint8_t *data, size_t n)
{
	struct dump *d = ctx;

	return pack_stream(&d->pack, data, n, dump_frame, d);
}

static void dump_state(void *ctx, enum ble_state state)
{
	struct dump *d = ctx;
	int r;

	if (state != BLE_STREAMING || !d->want_switch || d->switch_sent)
		return;
	r = ble_link_switch(d->link, d->sw, d->switch_on);
	if (r < 0) {
		fprintf(stderr, "jkbms dump: cannot write the switch: %s\n", strerror(-r));
		loop_stop(&d->s.loop, 1);
		return;
	}
	d->switch_sent = true;
}

static int parse_switch(const char *s, struct dump *d)
{
	static const char *const names[] = {
		[JK_SWITCH_CHARGING] = "charging",
		[JK_SWITCH_DISCHARGING] = "discharging",
		[JK_SWITCH_BALANCER] = "balancer",
	};
	const char *eq = strchr(s, '=');

	if (!eq || (strcmp(eq + 1, "on") != 0 && strcmp(eq + 1, "off") != 0))
		return -EINVAL;
	for (unsigned i = 0; i < 3; i++)
		if (strlen(names[i]) == (size_t)(eq - s) && strncmp(s, names[i], (size_t)(eq - s)) == 0) {
			d->sw = (enum jk_switch)i;
			d->switch_on = strcmp(eq + 1, "on") == 0;
			d->want_switch = true;
			return 0;
		}
	return -EINVAL;
}

static void dump_summary(const struct dump *d, const struct ble_link_stats *st)
{
	char rssi[16] = "?";

	if (st->have_rssi)
		snprintf(rssi, sizeof(rssi), "%d dBm", st->rssi);
	fprintf(stderr,
		"jkbms dump: %u frames printed; link: %s, adapter %s, RSSI %s, %s, reconnects %u; "
		"stream: %u frames, %u bad checksums, %u acks; protocol %s%s%s\n",
		d->printed, ble_state_name(st->state), *st->adapter ? st->adapter : "-", rssi,
		st->notify_fd ? "notify fd" : "StartNotify", st->reconnects, d->pack.stream.stats.frames,
		d->pack.stream.stats.bad_checksums, d->pack.stream.stats.acks,
		jk_protocol_name(d->pack.learned), d->pack.have_info ? ", " : "",
		d->pack.have_info ? d->pack.info.model : "");
}

static void dump_usage(FILE *to)
{
	fprintf(to,
		"usage: jkbms dump ADDRESS [--protocol auto|jk02_24s|jk02_32s|jk04] [--adapter hciN]\n"
		"                  [--count N] [--timeout S] [--switch NAME=on|off]\n"
		"Connect to one JK-BMS and print its frames as JSON Lines until N frames (default:\n"
		"until SIGINT) or S seconds.  --switch charging|discharging|balancer=on|off writes\n"
		"the switch once streaming and stops when the settings frame confirms it.\n");
}

int jkbms_dump_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "protocol", required_argument, NULL, 'p' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "switch", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct ble_link_ops ops = { .on_bytes = dump_bytes, .on_state = dump_state };
	static struct dump d;
	enum jk_protocol proto = JK_PROTO_UNKNOWN;
	struct ble_link_config lc = { .ops = &ops, .ctx = &d };
	struct ble_link_stats st;
	unsigned timeout_s = 0;
	struct ble *b;
	int c, rc;

	while ((c = getopt_long(argc, argv, "p:a:n:t:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (jk_protocol_parse(optarg, &proto) < 0) {
				fprintf(stderr, "jkbms dump: unknown protocol '%s' (auto, jk02_24s, jk02_32s, jk04)\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'a': lc.adapter = optarg; break;
		case 'n':
			if (parse_seconds(optarg, &d.count) < 0) {
				fprintf(stderr, "jkbms dump: --count wants a number\n");
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (parse_seconds(optarg, &timeout_s) < 0) {
				fprintf(stderr, "jkbms dump: --timeout wants whole seconds\n");
				return EXIT_USAGE;
			}
			break;
		case 's':
			if (parse_switch(optarg, &d) < 0) {
				fprintf(stderr, "jkbms dump: --switch wants charging|discharging|balancer=on|off\n");
				return EXIT_USAGE;
			}
			break;
		case 'h': dump_usage(stdout); return 0;
		default: dump_usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		dump_usage(stderr);
		return EXIT_USAGE;
	}
	lc.name = lc.address = argv[optind];
	if (strlen(lc.address) != 17) {
		fprintf(stderr, "jkbms dump: '%s' is not an address like C8:47:8C:E1:E2:AA\n", lc.address);
		return EXIT_USAGE;
	}
	pack_init(&d.pack, 0, proto);
	lc.pack = &d.pack;
	if (session_open(&d.s, timeout_s) < 0 || !(b = ble_open(&d.s.loop)) ||
	    !(d.link = ble_link_new(b, &lc))) {
		fprintf(stderr, "jkbms dump: cannot start: %s\n", strerror(errno));
		return 1;
	}
	rc = loop_run(&d.s.loop);
	ble_link_stats(d.link, &st);
	dump_summary(&d, &st);
	ble_close(b);
	session_close(&d.s);
	if (rc == 130)		/* SIGINT: the user's way to stop */
		return 0;
	if (d.want_switch)
		return d.confirmed ? 0 : 1;
	if (rc == 1 && !d.count && d.printed > 0)	/* the timeout was the plan */
		return 0;
	return rc;
}
