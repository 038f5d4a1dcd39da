/*
 * test_stream — unit tests for jk_stream, the reassembler of BMS
 * notifications into 300-byte frames (jkbms-ble.md §3.4).
 *
 * Every frame here is built by the test itself (stream_util.h); nothing is
 * read from ../shared/vectors.  Each case checks the tokens handed out and
 * all five counters exactly, and the byte conservation rule: every byte fed
 * ends up in a frame, in skipped_bytes, or pending in s.len.
 */
#include <stdio.h>

#include "stream_util.h"
#include "tests.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Test streams are short: a few frames plus some junk. */
#define STREAM_MAX 2048

struct stream_buf {
	uint8_t b[STREAM_MAX];
	size_t n;
};

static void put(struct stream_buf *sb, const void *p, size_t n)
{
	ck_assert_uint_le(sb->n + n, STREAM_MAX);
	memcpy(sb->b + sb->n, p, n);
	sb->n += n;
}

static void put_junk(struct stream_buf *sb, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)(first + i);

		if (su_is_lead(b))
			b ^= 0x01;
		put(sb, &b, 1);
	}
}

/* ------------------------------------------------------------ basics */

START_TEST(test_sum8_is_the_low_byte_of_the_plain_sum)
{
	static const struct {
		const char *name;
		uint8_t bytes[20];
		size_t len;
		uint8_t want;
	} rows[] = {
		{ .name = "empty", .len = 0, .want = 0x00 },
		{ .name = "wraps", .bytes = { 0xFF, 0x01 }, .len = 2, .want = 0x00 },
		{ .name = "wraps twice", .bytes = { 0xFF, 0xFF, 0xFF }, .len = 3, .want = 0xFD },
		{ .name = "ack", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01, 0x01 }, .len = 19,
		  .want = 0x44 },
		{ .name = "0x97 request", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0x97 }, .len = 19,
		  .want = 0x11 },
		{ .name = "0x96 request", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0x96 }, .len = 19,
		  .want = 0x10 },
		{ .name = "charge on", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0x1D, 0x04, 0x01 },
		  .len = 19, .want = 0x9C },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		ck_assert_msg(jk_sum8(rows[i].bytes, rows[i].len) == rows[i].want,
			      "%s: 0x%02X, want 0x%02X", rows[i].name,
			      jk_sum8(rows[i].bytes, rows[i].len), rows[i].want);

	uint8_t f[JK_FRAME_LEN];

	su_frame(f, 0x02, 7, 1);
	ck_assert_uint_eq(jk_sum8(f, JK_FRAME_LEN - 1), f[JK_FRAME_LEN - 1]);
}
END_TEST

START_TEST(test_init_starts_empty_with_zero_counters)
{
	struct jk_stream s;

	memset(&s, 0xA5, sizeof(s));
	jk_stream_init(&s);
	ck_assert_uint_eq(s.len, 0);
	su_assert_stats(&s.stats, ((struct su_stats){ 0 }));
}
END_TEST

/* ------------------------------------------------------------ whole frames */

START_TEST(test_whole_frame_in_one_chunk_is_emitted)
{
	static const struct {
		uint8_t type;
		uint8_t counter;
	} rows[] = {
		{ .type = 0x01, .counter = 0x00 },	/* settings */
		{ .type = 0x02, .counter = 0xDD },	/* cell info */
		{ .type = 0x03, .counter = 0xFF },	/* device info */
		{ .type = 0x05, .counter = 0x55 },	/* logbook, counter looks like a lead byte */
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		uint8_t f[JK_FRAME_LEN];
		struct jk_stream s;
		struct jk_token tok;
		struct su_result r = { 0 };

		su_frame(f, rows[i].type, rows[i].counter, (unsigned)i);
		jk_stream_init(&s);
		ck_assert_uint_eq(jk_stream_feed(&s, f, sizeof(f), &tok), JK_FRAME_LEN);
		ck_assert_int_eq(tok.kind, JK_TOKEN_FRAME);
		ck_assert_uint_eq(tok.len, JK_FRAME_LEN);
		ck_assert_mem_eq(tok.data, f, JK_FRAME_LEN);
		su_drain(&s, &r);
		ck_assert_uint_eq(r.ntok, 0);
		ck_assert_uint_eq(s.len, 0);
		su_assert_stats(&s.stats, ((struct su_stats){ .frames = 1 }));
	}
}
END_TEST

