/*
 * jkbms — the user's tool for JK-BMS units.
 *
 *	jkbms decode [--protocol auto|jk02_24s|jk02_32s|jk04] [--raw] [FILE]
 *
 * decode reads a capture (capture.h: hex text, one notification per line;
 * or raw bytes with --raw) from FILE or stdin, reassembles it with jk_stream
 * exactly as the daemon does, and prints one JSON object per frame (JSON
 * Lines) on stdout and a summary on stderr.  Junk in the stream is counted,
 * not an error; unreadable input is, with a file:line message and exit 1.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "jk_decode.h"
#include "jk_json.h"
#include "jk_stream.h"
#include "jkbms_cmds.h"
#include "pack.h"

#ifndef JKB_VERSION
#define JKB_VERSION "0.0.0"
#endif

enum { EXIT_USAGE = 2 };

struct decoder {
	struct pack pack;		/* stream and protocol learning, as in the daemon */
	unsigned by_type[256];
	unsigned undecodable;
};

static uint32_t decoder_frame(void *ctx, const uint8_t *frame)
{
	struct decoder *d = ctx;
	uint32_t events = 0;
	enum jk_protocol proto = pack_learn(&d->pack, frame, &events);

	d->by_type[jk_frame_type(frame)]++;
	if (!jk_json_print_frame(stdout, frame, proto))
		d->undecodable++;
	return events;
}

static void decoder_feed(struct decoder *d, const uint8_t *p, size_t n)
{
	pack_stream(&d->pack, p, n, decoder_frame, d);
}

static void decoder_summary(const struct decoder *d)
{
	const struct jk_stream_stats *st = &d->pack.stream.stats;

	fprintf(stderr,
		"frames: %u (cell_info %u, settings %u, device_info %u, logbook %u), "
		"bad checksums: %u, skipped bytes: %u, acks: %u, undecodable: %u, "
		"incomplete bytes: %zu, protocol: %s\n",
		st->frames, d->by_type[JK_FRAME_CELL_INFO], d->by_type[JK_FRAME_SETTINGS],
		d->by_type[JK_FRAME_DEVICE_INFO], d->by_type[JK_FRAME_LOGBOOK],
		st->bad_checksums, st->skipped_bytes, st->acks, d->undecodable,
		d->pack.stream.len, jk_protocol_name(d->pack.learned));
}

static int decode_raw(struct decoder *d, FILE *in, const char *name)
{
	uint8_t buf[4096];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		decoder_feed(d, buf, n);
	if (ferror(in)) {
		fprintf(stderr, "jkbms: %s: %s\n", name, strerror(errno));
		return 1;
	}
	return 0;
}

static int decode_text(struct decoder *d, FILE *in, const char *name)
{
	static struct capture_line line;
	char *text = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;

	while (getline(&text, &cap, in) >= 0) {
		lineno++;
		int kind = capture_parse_line(text, &line);

		if (kind < 0) {
			fprintf(stderr, "jkbms: %s:%u: %s\n", name, lineno, line.error);
			rc = 1;
			break;
		}
		if (kind == CAPTURE_NOTIFY)
			decoder_feed(d, line.data, line.len);
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "jkbms: %s: %s\n", name, strerror(errno));
		rc = 1;
	}
	free(text);
	return rc;
}

static void decode_usage(FILE *to)
{
	fprintf(to,
		"usage: jkbms decode [--protocol auto|jk02_24s|jk02_32s|jk04] [--raw] [FILE]\n"
		"Decode a JK-BMS notification capture (hex text, one notification per line;\n"
		"raw bytes with --raw) from FILE or stdin into JSON Lines.\n");
}

static int cmd_decode(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "protocol", required_argument, NULL, 'p' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct decoder d;
	enum jk_protocol configured = JK_PROTO_UNKNOWN;
	const char *name = "-";
	bool raw = false;
	FILE *in = stdin;
	int c, rc;

	while ((c = getopt_long(argc, argv, "p:rh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (jk_protocol_parse(optarg, &configured) < 0) {
				fprintf(stderr, "jkbms: unknown protocol '%s' "
					"(auto, jk02_24s, jk02_32s, jk04)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			raw = true;
			break;
		case 'h':
			decode_usage(stdout);
			return 0;
		default:
			decode_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		decode_usage(stderr);
		return EXIT_USAGE;
	}
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		name = argv[optind];
		in = fopen(name, raw ? "rb" : "r");
		if (!in) {
			fprintf(stderr, "jkbms: %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	pack_init(&d.pack, 0, configured);
	rc = raw ? decode_raw(&d, in, name) : decode_text(&d, in, name);
	decoder_summary(&d);
	if (in != stdin)
		fclose(in);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: jkbms COMMAND [ARGS]\n"
		"commands:\n"
		"  decode   decode a capture of JK-BMS notifications into JSON Lines\n"
		"  scan     list nearby JK-BMS units (BlueZ)\n"
		"  dump     connect to one unit and print its frames as JSON Lines\n"
		"  sim      serve simulated JK-BMS units as a BlueZ look-alike on D-Bus\n"
		"run 'jkbms COMMAND --help' for a command's options\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("jkbms %s\n", JKB_VERSION);
		return 0;
	}
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} cmds[] = {
		{ "decode", cmd_decode },
		{ "scan", jkbms_scan_main },
		{ "dump", jkbms_dump_main },
		{ "sim", jkbms_sim_main },
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "jkbms: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
