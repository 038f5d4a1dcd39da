/*
 * jk_stream — JK-BMS notification chunks in, checksum-valid 300-byte frames out.
 *
 * The BMS's BLE module is a transparent UART bridge: notifications do not
 * respect frame boundaries, a header can be split across two of them, one
 * notification can carry the end of one frame and the start of the next, and
 * the stream also carries the 20-byte command-header ack and "AT\r\n" tokens
 * (jkbms-ble.md §3.4).  The reassembler searches the response header anywhere,
 * waits for 300 bytes, accepts the candidate only if the sum8 checksum and the
 * frame type agree, and otherwise resynchronises one byte after the failed
 * header.  Everything that is not part of a frame is counted, never silently
 * lost.
 *
 * Pure core: no allocation, no I/O, no clock.  The whole state is the struct.
 */
#ifndef JK_STREAM_H
#define JK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JK_FRAME_LEN 300	/* every BMS -> host data frame */
#define JK_CMD_LEN 20		/* host -> BMS commands and the BMS's ack */

enum jk_token_kind {
	JK_TOKEN_NONE,		/* the input ran out before anything complete */
	JK_TOKEN_FRAME,		/* tok->data holds a checksum-valid 300-byte frame */
	JK_TOKEN_ACK,		/* the BMS acknowledged a command (20-byte 0xC8 message) */
};

struct jk_token {
	enum jk_token_kind kind;
	const uint8_t *data;	/* valid until the next jk_stream_* call */
	size_t len;
};

struct jk_stream_stats {
	uint32_t frames;	/* frames handed out */
	uint32_t bad_checksums;	/* 300-byte candidates rejected (checksum or type) */
	uint32_t skipped_bytes;	/* bytes that were not part of a frame (junk, acks, AT) */
	uint32_t acks;		/* 0xC8 acks recognised */
	uint32_t at_tokens;	/* "AT\r\n" tokens recognised */
};

struct jk_stream {
	uint8_t buf[JK_FRAME_LEN];
	size_t len;		/* bytes in buf */
	size_t emitted;		/* bytes of buf handed out as the last token */
	uint8_t lead;		/* what buf starts with, once known (jk_stream.c) */
	struct jk_stream_stats stats;
};

void jk_stream_init(struct jk_stream *s);

/* Forget a partial frame (on disconnect); the counters stay. */
void jk_stream_reset(struct jk_stream *s);

/*
 * Consume input until one token is complete or the input is used up.
 * Returns how many bytes of `in` were consumed; *tok says what, if anything,
 * completed.  Call again with the rest of the input, until the input is
 * used up and no token came out (a resynchronisation can leave a complete
 * token in the buffer, handed out by a call that consumes nothing):
 *
 *	do {
 *		size_t used = jk_stream_feed(&s, in, n, &tok);
 *		in += used; n -= used;
 *		if (tok.kind == JK_TOKEN_FRAME) handle(tok.data);
 *	} while (n > 0 || tok.kind != JK_TOKEN_NONE);
 */
size_t jk_stream_feed(struct jk_stream *s, const uint8_t *in, size_t n,
		      struct jk_token *tok);

/* sum8 of len bytes: the JK checksum of frames (299 bytes) and commands (19). */
uint8_t jk_sum8(const uint8_t *p, size_t len);

#endif
