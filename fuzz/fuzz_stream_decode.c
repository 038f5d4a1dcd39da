/*
 * fuzz_stream_decode — libFuzzer target over jk_stream and jk_decode.
 *
 * Input byte 0 says how the rest is fed:
 *	bit 7 clear	fixed chunks of (byte 0 & 0x3F) bytes; 0 = one notification
 *	bit 7 set	chunks of 1..400 bytes from an xorshift seeded with
 *			bytes 0 and 1 (byte 1 is then consumed too); about
 *			every 64th chunk boundary also calls jk_stream_reset(),
 *			as a reconnect would
 *	bit 6 set	"repair": every 55 AA EB 90 (AA 55 90 EB) in the input
 *			gets a correct sum8 at +299 (+19) first, so checksum-
 *			valid frames and acks come out of the stream often,
 *			not once in 2^8 lucky windows
 * Every frame the stream hands out goes through jk_detect_from_frame and
 * every decoder with every protocol (JK02_24S, JK02_32S, JK04 and
 * unknown).  The first 300 bytes of the rest are also decoded directly as a
 * frame (type forced to one of 01/02/03/05, checksum fixed), so the decoders
 * see arbitrary payloads without the fuzzer having to find a header first.
 *
 * Sanitizers catch memory errors and UB; the invariants below trap:
 * frames carry a valid header, type and checksum; acks are C8 acks; every
 * byte is consumed and ends up in a frame, in skipped_bytes or pending.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jk_decode.h"
#include "jk_stream.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t sink;

static uint8_t sum8(const uint8_t *p, size_t n)
{
	unsigned s = 0;

	for (size_t i = 0; i < n; i++)
		s += p[i];
	return (uint8_t)s;
}

static unsigned popcount32(uint32_t v)
{
	unsigned n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static bool bool_ok(const bool *b)
{
	unsigned char c;

	memcpy(&c, b, 1);
	return c <= 1;
}

static bool terminated(const char *s)
{
	return memchr(s, '\0', JK_STR_MAX) != NULL;
}

static void check_sample(const uint8_t *f, enum jk_protocol p, const struct jk_sample *s)
{
	unsigned slots = p == JK_PROTO_JK02_32S ? 32 : 24;

	CHECK(s->protocol == p);
	CHECK(s->counter == f[5]);
	CHECK(s->cell_count == popcount32(s->cell_mask));
	CHECK(s->cell_count <= slots);
	CHECK(s->temp_count <= JK_MAX_TEMPS);
	CHECK(bool_ok(&s->charging_enabled) && bool_ok(&s->discharging_enabled));
	CHECK(bool_ok(&s->heating) && bool_ok(&s->precharging) && bool_ok(&s->balancer_working));
	/* Touch every field so the sanitizers see each value. */
	uint32_t acc = s->has + s->cell_avg_mv + s->cell_delta_mv + s->cell_max_index +
		       s->cell_min_index + s->voltage_mv + (uint32_t)s->current_ma + s->power_mw +
		       s->temp_presence + (uint32_t)s->mos_temp_dc + s->errors +
		       s->wire_res_warnings + (uint32_t)s->balance_current_ma +
		       (uint32_t)s->balancing + s->soc_pct + s->soh_pct + s->remaining_mah +
		       s->capacity_mah + s->cycles + s->cycle_capacity_mah + s->uptime_s +
		       s->emergency_countdown_s + s->battery_type + s->charge_status +
		       s->charge_status_time_s;

	for (unsigned i = 0; i < JK_MAX_CELLS; i++)
		acc += s->cells_mv[i] + s->cell_res_mohm[i];
	for (unsigned i = 0; i < s->temp_count; i++)
		acc += (uint32_t)s->temps_dc[i];
	sink += acc;
}

