/*
 * stream_util — test data and a driver shared by test_stream.c and
 * test_stream_props.c: frames the tests build themselves (never read from
 * ../shared/vectors), the BMS ack, a deterministic xorshift PRNG, and
 * feed_all(), which runs bytes through jk_stream exactly as the daemon
 * does and records every token (copied, since tok.data only lives until
 * the next call).
 */
#ifndef STREAM_UTIL_H
#define STREAM_UTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jk_stream.h"

/* The 20-byte ack (jkbms-ble.md §2.5). */
static const uint8_t su_ack[JK_CMD_LEN] = {
	0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44,
};
static const uint8_t su_at[4] = { 'A', 'T', '\r', '\n' };
static const uint8_t su_header[4] = { 0x55, 0xAA, 0xEB, 0x90 };

/* A byte that cannot start a frame, an ack or "AT" (0x55, 0xAA, 0x41). */
static inline bool su_is_lead(uint8_t b)
{
	return b == 0x55 || b == 0xAA || b == 0x41;
}

static inline uint8_t su_sum8(const uint8_t *p, size_t n)
{
	unsigned sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return (uint8_t)sum;
}

/*
 * A valid 300-byte frame: header, type, counter, a payload pattern that
 * depends on `seed` and contains no lead byte (so a rescan of its bytes
 * finds nothing), sum8 at 299.  Byte 298 is nudged so that the checksum is
 * not a lead byte either.
 */
static inline void su_frame(uint8_t f[JK_FRAME_LEN], uint8_t type, uint8_t counter, unsigned seed)
{
	memcpy(f, su_header, 4);
	f[4] = type;
	f[5] = counter;
	for (unsigned i = 6; i < JK_FRAME_LEN - 1; i++) {
		uint8_t b = (uint8_t)(i * 7u + seed * 13u + (i >> 3));

		f[i] = su_is_lead(b) ? (uint8_t)(b + 1) : b;
	}
	for (;;) {
		f[JK_FRAME_LEN - 1] = su_sum8(f, JK_FRAME_LEN - 1);
		if (!su_is_lead(f[JK_FRAME_LEN - 1]))
			break;
		f[JK_FRAME_LEN - 2]++;
		if (su_is_lead(f[JK_FRAME_LEN - 2]))
			f[JK_FRAME_LEN - 2]++;
	}
}

/* Fix the checksum of a frame whose payload the caller wrote. */
static inline void su_seal(uint8_t f[JK_FRAME_LEN])
{
	f[JK_FRAME_LEN - 1] = su_sum8(f, JK_FRAME_LEN - 1);
}

/* xorshift32: deterministic, seed must not be 0. */
static inline uint32_t su_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/* Uniform-enough in [lo, hi]. */
static inline uint32_t su_range(uint32_t *state, uint32_t lo, uint32_t hi)
{
	return lo + su_rand(state) % (hi - lo + 1);
}

/* A junk byte that is not a lead byte. */
static inline uint8_t su_junk_byte(uint32_t *state)
{
	uint8_t b;

	do
		b = (uint8_t)su_rand(state);
	while (su_is_lead(b));
	return b;
}

#ifndef SU_MAX_TOKENS
#define SU_MAX_TOKENS 128
#endif

struct su_token {
	enum jk_token_kind kind;
	size_t len;
	uint8_t data[JK_FRAME_LEN];
};

struct su_result {
	struct su_token tok[SU_MAX_TOKENS];
	size_t ntok;
	size_t consumed;	/* sum of what jk_stream_feed returned */
};

/* Record a token; ck_abort if the table is full. */
static inline void su_record(struct su_result *r, const struct jk_token *t)
{
	ck_assert_msg(r->ntok < SU_MAX_TOKENS, "more than %d tokens", SU_MAX_TOKENS);
	ck_assert_msg(t->data != NULL, "token without data");
	ck_assert_uint_le(t->len, JK_FRAME_LEN);
	r->tok[r->ntok].kind = t->kind;
	r->tok[r->ntok].len = t->len;
	memcpy(r->tok[r->ntok].data, t->data, t->len);
	r->ntok++;
}

