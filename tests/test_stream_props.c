/*
 * test_stream_props — property tests for jk_stream and jk_decode, driven by
 * a deterministic xorshift PRNG with fixed seeds (so a failure always
 * reproduces; the iteration and seed are in the message).
 *
 *  - Re-chunking: the same bytes cut into random chunks (1..400) give the
 *    same tokens in the same order and the same counters as one chunk, for
 *    clean streams (frames, acks, AT, lead-free junk: counters known
 *    exactly) and for corrupted ones (random bytes, broken frames).
 *  - Robustness: random bytes never crash the stream, never yield a frame
 *    with a wrong checksum or type, and every byte is consumed and
 *    accounted for.
 *  - Every frame that comes out, and frames with random payloads and valid
 *    checksums, decode in all three protocols with each field within its
 *    type (ASan/UBSan watch for the rest).
 *
 * A few hundred iterations each, so the suite stays fast under ASan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "jk_decode.h"
#include "stream_util.h"
#include "tests.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define STREAM_MAX 8192

static const uint8_t frame_types[] = { 0x01, 0x02, 0x03, 0x05 };

static const enum jk_protocol protocols[] = {
	JK_PROTO_JK02_24S, JK_PROTO_JK02_32S, JK_PROTO_JK04,
};

struct gen {
	uint8_t b[STREAM_MAX];
	size_t n;
	/* What a clean stream must produce. */
	struct su_stats want;
	size_t ntok;
	enum jk_token_kind kinds[SU_MAX_TOKENS];
	size_t offs[SU_MAX_TOKENS];	/* where each token starts in b */
};

static bool gen_room(const struct gen *g, size_t n)
{
	return g->n + n <= STREAM_MAX && g->ntok < SU_MAX_TOKENS;
}

static void gen_put(struct gen *g, const void *p, size_t n)
{
	ck_assert_uint_le(g->n + n, STREAM_MAX);
	memcpy(g->b + g->n, p, n);
	g->n += n;
}

static void gen_token(struct gen *g, enum jk_token_kind kind)
{
	g->kinds[g->ntok] = kind;
	g->offs[g->ntok] = g->n;
	g->ntok++;
}

/* A valid frame of a known type with a fully random payload. */
static void random_frame(uint8_t f[JK_FRAME_LEN], uint32_t *rng)
{
	memcpy(f, su_header, 4);
	f[4] = frame_types[su_rand(rng) % ARRAY_SIZE(frame_types)];
	for (size_t i = 5; i < JK_FRAME_LEN - 1; i++)
		f[i] = (uint8_t)su_rand(rng);
	su_seal(f);
}

/* Frames, acks, AT tokens and lead-free junk, in random order. */
static void gen_clean(struct gen *g, uint32_t *rng)
{
	unsigned items = su_range(rng, 1, 24);

	memset(g, 0, sizeof(*g));
	for (unsigned i = 0; i < items; i++) {
		unsigned pick = su_range(rng, 0, 99);

		if (pick < 40) {
			uint8_t f[JK_FRAME_LEN];

			if (!gen_room(g, JK_FRAME_LEN))
				break;
			random_frame(f, rng);
			gen_token(g, JK_TOKEN_FRAME);
			gen_put(g, f, sizeof(f));
			g->want.frames++;
		} else if (pick < 60) {
			if (!gen_room(g, JK_CMD_LEN))
				break;
			gen_token(g, JK_TOKEN_ACK);
			gen_put(g, su_ack, sizeof(su_ack));
			g->want.acks++;
			g->want.skipped_bytes += JK_CMD_LEN;
		} else if (pick < 75) {
			if (!gen_room(g, sizeof(su_at)))
				break;
			gen_put(g, su_at, sizeof(su_at));
			g->want.at_tokens++;
			g->want.skipped_bytes += sizeof(su_at);
		} else {
			unsigned n = su_range(rng, 1, 40);

			if (!gen_room(g, n))
				break;
			for (unsigned k = 0; k < n; k++) {
				uint8_t b = su_junk_byte(rng);

				gen_put(g, &b, 1);
			}
			g->want.skipped_bytes += n;
		}
	}
}