static void check_settings(enum jk_protocol p, const struct jk_settings *s)
{
	CHECK(s->protocol == p);
	CHECK(s->wire_res_count <= JK_MAX_CELLS);
	CHECK(bool_ok(&s->balancer_switch) && bool_ok(&s->charging_switch) &&
	      bool_ok(&s->discharging_switch));
	uint32_t acc = s->cell_count + s->cell_ovp_mv + s->capacity_mah + s->controls +
		       (uint32_t)s->heating_start_c + s->jk04_vref_mv + s->jk04_balance_trigger_mv +
		       s->jk04_max_balance_current_ma + s->jk04_power_off_mv +
		       s->jk04_balance_start_mv;

	for (unsigned i = 0; i < s->wire_res_count; i++)
		acc += s->wire_res_mohm[i];
	sink += acc;
}

static void decode_everything(const uint8_t f[JK_FRAME_LEN])
{
	static const enum jk_protocol protos[] = {
		JK_PROTO_UNKNOWN, JK_PROTO_JK02_24S, JK_PROTO_JK02_32S, JK_PROTO_JK04,
	};
	enum jk_protocol det = jk_detect_from_frame(f);
	struct jk_sample sample;
	struct jk_settings settings;
	struct jk_device_info info;
	struct jk_logbook log;

	CHECK((unsigned)det <= JK_PROTO_JK04);
	CHECK(jk_protocol_name(det) != NULL);

	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (jk_decode_cell_info(f, protos[i], &sample) == 0) {
			CHECK(jk_frame_type(f) == JK_FRAME_CELL_INFO && protos[i] != JK_PROTO_UNKNOWN);
			check_sample(f, protos[i], &sample);
		}
		if (jk_decode_settings(f, protos[i], &settings) == 0) {
			CHECK(jk_frame_type(f) == JK_FRAME_SETTINGS && protos[i] != JK_PROTO_UNKNOWN);
			check_settings(protos[i], &settings);
		}
	}
	if (jk_decode_device_info(f, &info) == 0) {
		CHECK(jk_frame_type(f) == JK_FRAME_DEVICE_INFO);
		CHECK(terminated(info.model) && terminated(info.hw_version) &&
		      terminated(info.sw_version) && terminated(info.name) &&
		      terminated(info.manufacturing_date) && terminated(info.serial) &&
		      terminated(info.user_data));
		det = jk_detect_from_device_info(&info);
		CHECK((unsigned)det <= JK_PROTO_JK04);
		sink += (uint32_t)strlen(info.model) + info.uptime_s + info.power_on_count;
	}
	if (jk_decode_logbook(f, &log) == 0) {
		CHECK(jk_frame_type(f) == JK_FRAME_LOGBOOK);
		CHECK(log.n <= JK_LOGBOOK_MAX && log.n <= log.entry_count);
		for (unsigned i = 0; i < log.n; i++)
			sink += log.entries[i].time_s + log.entries[i].code;
	}
}

static void check_token(const struct jk_token *tok)
{
	static const uint8_t frame_hdr[4] = { 0x55, 0xAA, 0xEB, 0x90 };
	static const uint8_t cmd_hdr[4] = { 0xAA, 0x55, 0x90, 0xEB };

	CHECK(tok->data != NULL);
	if (tok->kind == JK_TOKEN_FRAME) {
		uint8_t t = tok->data[4];

		CHECK(tok->len == JK_FRAME_LEN);
		CHECK(memcmp(tok->data, frame_hdr, 4) == 0);
		CHECK(sum8(tok->data, JK_FRAME_LEN - 1) == tok->data[JK_FRAME_LEN - 1]);
		CHECK(t == 0x01 || t == 0x02 || t == 0x03 || t == 0x05);
		decode_everything(tok->data);
	} else {
		CHECK(tok->kind == JK_TOKEN_ACK);
		CHECK(tok->len == JK_CMD_LEN);
		CHECK(memcmp(tok->data, cmd_hdr, 4) == 0 && tok->data[4] == 0xC8);
		CHECK(sum8(tok->data, JK_CMD_LEN - 1) == tok->data[JK_CMD_LEN - 1]);
	}
}

