/*
 * pack — one BMS's byte stream to decoded frames, whatever carries it (BLE
 * notifications, a replayed capture): reassembly, protocol resolution and
 * learning, and the hand-over of samples and settings to the bank.
 *
 * The protocol comes from the configuration when it is forced; otherwise
 * from each cell-info frame's content, and, until one arrived, from the
 * device info's software version (jk_protocol_for_frame()).
 *
 * Pure core: bytes and time in, bank updates and events out.
 */
#ifndef PACK_H
#define PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "bank.h"
#include "jk_decode.h"
#include "jk_stream.h"

/* What pack_feed() saw, as bits. */
enum {
	PACK_EV_CELL_INFO = 1u << 0,
	PACK_EV_SETTINGS = 1u << 1,
	PACK_EV_DEVICE_INFO = 1u << 2,	/* a device info that differs from the last one */
	PACK_EV_PROTOCOL = 1u << 3,	/* the learned protocol changed */
	PACK_EV_ACK = 1u << 4,
	PACK_EV_UNDECODABLE = 1u << 5,	/* a frame no protocol could decode */
};

struct pack {
	unsigned index;			/* in the bank */
	enum jk_protocol configured;	/* JK_PROTO_UNKNOWN = auto */
	enum jk_protocol learned;
	struct jk_stream stream;
	bool have_info;
	struct jk_device_info info;
	uint32_t undecodable;
};

void pack_init(struct pack *p, unsigned index, enum jk_protocol configured);

/* The protocol to decode `frame` with; learns from device info and cell
 * info.  Sets PACK_EV_PROTOCOL in *events when what was learned changed. */
enum jk_protocol pack_learn(struct pack *p, const uint8_t frame[JK_FRAME_LEN], uint32_t *events);

/* Reassemble received bytes and hand each frame to on_frame, which returns
 * PACK_EV_* bits; returns their OR, with PACK_EV_ACK for the BMS's acks.
 * The one stream loop of the project: the daemon, `jkbms decode` and
 * `jkbms dump` differ only in what they do with a frame. */
typedef uint32_t (*pack_frame_cb)(void *ctx, const uint8_t frame[JK_FRAME_LEN]);
uint32_t pack_stream(struct pack *p, const uint8_t *data, size_t n, pack_frame_cb on_frame, void *ctx);

/* Feed received bytes; decoded samples and settings go to the bank.
 * Returns PACK_EV_* bits. */
uint32_t pack_feed(struct pack *p, struct bank *b, const uint8_t *data, size_t n, uint64_t now_ms);

/* A lost link: forget a partial frame (counters stay). */
void pack_reset_link(struct pack *p);

#endif