/* Anything: random bytes, lead-heavy bytes, good and broken frames. */
static void gen_hostile(struct gen *g, uint32_t *rng)
{
	static const uint8_t alphabet[] = {
		0x55, 0xAA, 0xEB, 0x90, 'A', 'T', '\r', '\n', 0xC8, 0x44,
		0x00, 0x01, 0x02, 0x03, 0x05, 0xFF,
	};
	unsigned pieces = su_range(rng, 0, 24);

	memset(g, 0, sizeof(*g));
	for (unsigned i = 0; i < pieces; i++) {
		unsigned pick = su_range(rng, 0, 99);
		uint8_t f[JK_FRAME_LEN];
		size_t n;

		if (pick < 25) {			/* random bytes */
			n = su_range(rng, 1, 300);
			if (!gen_room(g, n))
				break;
			for (size_t k = 0; k < n; k++)
				g->b[g->n++] = (uint8_t)su_rand(rng);
		} else if (pick < 50) {			/* bytes that look like leads */
			n = su_range(rng, 1, 64);
			if (!gen_room(g, n))
				break;
			for (size_t k = 0; k < n; k++)
				g->b[g->n++] = alphabet[su_rand(rng) % ARRAY_SIZE(alphabet)];
		} else if (pick < 65) {			/* a good frame */
			if (!gen_room(g, JK_FRAME_LEN))
				break;
			random_frame(f, rng);
			gen_put(g, f, sizeof(f));
		} else if (pick < 80) {			/* a broken or cut frame */
			random_frame(f, rng);
			if (su_rand(rng) & 1)
				f[su_range(rng, 4, JK_FRAME_LEN - 1)] ^= (uint8_t)su_range(rng, 1, 255);
			n = su_range(rng, 1, JK_FRAME_LEN);
			if (!gen_room(g, n))
				break;
			gen_put(g, f, n);
		} else if (pick < 90) {			/* ack, whole or cut */
			n = su_range(rng, 1, JK_CMD_LEN);
			if (!gen_room(g, n))
				break;
			gen_put(g, su_ack, n);
		} else {				/* AT, whole or cut */
			n = su_range(rng, 1, sizeof(su_at));
			if (!gen_room(g, n))
				break;
			gen_put(g, su_at, n);
		}
	}
}

/* Feed in random chunks of 1..400 bytes, then drain. */
static void feed_random_chunks(struct jk_stream *s, const uint8_t *in, size_t n, uint32_t *rng,
			      struct su_result *r)
{
	size_t off = 0;

	while (off < n) {
		size_t c = su_range(rng, 1, 400);

		if (c > n - off)
			c = n - off;
		ck_assert_uint_eq(su_feed_chunk(s, in + off, c, r), c);
		off += c;
	}
	su_drain(s, r);
}

static void assert_same_tokens(const struct su_result *a, const struct su_result *b,
			       unsigned iter)
{
	ck_assert_msg(a->ntok == b->ntok, "iteration %u: %zu tokens vs %zu", iter, a->ntok,
		      b->ntok);
	for (size_t i = 0; i < a->ntok; i++) {
		ck_assert_msg(a->tok[i].kind == b->tok[i].kind && a->tok[i].len == b->tok[i].len &&
			      memcmp(a->tok[i].data, b->tok[i].data, a->tok[i].len) == 0,
			      "iteration %u: token %zu differs", iter, i);
	}
}

/* ------------------------------------------------------------ decode checks */

