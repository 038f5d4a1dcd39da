/*
 * jk_stream — reassembly of JK-BMS notifications into 300-byte frames.
 *
 * The buffer holds at most one candidate.  Its first bytes say what it is:
 * the response header 55 AA EB 90 (a data frame, 300 bytes), the command
 * header AA 55 90 EB (the BMS's 20-byte ack), "AT\r\n" (module junk), or the
 * prefix of one of them.  Anything else is junk and is dropped one byte at a
 * time, so a header that starts inside a rejected candidate is still found
 * (jkbms-ble.md §3.4, batmon-ha's feed_frames).
 *
 * Invariant: every byte fed is, in the end, either part of a frame handed
 * out or counted in stats.skipped_bytes (acks and AT tokens included), or
 * still waiting in buf.  A token handed out stays in buf until the next call,
 * which drops it first (s->emitted).
 */
#include <string.h>

#include "jk_stream.h"

static const uint8_t hdr_frame[4] = { 0x55, 0xAA, 0xEB, 0x90 };
static const uint8_t hdr_cmd[4] = { 0xAA, 0x55, 0x90, 0xEB };
static const uint8_t tok_at[4] = { 'A', 'T', '\r', '\n' };

#define JK_ACK_TYPE 0xC8

enum lead {
	LEAD_UNKNOWN,	/* not classified yet (the cached value in struct jk_stream) */
	LEAD_NONE,	/* cannot be the start of anything we know */
	LEAD_PARTIAL,	/* fewer than 4 bytes, a prefix of a known lead */
	LEAD_FRAME,
	LEAD_CMD,
	LEAD_AT,
};

uint8_t jk_sum8(const uint8_t *p, size_t len)
{
	unsigned sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)sum;
}

static bool is_lead_byte(uint8_t b)
{
	return b == hdr_frame[0] || b == hdr_cmd[0] || b == tok_at[0];
}

static enum lead classify(const uint8_t *p, size_t len)
{
	static const struct {
		const uint8_t *bytes;
		enum lead lead;
	} leads[] = {
		{ hdr_frame, LEAD_FRAME }, { hdr_cmd, LEAD_CMD }, { tok_at, LEAD_AT },
	};
	size_t n = len < 4 ? len : 4;

	for (size_t i = 0; i < sizeof(leads) / sizeof(leads[0]); i++)
		if (memcmp(p, leads[i].bytes, n) == 0)
			return n == 4 ? leads[i].lead : LEAD_PARTIAL;
	return LEAD_NONE;
}

/* What buf starts with, remembered once 4 bytes are in: a frame arrives in
 * many small chunks, and each would otherwise classify it again. */
static enum lead lead_of(struct jk_stream *s)
{
	if (s->lead)
		return (enum lead)s->lead;
	if (s->len < 4)
		return classify(s->buf, s->len);
	s->lead = (uint8_t)classify(s->buf, s->len);
	return (enum lead)s->lead;
}

/* How many bytes the candidate in buf needs before it can be judged. */
static size_t wanted(struct jk_stream *s)
{
	switch (lead_of(s)) {
	case LEAD_FRAME:
		return JK_FRAME_LEN;
	case LEAD_CMD:
		return JK_CMD_LEN;
	default:
		return 4;
	}
}

static void drop(struct jk_stream *s, size_t k)
{
	memmove(s->buf, s->buf + k, s->len - k);
	s->len -= k;
	s->lead = 0;
	s->stats.skipped_bytes += k;
}

/* Drop the first byte and everything up to the next byte that may lead. */
static void resync(struct jk_stream *s)
{
	size_t k = 1;

	while (k < s->len && !is_lead_byte(s->buf[k]))
		k++;
	drop(s, k);
}

static bool frame_type_known(uint8_t type)
{
	return type == 0x01 || type == 0x02 || type == 0x03 || type == 0x05;
}

static void emit(struct jk_stream *s, struct jk_token *tok, enum jk_token_kind kind, size_t len)
{
	tok->kind = kind;
	tok->data = s->buf;
	tok->len = len;
	s->emitted = len;
}

/* Judge what buf holds; true when a token was handed out. */
static bool examine(struct jk_stream *s, struct jk_token *tok)
{
	while (s->len > 0) {
		switch (lead_of(s)) {
		case LEAD_UNKNOWN:
		case LEAD_NONE:
			resync(s);
			break;
		case LEAD_PARTIAL:
			return false;
		case LEAD_AT:
			s->stats.at_tokens++;
			drop(s, sizeof(tok_at));
			break;
		case LEAD_CMD:
			if (s->len < JK_CMD_LEN)
				return false;
			if (jk_sum8(s->buf, JK_CMD_LEN - 1) != s->buf[JK_CMD_LEN - 1]) {
				resync(s);
				break;
			}
			if (s->buf[4] == JK_ACK_TYPE) {
				s->stats.acks++;
				s->stats.skipped_bytes += JK_CMD_LEN;
				emit(s, tok, JK_TOKEN_ACK, JK_CMD_LEN);
				return true;
			}
			drop(s, JK_CMD_LEN);	/* a command echoed back: not ours to judge */
			break;
		case LEAD_FRAME:
			if (s->len < JK_FRAME_LEN)
				return false;
			if (jk_sum8(s->buf, JK_FRAME_LEN - 1) == s->buf[JK_FRAME_LEN - 1] &&
			    frame_type_known(s->buf[4])) {
				s->stats.frames++;
				emit(s, tok, JK_TOKEN_FRAME, JK_FRAME_LEN);
				return true;
			}
			s->stats.bad_checksums++;
			resync(s);
			break;
		}
	}
	return false;
}

/* Drop the token handed out by the previous call. */
static void retire(struct jk_stream *s)
{
	if (s->emitted == 0)
		return;
	memmove(s->buf, s->buf + s->emitted, s->len - s->emitted);
	s->len -= s->emitted;
	s->emitted = 0;
	s->lead = 0;
}

void jk_stream_init(struct jk_stream *s)
{
	memset(s, 0, sizeof(*s));
}

void jk_stream_reset(struct jk_stream *s)
{
	s->len = 0;
	s->emitted = 0;
	s->lead = 0;
}

size_t jk_stream_feed(struct jk_stream *s, const uint8_t *in, size_t n, struct jk_token *tok)
{
	size_t used = 0;

	tok->kind = JK_TOKEN_NONE;
	tok->data = NULL;
	tok->len = 0;
	retire(s);
	if (examine(s, tok))	/* what a resync left behind may be complete */
		return 0;

	while (used < n) {
		if (s->len == 0) {
			size_t k = 0;

			while (used + k < n && !is_lead_byte(in[used + k]))
				k++;
			s->stats.skipped_bytes += k;
			used += k;
			if (used == n)
				break;
		}
		size_t take = wanted(s) - s->len;

		if (take > n - used)
			take = n - used;
		memcpy(s->buf + s->len, in + used, take);
		s->len += take;
		used += take;
		if (examine(s, tok))
			break;
	}
	return used;
}