/*
 * Feed one notification the way the daemon does: call jk_stream_feed until
 * the chunk is consumed.  Returns the bytes consumed.  A call may complete a
 * token from bytes already buffered (consuming nothing); a call that neither
 * consumes nor completes anything while input is left would loop forever
 * and fails the test instead.
 */
static inline size_t su_feed_chunk(struct jk_stream *s, const uint8_t *in, size_t n,
				   struct su_result *r)
{
	size_t total = 0;
	struct jk_token tok;

	while (n > 0) {
		size_t used = jk_stream_feed(s, in, n, &tok);

		ck_assert_uint_le(used, n);
		ck_assert_msg(used > 0 || tok.kind != JK_TOKEN_NONE,
			      "jk_stream_feed made no progress with %zu bytes left", n);
		if (tok.kind != JK_TOKEN_NONE)
			su_record(r, &tok);
		in += used;
		n -= used;
		total += used;
	}
	r->consumed += total;
	return total;
}

/*
 * After the last chunk: call with no input until nothing more completes.
 * This also retires the last token, so s->len then counts only pending
 * bytes.
 */
static inline void su_drain(struct jk_stream *s, struct su_result *r)
{
	static const uint8_t none[1];
	struct jk_token tok;

	for (unsigned guard = 0;; guard++) {
		ck_assert_msg(guard < JK_FRAME_LEN, "jk_stream_feed keeps emitting with no input");
		ck_assert_uint_eq(jk_stream_feed(s, none, 0, &tok), 0);
		if (tok.kind == JK_TOKEN_NONE)
			return;
		su_record(r, &tok);
	}
}

/* Feed `in` in chunks of the given sizes (cycled; 0 = all at once), then drain. */
static inline void su_feed_chunked(struct jk_stream *s, const uint8_t *in, size_t n,
				   const size_t *sizes, size_t nsizes, struct su_result *r)
{
	size_t off = 0;

	for (size_t i = 0; off < n; i++) {
		size_t c = nsizes ? sizes[i % nsizes] : 0;

		if (c == 0 || c > n - off)
			c = n - off;
		su_feed_chunk(s, in + off, c, r);
		off += c;
	}
	su_drain(s, r);
}

/* Token i is of `kind` and holds exactly data[0..len). */
static inline void su_assert_token(const struct su_result *r, size_t i, enum jk_token_kind kind,
				   const uint8_t *data, size_t len)
{
	ck_assert_msg(i < r->ntok, "token %zu missing (%zu tokens)", i, r->ntok);
	ck_assert_msg(r->tok[i].kind == kind, "token %zu: kind %d, want %d", i,
		      (int)r->tok[i].kind, (int)kind);
	ck_assert_uint_eq(r->tok[i].len, len);
	ck_assert_mem_eq(r->tok[i].data, data, len);
}

struct su_stats {
	uint32_t frames, bad_checksums, skipped_bytes, acks, at_tokens;
};

#define su_assert_stats(got, want) do {							\
	const struct jk_stream_stats *g_ = (got);						\
	const struct su_stats w_ = (want);							\
	ck_assert_msg(g_->frames == w_.frames, "frames %u, want %u", g_->frames, w_.frames);	\
	ck_assert_msg(g_->bad_checksums == w_.bad_checksums, "bad_checksums %u, want %u",	\
		      g_->bad_checksums, w_.bad_checksums);					\
	ck_assert_msg(g_->skipped_bytes == w_.skipped_bytes, "skipped_bytes %u, want %u",	\
		      g_->skipped_bytes, w_.skipped_bytes);					\
	ck_assert_msg(g_->acks == w_.acks, "acks %u, want %u", g_->acks, w_.acks);		\
	ck_assert_msg(g_->at_tokens == w_.at_tokens, "at_tokens %u, want %u",			\
		      g_->at_tokens, w_.at_tokens);						\
} while (0)

/* Every byte fed is part of a frame, counted as skipped, or still pending. */
#define su_assert_conserved(s, total) \
	ck_assert_uint_eq((uint64_t)(s)->stats.frames * JK_FRAME_LEN + (s)->stats.skipped_bytes + \
			  (s)->len, (uint64_t)(total))

#endif