START_TEST(test_frame_in_small_chunks_is_emitted_with_its_last_byte)
{
	static const size_t chunk_sizes[] = { 1, 2, 3, 7, 20, 64, 128, 299, 300 };

	for (size_t i = 0; i < ARRAY_SIZE(chunk_sizes); i++) {
		size_t c = chunk_sizes[i];
		uint8_t f[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(f, 0x02, (uint8_t)i, 3);
		jk_stream_init(&s);
		for (size_t off = 0; off < JK_FRAME_LEN; off += c) {
			size_t n = off + c > JK_FRAME_LEN ? JK_FRAME_LEN - off : c;

			ck_assert_uint_eq(su_feed_chunk(&s, f + off, n, &r), n);
			/* Nothing before the chunk that carries byte 299. */
			ck_assert_uint_eq(r.ntok, off + n == JK_FRAME_LEN ? 1 : 0);
		}
		su_drain(&s, &r);
		ck_assert_uint_eq(r.ntok, 1);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		ck_assert_uint_eq(s.len, 0);
		su_assert_stats(&s.stats, ((struct su_stats){ .frames = 1 }));
	}
}
END_TEST

START_TEST(test_header_anywhere_inside_a_chunk_is_found)
{
	/* Junk ahead of the frame puts its header at (junk % chunk) in a chunk. */
	static const struct {
		size_t junk;
		size_t chunk;
	} rows[] = {
		{ .junk = 1, .chunk = 20 }, { .junk = 4, .chunk = 20 },
		{ .junk = 16, .chunk = 20 }, { .junk = 17, .chunk = 20 },
		{ .junk = 19, .chunk = 20 }, { .junk = 33, .chunk = 20 },
		{ .junk = 150, .chunk = 20 }, { .junk = 299, .chunk = 20 },
		{ .junk = 5, .chunk = 0 }, { .junk = 400, .chunk = 0 },
		{ .junk = 9, .chunk = 128 }, { .junk = 127, .chunk = 128 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct stream_buf sb = { .n = 0 };
		uint8_t f[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(f, 0x02, 1, (unsigned)i);
		put_junk(&sb, rows[i].junk, (uint8_t)i);
		put(&sb, f, sizeof(f));
		jk_stream_init(&s);
		su_feed_chunked(&s, sb.b, sb.n, &rows[i].chunk, 1, &r);
		ck_assert_msg(r.ntok == 1, "junk %zu chunk %zu: %zu tokens", rows[i].junk,
			      rows[i].chunk, r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 1, .skipped_bytes = (uint32_t)rows[i].junk }));
		ck_assert_uint_eq(r.consumed, sb.n);
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

START_TEST(test_header_split_across_chunks_is_found)
{
	/* Chunk boundaries inside the 4 header bytes; 5 junk bytes lead. */
	static const struct {
		const char *name;
		size_t cuts[3];		/* header bytes in each chunk but the last */
		size_t ncuts;
	} rows[] = {
		{ .name = "1|3", .cuts = { 1 }, .ncuts = 1 },
		{ .name = "2|2", .cuts = { 2 }, .ncuts = 1 },
		{ .name = "3|1", .cuts = { 3 }, .ncuts = 1 },
		{ .name = "1|1|1|1", .cuts = { 1, 1, 1 }, .ncuts = 3 },
		{ .name = "2|1|1", .cuts = { 2, 1 }, .ncuts = 2 },
		{ .name = "4|type", .cuts = { 4 }, .ncuts = 1 },
	};
	const size_t junk = 5;

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct stream_buf sb = { .n = 0 };
		uint8_t f[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };
		size_t off = 0, hdr = 0;

		su_frame(f, 0x03, 0x20, (unsigned)i);
		put_junk(&sb, junk, 0x10);
		put(&sb, f, sizeof(f));
		jk_stream_init(&s);
		for (size_t k = 0; k < rows[i].ncuts; k++) {
			size_t n = (k == 0 ? junk : 0) + rows[i].cuts[k];

			su_feed_chunk(&s, sb.b + off, n, &r);
			off += n;
			hdr += rows[i].cuts[k];
			ck_assert_msg(s.len == hdr, "%s: %zu bytes pending after %zu header bytes",
				      rows[i].name, s.len, hdr);
			ck_assert_uint_eq(r.ntok, 0);
		}
		su_feed_chunk(&s, sb.b + off, sb.n - off, &r);
		su_drain(&s, &r);
		ck_assert_msg(r.ntok == 1, "%s: %zu tokens", rows[i].name, r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 1, .skipped_bytes = (uint32_t)junk }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

START_TEST(test_two_frames_in_one_chunk_are_both_emitted_in_order)
{
	static const struct {
		const char *name;
		uint8_t type1, type2;
		size_t gap;		/* junk between the frames */
		size_t chunk;		/* 0: all in one chunk */
	} rows[] = {
		{ .name = "cell+cell", .type1 = 0x02, .type2 = 0x02 },
		{ .name = "settings+devinfo", .type1 = 0x01, .type2 = 0x03 },
		{ .name = "devinfo+settings, gap", .type1 = 0x03, .type2 = 0x01, .gap = 3 },
		{ .name = "cell+logbook, 384-byte chunks", .type1 = 0x02, .type2 = 0x05,
		  .chunk = 384 },
		{ .name = "cell+cell, 20-byte chunks, gap", .type1 = 0x02, .type2 = 0x02,
		  .gap = 7, .chunk = 20 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct stream_buf sb = { .n = 0 };
		uint8_t f1[JK_FRAME_LEN], f2[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(f1, rows[i].type1, 1, 11);
		su_frame(f2, rows[i].type2, 2, 12);
		put(&sb, f1, sizeof(f1));
		put_junk(&sb, rows[i].gap, 0x30);
		put(&sb, f2, sizeof(f2));
		jk_stream_init(&s);
		su_feed_chunked(&s, sb.b, sb.n, &rows[i].chunk, 1, &r);
		ck_assert_msg(r.ntok == 2, "%s: %zu tokens", rows[i].name, r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f1, JK_FRAME_LEN);
		su_assert_token(&r, 1, JK_TOKEN_FRAME, f2, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 2, .skipped_bytes = (uint32_t)rows[i].gap }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

/* ------------------------------------------------------------ acks and AT */

START_TEST(test_frame_ack_and_at_in_one_chunk_give_frame_then_ack)
{
	struct stream_buf sb = { .n = 0 };
	uint8_t f[JK_FRAME_LEN];
	struct jk_stream s;
	struct jk_token tok;
	const uint8_t *in;
	size_t n, used;

	/* The 324-byte block of jkbms-ble.md §3.1: frame + ack + "AT\r\n". */
	su_frame(f, 0x03, 0x00, 5);
	put(&sb, f, sizeof(f));
	put(&sb, su_ack, sizeof(su_ack));
	put(&sb, su_at, sizeof(su_at));
	ck_assert_uint_eq(sb.n, 324);
	jk_stream_init(&s);
	in = sb.b;
	n = sb.n;

	used = jk_stream_feed(&s, in, n, &tok);
	ck_assert_uint_eq(used, JK_FRAME_LEN);
	ck_assert_int_eq(tok.kind, JK_TOKEN_FRAME);
	ck_assert_uint_eq(tok.len, JK_FRAME_LEN);
	ck_assert_mem_eq(tok.data, f, JK_FRAME_LEN);
	in += used;
	n -= used;

	used = jk_stream_feed(&s, in, n, &tok);
	ck_assert_uint_eq(used, JK_CMD_LEN);
	ck_assert_int_eq(tok.kind, JK_TOKEN_ACK);
	ck_assert_uint_eq(tok.len, JK_CMD_LEN);
	ck_assert_mem_eq(tok.data, su_ack, JK_CMD_LEN);
	in += used;
	n -= used;

	used = jk_stream_feed(&s, in, n, &tok);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(tok.kind, JK_TOKEN_NONE);

	ck_assert_uint_eq(s.len, 0);
	su_assert_stats(&s.stats, ((struct su_stats){
		.frames = 1, .skipped_bytes = 24, .acks = 1, .at_tokens = 1 }));
}
END_TEST

START_TEST(test_ack_split_across_chunks_is_recognised)
{
	for (size_t cut = 1; cut < JK_CMD_LEN; cut++) {
		struct jk_stream s;
		struct su_result r = { 0 };

		jk_stream_init(&s);
		su_feed_chunk(&s, su_ack, cut, &r);
		ck_assert_uint_eq(r.ntok, 0);
		ck_assert_uint_eq(s.len, cut);
		su_feed_chunk(&s, su_ack + cut, JK_CMD_LEN - cut, &r);
		su_drain(&s, &r);
		ck_assert_msg(r.ntok == 1, "cut %zu: %zu tokens", cut, r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_ACK, su_ack, JK_CMD_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){ .skipped_bytes = 20, .acks = 1 }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

START_TEST(test_junk_before_a_frame_is_counted_exactly)
{
	static const struct {
		const char *name;
		uint8_t bytes[48];
		size_t len;
		uint32_t acks, at_tokens;
	} rows[] = {
		{ .name = "plain junk", .bytes = { 0x00, 0x01, 0x02, 0xFE }, .len = 4 },
		{ .name = "tail of a header", .bytes = { 0xEB, 0x90 }, .len = 2 },
		{ .name = "lone 0x55", .bytes = { 0x55, 0x00 }, .len = 2 },
		{ .name = "0x55 right before the header", .bytes = { 0x55 }, .len = 1 },
		{ .name = "55 AA", .bytes = { 0x55, 0xAA }, .len = 2 },
		{ .name = "55 AA EB", .bytes = { 0x55, 0xAA, 0xEB }, .len = 3 },
		{ .name = "55 AA EB then junk", .bytes = { 0x55, 0xAA, 0xEB, 0x00 }, .len = 4 },
		{ .name = "lone 0xAA", .bytes = { 0xAA, 0x01 }, .len = 2 },
		{ .name = "command header prefix", .bytes = { 0xAA, 0x55, 0x90 }, .len = 3 },
		{ .name = "command header, frame inside its 20 bytes",
		  .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0x00 }, .len = 5 },
		{ .name = "lone A", .bytes = { 'A' }, .len = 1 },
		{ .name = "AT without LF", .bytes = { 'A', 'T', '\r' }, .len = 3 },
		{ .name = "A then AT", .bytes = { 'A', 'A', 'T', '\r', '\n' }, .len = 5,
		  .at_tokens = 1 },
		{ .name = "AT twice", .bytes = { 'A', 'T', '\r', '\n', 'A', 'T', '\r', '\n' },
		  .len = 8, .at_tokens = 2 },
		{ .name = "ack", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01, 0x01,
					    [19] = 0x44 }, .len = 20, .acks = 1 },
		{ .name = "ack then AT", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01, 0x01,
						    [19] = 0x44, 'A', 'T', '\r', '\n' },
		  .len = 24, .acks = 1, .at_tokens = 1 },
		{ .name = "AT then ack", .bytes = { 'A', 'T', '\r', '\n', 0xAA, 0x55, 0x90, 0xEB,
						    0xC8, 0x01, 0x01, [23] = 0x44 },
		  .len = 24, .acks = 1, .at_tokens = 1 },
		{ .name = "ack with a bad checksum", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01,
								0x01, [19] = 0x45 }, .len = 20 },
		{ .name = "0x97 request echoed back", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0x97,
								 [19] = 0x11 }, .len = 20 },
	};
	static const size_t chunkings[] = { 0, 1, 20 };

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		for (size_t c = 0; c < ARRAY_SIZE(chunkings); c++) {
			struct stream_buf sb = { .n = 0 };
			uint8_t f[JK_FRAME_LEN];
			struct jk_stream s;
			struct su_result r = { 0 };

			su_frame(f, 0x02, 9, (unsigned)i);
			put(&sb, rows[i].bytes, rows[i].len);
			put(&sb, f, sizeof(f));
			jk_stream_init(&s);
			su_feed_chunked(&s, sb.b, sb.n, &chunkings[c], 1, &r);
			ck_assert_msg(r.ntok == rows[i].acks + 1, "%s, chunk %zu: %zu tokens",
				      rows[i].name, chunkings[c], r.ntok);
			for (size_t k = 0; k < rows[i].acks; k++)
				su_assert_token(&r, k, JK_TOKEN_ACK, su_ack, JK_CMD_LEN);
			su_assert_token(&r, rows[i].acks, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
			su_assert_stats(&s.stats, ((struct su_stats){
				.frames = 1, .skipped_bytes = (uint32_t)rows[i].len,
				.acks = rows[i].acks, .at_tokens = rows[i].at_tokens }));
			ck_assert_uint_eq(s.len, 0);
			ck_assert_uint_eq(r.consumed, sb.n);
		}
	}
}
END_TEST

/* ------------------------------------------------------------ rejection */

/*
 * Frame A is cut after `keep` bytes (a lost notification) and frame B
 * follows, so B's header lies inside the 300-byte candidate that starts at
 * A's header.  The candidate must fail, count once, and B must be found.
 */
START_TEST(test_bad_checksum_is_rejected_and_header_inside_it_is_found)
{
	static const size_t keeps[] = { 4, 5, 6, 21, 150, 296, 299, 300 };
	static const size_t chunkings[] = { 0, 1, 20, 256 };

	for (size_t i = 0; i < ARRAY_SIZE(keeps); i++) {
		for (size_t c = 0; c < ARRAY_SIZE(chunkings); c++) {
			struct stream_buf sb = { .n = 0 };
			uint8_t a[JK_FRAME_LEN], b[JK_FRAME_LEN];
			struct jk_stream s;
			struct su_result r = { 0 };

			su_frame(a, 0x02, 0x10, 21);
			su_frame(b, 0x02, 0x11, 22);
			if (keeps[i] == JK_FRAME_LEN)
				a[JK_FRAME_LEN - 1] ^= 0x01;	/* complete frame, wrong sum */
			put(&sb, a, keeps[i]);
			put(&sb, b, sizeof(b));
			/* Precondition: the candidate at 0 is really invalid. */
			ck_assert(su_sum8(sb.b, JK_FRAME_LEN - 1) != sb.b[JK_FRAME_LEN - 1] ||
				  sb.b[4] == 0x55);

			jk_stream_init(&s);
			su_feed_chunked(&s, sb.b, sb.n, &chunkings[c], 1, &r);
			ck_assert_msg(r.ntok == 1, "keep %zu, chunk %zu: %zu tokens", keeps[i],
				      chunkings[c], r.ntok);
			su_assert_token(&r, 0, JK_TOKEN_FRAME, b, JK_FRAME_LEN);
			su_assert_stats(&s.stats, ((struct su_stats){
				.frames = 1, .bad_checksums = 1,
				.skipped_bytes = (uint32_t)keeps[i] }));
			ck_assert_uint_eq(s.len, 0);
		}
	}
}
END_TEST

START_TEST(test_lone_bad_checksum_frame_is_rejected_and_counted)
{
	/* Corruption anywhere: header-adjacent, payload, the checksum itself. */
	static const size_t flips[] = { 4, 5, 6, 100, 298, 299 };

	for (size_t i = 0; i < ARRAY_SIZE(flips); i++) {
		uint8_t f[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(f, 0x02, 0x01, 30);
		f[flips[i]] ^= 0x02;	/* type 0x02 becomes 0x00 */
		if (su_is_lead(f[flips[i]]))	/* keep the rescan free of leads */
			f[flips[i]] ^= 0x06;
		jk_stream_init(&s);
		su_feed_chunked(&s, f, sizeof(f), NULL, 0, &r);
		ck_assert_msg(r.ntok == 0, "flip %zu: %zu tokens", flips[i], r.ntok);
		su_assert_stats(&s.stats, ((struct su_stats){
			.bad_checksums = 1, .skipped_bytes = JK_FRAME_LEN }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

START_TEST(test_unknown_frame_type_is_rejected_and_counted)
{
	static const uint8_t types[] = { 0x00, 0x04, 0x06, 0x07, 0x55, 0x90, 0xC8, 0xFF };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		struct stream_buf sb = { .n = 0 };
		uint8_t bad[JK_FRAME_LEN], good[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(bad, types[i], 0x01, 40);	/* checksum valid */
		ck_assert_uint_eq(su_sum8(bad, JK_FRAME_LEN - 1), bad[JK_FRAME_LEN - 1]);
		su_frame(good, 0x02, 0x02, 41);
		put(&sb, bad, sizeof(bad));
		put(&sb, good, sizeof(good));
		jk_stream_init(&s);
		su_feed_chunked(&s, sb.b, sb.n, NULL, 0, &r);
		ck_assert_msg(r.ntok == 1, "type 0x%02X: %zu tokens", types[i], r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, good, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 1, .bad_checksums = 1, .skipped_bytes = JK_FRAME_LEN }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

/* ------------------------------------------------------------ reset and pending */

START_TEST(test_reset_drops_partial_frame_but_keeps_counters)
{
	struct stream_buf sb = { .n = 0 };
	uint8_t f1[JK_FRAME_LEN], f2[JK_FRAME_LEN], f3[JK_FRAME_LEN];
	struct jk_stream s;
	struct jk_stream_stats before;
	struct su_result r = { 0 };

	su_frame(f1, 0x02, 1, 50);
	su_frame(f2, 0x02, 2, 51);
	su_frame(f3, 0x02, 3, 52);
	put_junk(&sb, 7, 0x01);
	put(&sb, f1, sizeof(f1));
	put(&sb, su_ack, sizeof(su_ack));
	put(&sb, f2, 150);
	jk_stream_init(&s);
	su_feed_chunked(&s, sb.b, sb.n, NULL, 0, &r);
	ck_assert_uint_eq(r.ntok, 2);
	su_assert_token(&r, 0, JK_TOKEN_FRAME, f1, JK_FRAME_LEN);
	su_assert_token(&r, 1, JK_TOKEN_ACK, su_ack, JK_CMD_LEN);
	ck_assert_uint_eq(s.len, 150);
	su_assert_stats(&s.stats, ((struct su_stats){
		.frames = 1, .skipped_bytes = 27, .acks = 1 }));

	before = s.stats;
	jk_stream_reset(&s);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_mem_eq(&s.stats, &before, sizeof(before));

	/* The rest of f2 has no header of its own: it is junk now. */
	su_feed_chunked(&s, f2 + 150, JK_FRAME_LEN - 150, NULL, 0, &r);
	ck_assert_uint_eq(r.ntok, 2);
	su_assert_stats(&s.stats, ((struct su_stats){
		.frames = 1, .skipped_bytes = 27 + 150, .acks = 1 }));

	/* And the stream works as before. */
	su_feed_chunked(&s, f3, sizeof(f3), NULL, 0, &r);
	ck_assert_uint_eq(r.ntok, 3);
	su_assert_token(&r, 2, JK_TOKEN_FRAME, f3, JK_FRAME_LEN);
	su_assert_stats(&s.stats, ((struct su_stats){
		.frames = 2, .skipped_bytes = 27 + 150, .acks = 1 }));
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

START_TEST(test_partial_frame_then_reset_then_full_frame_yields_one_frame)
{
	static const size_t partials[] = { 1, 2, 3, 4, 5, 20, 150, 299 };

	for (size_t i = 0; i < ARRAY_SIZE(partials); i++) {
		size_t p = partials[i];
		uint8_t old[JK_FRAME_LEN], f[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };

		su_frame(old, 0x02, 0x70, 60);
		su_frame(f, 0x02, 0x71, 61);

		jk_stream_init(&s);
		su_feed_chunked(&s, old, p, NULL, 0, &r);
		ck_assert_uint_eq(s.len, p);
		jk_stream_reset(&s);
		ck_assert_uint_eq(s.len, 0);
		su_feed_chunked(&s, f, sizeof(f), NULL, 0, &r);
		ck_assert_msg(r.ntok == 1, "partial %zu: %zu tokens", p, r.ntok);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){ .frames = 1 }));
		ck_assert_uint_eq(s.len, 0);

		/* Control: without the reset the stale bytes cost a candidate
		 * (once the header was complete) and are counted as skipped. */
		struct su_result r2 = { 0 };

		jk_stream_init(&s);
		su_feed_chunked(&s, old, p, NULL, 0, &r2);
		su_feed_chunked(&s, f, sizeof(f), NULL, 0, &r2);
		ck_assert_uint_eq(r2.ntok, 1);
		su_assert_token(&r2, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 1, .bad_checksums = p >= 4 ? 1 : 0,
			.skipped_bytes = (uint32_t)p }));
	}
}
END_TEST

START_TEST(test_bytes_after_last_frame_stay_pending)
{
	static const struct {
		const char *name;
		size_t frame_prefix;	/* bytes of a second frame, or 0 */
		uint8_t bytes[20];	/* otherwise these */
		size_t len;
		size_t pending;
	} rows[] = {
		{ .name = "1 header byte", .frame_prefix = 1, .pending = 1 },
		{ .name = "3 header bytes", .frame_prefix = 3, .pending = 3 },
		{ .name = "header", .frame_prefix = 4, .pending = 4 },
		{ .name = "header + type", .frame_prefix = 5, .pending = 5 },
		{ .name = "half a frame", .frame_prefix = 150, .pending = 150 },
		{ .name = "all but the checksum", .frame_prefix = 299, .pending = 299 },
		{ .name = "ack prefix", .bytes = { 0xAA, 0x55 }, .len = 2, .pending = 2 },
		{ .name = "ack but its checksum", .bytes = { 0xAA, 0x55, 0x90, 0xEB, 0xC8, 0x01,
							     0x01 }, .len = 19, .pending = 19 },
		{ .name = "A", .bytes = { 'A' }, .len = 1, .pending = 1 },
		{ .name = "AT\\r", .bytes = { 'A', 'T', '\r' }, .len = 3, .pending = 3 },
		{ .name = "junk", .bytes = { 0x00, 0x01, 0x02 }, .len = 3, .pending = 0 },
		{ .name = "junk then 55 AA", .bytes = { 0x00, 0x01, 0x55, 0xAA }, .len = 4,
		  .pending = 2 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct stream_buf sb = { .n = 0 };
		uint8_t f[JK_FRAME_LEN], next[JK_FRAME_LEN];
		struct jk_stream s;
		struct su_result r = { 0 };
		size_t tail;

		su_frame(f, 0x02, 1, 70);
		su_frame(next, 0x02, 2, 71);
		put(&sb, f, sizeof(f));
		if (rows[i].frame_prefix)
			put(&sb, next, rows[i].frame_prefix);
		else
			put(&sb, rows[i].bytes, rows[i].len);
		tail = sb.n - JK_FRAME_LEN;
		jk_stream_init(&s);
		su_feed_chunked(&s, sb.b, sb.n, NULL, 0, &r);
		ck_assert_uint_eq(r.ntok, 1);
		su_assert_token(&r, 0, JK_TOKEN_FRAME, f, JK_FRAME_LEN);
		ck_assert_msg(s.len == rows[i].pending, "%s: s.len %zu, want %zu", rows[i].name,
			      s.len, rows[i].pending);
		ck_assert_uint_eq(r.consumed, sb.n);
		su_assert_stats(&s.stats, ((struct su_stats){
			.frames = 1, .skipped_bytes = (uint32_t)(tail - rows[i].pending) }));
		su_assert_conserved(&s, sb.n);

		if (!rows[i].frame_prefix)
			continue;
		/* The pending frame completes with the next notification. */
		su_feed_chunked(&s, next + rows[i].frame_prefix,
				JK_FRAME_LEN - rows[i].frame_prefix, NULL, 0, &r);
		ck_assert_uint_eq(r.ntok, 2);
		su_assert_token(&r, 1, JK_TOKEN_FRAME, next, JK_FRAME_LEN);
		su_assert_stats(&s.stats, ((struct su_stats){ .frames = 2 }));
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

START_TEST(test_empty_feed_consumes_nothing_and_emits_nothing)
{
	uint8_t f[JK_FRAME_LEN];
	struct jk_stream s;
	struct jk_token tok;

	su_frame(f, 0x02, 1, 80);
	jk_stream_init(&s);
	ck_assert_uint_eq(jk_stream_feed(&s, f, 0, &tok), 0);
	ck_assert_int_eq(tok.kind, JK_TOKEN_NONE);
	ck_assert_uint_eq(jk_stream_feed(&s, f, 10, &tok), 10);
	ck_assert_int_eq(tok.kind, JK_TOKEN_NONE);
	ck_assert_uint_eq(jk_stream_feed(&s, f, 0, &tok), 0);
	ck_assert_int_eq(tok.kind, JK_TOKEN_NONE);
	ck_assert_uint_eq(s.len, 10);
	su_assert_stats(&s.stats, ((struct su_stats){ 0 }));
}
END_TEST

TCase *tcase_stream(void)
{
	TCase *tc = tcase_create("stream");

	tcase_add_test(tc, test_sum8_is_the_low_byte_of_the_plain_sum);
	tcase_add_test(tc, test_init_starts_empty_with_zero_counters);
	tcase_add_test(tc, test_whole_frame_in_one_chunk_is_emitted);
	tcase_add_test(tc, test_frame_in_small_chunks_is_emitted_with_its_last_byte);
	tcase_add_test(tc, test_header_anywhere_inside_a_chunk_is_found);
	tcase_add_test(tc, test_header_split_across_chunks_is_found);
	tcase_add_test(tc, test_two_frames_in_one_chunk_are_both_emitted_in_order);
	tcase_add_test(tc, test_frame_ack_and_at_in_one_chunk_give_frame_then_ack);
	tcase_add_test(tc, test_ack_split_across_chunks_is_recognised);
	tcase_add_test(tc, test_junk_before_a_frame_is_counted_exactly);
	tcase_add_test(tc, test_bad_checksum_is_rejected_and_header_inside_it_is_found);
	tcase_add_test(tc, test_lone_bad_checksum_frame_is_rejected_and_counted);
	tcase_add_test(tc, test_unknown_frame_type_is_rejected_and_counted);
	tcase_add_test(tc, test_reset_drops_partial_frame_but_keeps_counters);
	tcase_add_test(tc, test_partial_frame_then_reset_then_full_frame_yields_one_frame);
	tcase_add_test(tc, test_bytes_after_last_frame_stay_pending);
	tcase_add_test(tc, test_empty_feed_consumes_nothing_and_emits_nothing);
	return tc;
}