static unsigned popcount32(uint32_t v)
{
	unsigned n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A bool must hold 0 or 1: anything else makes reading it undefined. */
#define assert_bool_repr(field) do {						\
	unsigned char b_;							\
	memcpy(&b_, &(field), 1);						\
	ck_assert_msg(b_ <= 1, #field " holds %u", b_);				\
} while (0)

static unsigned cell_slots(enum jk_protocol p)
{
	return p == JK_PROTO_JK02_32S ? 32 : 24;
}

static void check_sample(const uint8_t *f, enum jk_protocol p, const struct jk_sample *s)
{
	unsigned slots = cell_slots(p);
	bool jk02 = p != JK_PROTO_JK04;
	uint32_t sum = 0;

	ck_assert_int_eq(s->protocol, p);
	ck_assert_uint_eq(s->counter, f[5]);
	ck_assert_uint_eq(s->has & ~(((uint32_t)JK_HAS_EMERGENCY << 1) - 1u), 0);
	ck_assert_uint_eq(s->cell_count, popcount32(s->cell_mask));
	ck_assert_uint_le(s->cell_count, slots);
	if (slots < 32)
		ck_assert_uint_eq(s->cell_mask >> slots, 0);
	for (unsigned i = 0; i < JK_MAX_CELLS; i++) {
		if (!(s->cell_mask >> i & 1)) {
			ck_assert_uint_eq(s->cells_mv[i], 0);
			continue;
		}
		if (jk02)
			ck_assert_uint_eq(s->cells_mv[i], le16(f + 6 + 2 * i));
		sum += s->cells_mv[i];
	}
	if (jk02) {
		unsigned base = p == JK_PROTO_JK02_32S ? 150 : 118;

		ck_assert_uint_eq(s->voltage_mv, le32(f + base));
		ck_assert_int_eq(s->current_ma, (int32_t)le32(f + base + 8));
		ck_assert(s->has & JK_HAS_CURRENT);
		ck_assert(s->has & JK_HAS_TEMPS);
		ck_assert_uint_eq(s->temp_count, p == JK_PROTO_JK02_32S ? 5 : 2);
	} else {
		/* The pack voltage is the cell sum (§4.6), rounded once or per
		 * cell: at most half a mV per cell apart. */
		uint32_t diff = s->voltage_mv > sum ? s->voltage_mv - sum : sum - s->voltage_mv;

		ck_assert_msg(diff <= s->cell_count, "pack %u mV, cells sum to %u mV",
			      s->voltage_mv, sum);
		/* JK04 carries no current, SOC, cycles or MOSFET state (§4.6). */
		ck_assert(!(s->has & (JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_MOSFETS)));
	}
	ck_assert_uint_le(s->temp_count, JK_MAX_TEMPS);
	assert_bool_repr(s->charging_enabled);
	assert_bool_repr(s->discharging_enabled);
	assert_bool_repr(s->heating);
	assert_bool_repr(s->precharging);
	assert_bool_repr(s->balancer_working);
}

static void check_settings(enum jk_protocol p, const struct jk_settings *s)
{
	ck_assert_int_eq(s->protocol, p);
	ck_assert_uint_le(s->wire_res_count, JK_MAX_CELLS);
	assert_bool_repr(s->balancer_switch);
	assert_bool_repr(s->charging_switch);
	assert_bool_repr(s->discharging_switch);
}

static void check_string(const char *str, const char *what)
{
	ck_assert_msg(memchr(str, '\0', JK_STR_MAX) != NULL, "%s is not terminated", what);
}

static void check_device_info(const struct jk_device_info *d)
{
	enum jk_protocol p;

	check_string(d->model, "model");
	check_string(d->hw_version, "hw_version");
	check_string(d->sw_version, "sw_version");
	check_string(d->name, "name");
	check_string(d->manufacturing_date, "manufacturing_date");
	check_string(d->serial, "serial");
	check_string(d->user_data, "user_data");
	p = jk_detect_from_device_info(d);
	ck_assert_uint_le((unsigned)p, JK_PROTO_JK04);
	ck_assert_ptr_nonnull(jk_protocol_name(p));
}

/*
 * Run a checksum-valid frame through every decoder with every protocol.
 * The decoder for the frame's own type must succeed (with a known protocol);
 * all others must refuse it with -EINVAL.
 */
static void check_decodes(const uint8_t f[JK_FRAME_LEN])
{
	enum jk_frame_type type = jk_frame_type(f);
	enum jk_protocol detected = jk_detect_from_frame(f);
	struct jk_sample sample;
	struct jk_settings settings;
	struct jk_device_info info;
	struct jk_logbook log;
	int rc;

	ck_assert_uint_le((unsigned)detected, JK_PROTO_JK04);
	ck_assert_ptr_nonnull(jk_protocol_name(detected));
	if (type == JK_FRAME_CELL_INFO || type == JK_FRAME_SETTINGS)
		ck_assert_int_ne(detected, JK_PROTO_UNKNOWN);

	for (size_t i = 0; i < ARRAY_SIZE(protocols); i++) {
		enum jk_protocol p = protocols[i];

		rc = jk_decode_cell_info(f, p, &sample);
		if (type == JK_FRAME_CELL_INFO) {
			ck_assert_msg(rc == 0, "cell info as %s: %d", jk_protocol_name(p), rc);
			check_sample(f, p, &sample);
		} else {
			ck_assert_int_eq(rc, -EINVAL);
		}
		rc = jk_decode_settings(f, p, &settings);
		if (type == JK_FRAME_SETTINGS) {
			ck_assert_msg(rc == 0, "settings as %s: %d", jk_protocol_name(p), rc);
			check_settings(p, &settings);
		} else {
			ck_assert_int_eq(rc, -EINVAL);
		}
	}
	/* No protocol at all is not a layout to decode with. */
	rc = jk_decode_cell_info(f, JK_PROTO_UNKNOWN, &sample);
	ck_assert(rc == -EINVAL || rc == -EPROTONOSUPPORT);
	rc = jk_decode_settings(f, JK_PROTO_UNKNOWN, &settings);
	ck_assert(rc == -EINVAL || rc == -EPROTONOSUPPORT);

	rc = jk_decode_device_info(f, &info);
	if (type == JK_FRAME_DEVICE_INFO) {
		ck_assert_int_eq(rc, 0);
		check_device_info(&info);
	} else {
		ck_assert_int_eq(rc, -EINVAL);
	}
	rc = jk_decode_logbook(f, &log);
	if (type == JK_FRAME_LOGBOOK) {
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_le(log.n, JK_LOGBOOK_MAX);
		ck_assert_uint_le(log.n, log.entry_count);
	} else {
		ck_assert_int_eq(rc, -EINVAL);
	}
}

/* A token the stream hands out must be exactly what it claims to be. */
static void check_token(const struct su_token *t)
{
	if (t->kind == JK_TOKEN_FRAME) {
		ck_assert_uint_eq(t->len, JK_FRAME_LEN);
		ck_assert_mem_eq(t->data, su_header, 4);
		ck_assert_uint_eq(su_sum8(t->data, JK_FRAME_LEN - 1), t->data[JK_FRAME_LEN - 1]);
		ck_assert(t->data[4] == 0x01 || t->data[4] == 0x02 || t->data[4] == 0x03 ||
			  t->data[4] == 0x05);
		check_decodes(t->data);
	} else {
		static const uint8_t cmd_header[4] = { 0xAA, 0x55, 0x90, 0xEB };

		ck_assert_int_eq(t->kind, JK_TOKEN_ACK);
		ck_assert_uint_eq(t->len, JK_CMD_LEN);
		ck_assert_mem_eq(t->data, cmd_header, 4);
		ck_assert_uint_eq(t->data[4], 0xC8);
		ck_assert_uint_eq(su_sum8(t->data, JK_CMD_LEN - 1), t->data[JK_CMD_LEN - 1]);
	}
}

/* ------------------------------------------------------------ properties */

enum { CLEAN_STREAMS = 200, CHUNKINGS = 4, HOSTILE_STREAMS = 300, DECODE_FRAMES = 300 };

/* Big per-test state lives here, not on the stack. */
static struct gen g;
static struct su_result ref, got;

START_TEST(test_rechunking_a_clean_stream_yields_the_same_frames_and_counters)
{
	uint32_t rng = 0x2545F491u;

	for (unsigned iter = 0; iter < CLEAN_STREAMS; iter++) {
		struct jk_stream s;
		struct jk_stream_stats want_stats;

		gen_clean(&g, &rng);

		/* One piece: exactly what the generator put in. */
		memset(&ref, 0, sizeof(ref));
		jk_stream_init(&s);
		su_feed_chunked(&s, g.b, g.n, NULL, 0, &ref);
		ck_assert_msg(ref.ntok == g.ntok, "iteration %u: %zu tokens, want %zu", iter,
			      ref.ntok, g.ntok);
		for (size_t i = 0; i < g.ntok; i++)
			su_assert_token(&ref, i, g.kinds[i], g.b + g.offs[i],
					g.kinds[i] == JK_TOKEN_FRAME ? JK_FRAME_LEN : JK_CMD_LEN);
		su_assert_stats(&s.stats, g.want);
		ck_assert_uint_eq(s.len, 0);
		ck_assert_uint_eq(ref.consumed, g.n);
		want_stats = s.stats;

		/* Any cut gives the same. */
		for (unsigned c = 0; c < CHUNKINGS; c++) {
			memset(&got, 0, sizeof(got));
			jk_stream_init(&s);
			feed_random_chunks(&s, g.b, g.n, &rng, &got);
			assert_same_tokens(&ref, &got, iter);
			ck_assert_msg(memcmp(&s.stats, &want_stats, sizeof(want_stats)) == 0,
				      "iteration %u chunking %u: counters differ", iter, c);
			ck_assert_uint_eq(s.len, 0);
			ck_assert_uint_eq(got.consumed, g.n);
		}
	}
}
END_TEST

START_TEST(test_random_bytes_never_yield_a_bad_frame_and_are_all_consumed)
{
	uint32_t rng = 0x6C078965u;
	uint32_t frames = 0;

	for (unsigned iter = 0; iter < HOSTILE_STREAMS; iter++) {
		struct jk_stream s;

		gen_hostile(&g, &rng);
		memset(&got, 0, sizeof(got));
		jk_stream_init(&s);
		feed_random_chunks(&s, g.b, g.n, &rng, &got);
		ck_assert_uint_eq(got.consumed, g.n);
		for (size_t i = 0; i < got.ntok; i++)
			check_token(&got.tok[i]);
		ck_assert_uint_lt(s.len, JK_FRAME_LEN);
		su_assert_conserved(&s, g.n);
		ck_assert_uint_eq(s.stats.frames + s.stats.acks, got.ntok);
		frames += s.stats.frames;
	}
	/* The generator is meant to let some frames through. */
	ck_assert_uint_gt(frames, 0);
}
END_TEST

START_TEST(test_pure_random_bytes_in_random_chunks_are_all_consumed)
{
	uint32_t rng = 0x1234567u;

	for (unsigned iter = 0; iter < HOSTILE_STREAMS; iter++) {
		struct jk_stream s;
		size_t n = su_range(&rng, 0, 2000);

		for (size_t i = 0; i < n; i++)
			g.b[i] = (uint8_t)su_rand(&rng);
		memset(&got, 0, sizeof(got));
		jk_stream_init(&s);
		feed_random_chunks(&s, g.b, n, &rng, &got);
		ck_assert_uint_eq(got.consumed, n);
		for (size_t i = 0; i < got.ntok; i++)
			check_token(&got.tok[i]);
		su_assert_conserved(&s, n);
	}
}
END_TEST

START_TEST(test_rechunking_a_corrupted_stream_yields_the_same_tokens_and_counters)
{
	uint32_t rng = 0x0BADF00Du;

	for (unsigned iter = 0; iter < HOSTILE_STREAMS; iter++) {
		struct jk_stream s1, s2;

		gen_hostile(&g, &rng);
		memset(&ref, 0, sizeof(ref));
		jk_stream_init(&s1);
		su_feed_chunked(&s1, g.b, g.n, NULL, 0, &ref);

		memset(&got, 0, sizeof(got));
		jk_stream_init(&s2);
		feed_random_chunks(&s2, g.b, g.n, &rng, &got);
		assert_same_tokens(&ref, &got, iter);
		ck_assert_msg(memcmp(&s1.stats, &s2.stats, sizeof(s1.stats)) == 0,
			      "iteration %u: counters differ", iter);
		ck_assert_uint_eq(s1.len, s2.len);
	}
}
END_TEST

START_TEST(test_random_valid_frame_decodes_in_every_protocol)
{
	uint32_t rng = 0xC0FFEE11u;

	for (unsigned iter = 0; iter < DECODE_FRAMES; iter++) {
		uint8_t f[JK_FRAME_LEN];

		for (size_t t = 0; t < ARRAY_SIZE(frame_types); t++) {
			random_frame(f, &rng);
			f[4] = frame_types[t];
			su_seal(f);
			check_decodes(f);
		}
	}
}
END_TEST

/* JK04 cells are float32 volts: values that do not fit a u16 of mV
 * (negative, huge, infinite, NaN) must still decode without UB. */
START_TEST(test_jk04_cell_floats_that_do_not_fit_decode_safely)
{
	static const struct {
		const char *name;
		uint32_t bits;
		bool exact;
		uint16_t want_mv;
	} rows[] = {
		{ .name = "3.3 V", .bits = 0x40533333u, .exact = true, .want_mv = 3300 },
		{ .name = "0 V", .bits = 0x00000000u, .exact = true, .want_mv = 0 },
		{ .name = "65.535 V", .bits = 0x428311ECu, .exact = true, .want_mv = 65535 },
		{ .name = "-0 V", .bits = 0x80000000u },
		{ .name = "-3.3 V", .bits = 0xC0533333u },
		{ .name = "70 V", .bits = 0x428C0000u },
		{ .name = "1e30 V", .bits = 0x7149F2CAu },
		{ .name = "-1e30 V", .bits = 0xF149F2CAu },
		{ .name = "+inf", .bits = 0x7F800000u },
		{ .name = "-inf", .bits = 0xFF800000u },
		{ .name = "NaN", .bits = 0x7FC00000u },
		{ .name = "signalling NaN", .bits = 0x7F800001u },
		{ .name = "denormal", .bits = 0x00000001u },
		{ .name = "largest float", .bits = 0x7F7FFFFFu },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		uint8_t f[JK_FRAME_LEN] = { 0x55, 0xAA, 0xEB, 0x90, 0x02, 0x01 };
		struct jk_sample s;
		struct jk_settings st;

		/* Every float field of the cell-info and settings layouts. */
		for (unsigned off = 6; off + 4 <= 214; off += 4)
			memcpy(f + off, &rows[i].bits, 4);
		memcpy(f + 222, &rows[i].bits, 4);
		f[214] = 0xFF;	/* 24 cells */
		f[215] = 0xFF;
		f[216] = 0xFF;
		su_seal(f);
		ck_assert_int_eq(jk_decode_cell_info(f, JK_PROTO_JK04, &s), 0);
		check_sample(f, JK_PROTO_JK04, &s);
		ck_assert_uint_eq(s.cell_count, 24);
		if (rows[i].exact) {
			for (unsigned c = 0; c < 24; c++)
				ck_assert_msg(s.cells_mv[c] == rows[i].want_mv, "%s: cell %u = %u mV",
					      rows[i].name, c + 1, s.cells_mv[c]);
			ck_assert_uint_eq(s.voltage_mv, 24u * rows[i].want_mv);
		}

		f[4] = 0x01;
		for (unsigned off = 6; off + 4 <= 118; off += 4)
			memcpy(f + off, &rows[i].bits, 4);
		su_seal(f);
		ck_assert_int_eq(jk_decode_settings(f, JK_PROTO_JK04, &st), 0);
		check_settings(JK_PROTO_JK04, &st);
	}
}
END_TEST

TCase *tcase_stream_props(void)
{
	TCase *tc = tcase_create("stream_props");

	/* Generous for slow machines under ASan; the tests take well under 1 s. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rechunking_a_clean_stream_yields_the_same_frames_and_counters);
	tcase_add_test(tc, test_random_bytes_never_yield_a_bad_frame_and_are_all_consumed);
	tcase_add_test(tc, test_pure_random_bytes_in_random_chunks_are_all_consumed);
	tcase_add_test(tc, test_rechunking_a_corrupted_stream_yields_the_same_tokens_and_counters);
	tcase_add_test(tc, test_random_valid_frame_decodes_in_every_protocol);
	tcase_add_test(tc, test_jk04_cell_floats_that_do_not_fit_decode_safely);
	return tc;
}
