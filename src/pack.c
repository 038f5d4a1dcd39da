/*
 * pack — stream, protocol and bank hand-over for one BMS (see pack.h).
 */
#include <string.h>

#include "pack.h"

void pack_init(struct pack *p, unsigned index, enum jk_protocol configured)
{
	memset(p, 0, sizeof(*p));
	p->index = index;
	p->configured = configured;
	p->learned = configured;
	jk_stream_init(&p->stream);
}

enum jk_protocol pack_learn(struct pack *p, const uint8_t frame[JK_FRAME_LEN], uint32_t *events)
{
	enum jk_protocol proto = jk_protocol_for_frame(p->configured, p->learned, frame);
	enum jk_frame_type type = jk_frame_type(frame);

	if (type == JK_FRAME_DEVICE_INFO) {
		struct jk_device_info info;

		jk_decode_device_info(frame, &info);
		/* The uptime ticks on: only a change of identity is news. */
		info.uptime_s = p->info.uptime_s;
		if (!p->have_info || memcmp(&info, &p->info, sizeof(info)) != 0)
			*events |= PACK_EV_DEVICE_INFO;
		jk_decode_device_info(frame, &p->info);
		p->have_info = true;
		if (p->learned == JK_PROTO_UNKNOWN)
			proto = jk_detect_from_device_info(&p->info);
	}
	if (proto != JK_PROTO_UNKNOWN && proto != p->learned &&
	    (type == JK_FRAME_CELL_INFO || p->learned == JK_PROTO_UNKNOWN)) {
		p->learned = proto;
		*events |= PACK_EV_PROTOCOL;
	}
	return proto;
}

static void pack_frame(struct pack *p, struct bank *b, const uint8_t *frame, uint64_t now_ms,
		       uint32_t *events)
{
	enum jk_protocol proto = pack_learn(p, frame, events);
	union {
		struct jk_sample sample;
		struct jk_settings settings;
	} u;

	switch (jk_frame_type(frame)) {
	case JK_FRAME_CELL_INFO:
		if (jk_decode_cell_info(frame, proto, &u.sample) == 0) {
			bank_set_sample(b, p->index, &u.sample, now_ms);
			*events |= PACK_EV_CELL_INFO;
			return;
		}
		break;
	case JK_FRAME_SETTINGS:
		if (jk_decode_settings(frame, proto, &u.settings) == 0) {
			bank_set_settings(b, p->index, &u.settings);
			*events |= PACK_EV_SETTINGS;
			return;
		}
		break;
	case JK_FRAME_DEVICE_INFO:
		return;
	case JK_FRAME_LOGBOOK:
		return;
	}
	p->undecodable++;
	*events |= PACK_EV_UNDECODABLE;
}

uint32_t pack_stream(struct pack *p, const uint8_t *data, size_t n, pack_frame_cb on_frame, void *ctx)
{
	uint32_t events = 0;
	struct jk_token tok;

	for (;;) {
		size_t used = jk_stream_feed(&p->stream, data, n, &tok);

		data += used;
		n -= used;
		if (tok.kind == JK_TOKEN_FRAME)
			events |= on_frame(ctx, tok.data);
		else if (tok.kind == JK_TOKEN_ACK)
			events |= PACK_EV_ACK;
		else if (n == 0)
			return events;
	}
}

struct feed_ctx {
	struct pack *p;
	struct bank *b;
	uint64_t now_ms;
};

static uint32_t feed_frame(void *ctx, const uint8_t *frame)
{
	struct feed_ctx *f = ctx;
	uint32_t events = 0;

	pack_frame(f->p, f->b, frame, f->now_ms, &events);
	return events;
}

uint32_t pack_feed(struct pack *p, struct bank *b, const uint8_t *data, size_t n, uint64_t now_ms)
{
	struct feed_ctx f = { .p = p, .b = b, .now_ms = now_ms };

	return pack_stream(p, data, n, feed_frame, &f);
}

void pack_reset_link(struct pack *p)
{
	jk_stream_reset(&p->stream);
}