/* Feed one notification the way the daemon does; returns bytes consumed. */
static size_t feed(struct jk_stream *s, const uint8_t *in, size_t n)
{
	size_t total = 0;
	struct jk_token tok;

	while (n > 0) {
		size_t used = jk_stream_feed(s, in, n, &tok);

		CHECK(used <= n);
		CHECK(used > 0 || tok.kind != JK_TOKEN_NONE);	/* progress */
		CHECK(s->len <= JK_FRAME_LEN);
		if (tok.kind != JK_TOKEN_NONE)
			check_token(&tok);
		in += used;
		n -= used;
		total += used;
	}
	return total;
}

/* Hand out tokens still complete in the buffer, and retire the last one,
 * so that s->len counts only pending bytes. */
static void drain(struct jk_stream *s)
{
	struct jk_token tok;

	for (unsigned guard = 0;; guard++) {
		CHECK(guard <= JK_FRAME_LEN);
		CHECK(jk_stream_feed(s, (const uint8_t *)"", 0, &tok) == 0);
		if (tok.kind == JK_TOKEN_NONE)
			return;
		check_token(&tok);
	}
}

/* Give every frame and command header in the input a valid checksum. */
static void repair(uint8_t *p, size_t n)
{
	static const uint8_t frame_hdr[4] = { 0x55, 0xAA, 0xEB, 0x90 };
	static const uint8_t cmd_hdr[4] = { 0xAA, 0x55, 0x90, 0xEB };

	for (size_t i = 0; i + 4 <= n; i++) {
		if (i + JK_FRAME_LEN <= n && memcmp(p + i, frame_hdr, 4) == 0)
			p[i + JK_FRAME_LEN - 1] = sum8(p + i, JK_FRAME_LEN - 1);
		else if (i + JK_CMD_LEN <= n && memcmp(p + i, cmd_hdr, 4) == 0)
			p[i + JK_CMD_LEN - 1] = sum8(p + i, JK_CMD_LEN - 1);
	}
}

static uint32_t xorshift32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jk_stream s;
	uint8_t *copy = NULL;
	uint32_t rng = 0;
	size_t fixed = 0, off = 0, fed = 0, dropped = 0;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0];
	data++;
	size--;
	if (mode & 0x80) {
		if (size == 0)
			return 0;
		rng = (uint32_t)mode << 8 | data[0] | 0x10000u;	/* never 0 */
		data++;
		size--;
	} else {
		fixed = mode & 0x3F;	/* 0: all at once */
	}
	if (mode & 0x40) {
		copy = malloc(size ? size : 1);
		CHECK(copy != NULL);
		memcpy(copy, data, size);
		repair(copy, size);
		data = copy;
	}

	/* The decoders on their own, with an arbitrary payload. */
	if (size >= JK_FRAME_LEN) {
		static const uint8_t types[] = { 0x01, 0x02, 0x03, 0x05 };
		uint8_t f[JK_FRAME_LEN];

		memcpy(f, data, JK_FRAME_LEN);
		f[4] = types[f[4] & 3];
		f[JK_FRAME_LEN - 1] = sum8(f, JK_FRAME_LEN - 1);
		decode_everything(f);
	}

	jk_stream_init(&s);
	while (off < size) {
		size_t c = rng ? 1 + xorshift32(&rng) % 400 : fixed ? fixed : size;

		if (c > size - off)
			c = size - off;
		CHECK(feed(&s, data + off, c) == c);
		off += c;
		fed += c;
		if (rng && xorshift32(&rng) % 64 == 0) {
			struct jk_stream_stats before;

			drain(&s);
			before = s.stats;
			dropped += s.len;
			jk_stream_reset(&s);
			CHECK(s.len == 0);
			CHECK(memcmp(&before, &s.stats, sizeof(before)) == 0);
		}
	}
	drain(&s);
	CHECK(fed == size);
	CHECK((size_t)s.stats.frames * JK_FRAME_LEN + s.stats.skipped_bytes + s.len + dropped == size);
	free(copy);
	return 0;
}
