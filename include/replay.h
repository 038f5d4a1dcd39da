/*
 * replay — a pack whose notifications come from a capture file (the
 * `jkbms decode` format) instead of the radio.  The file is read once at
 * start; a timer then hands its notifications to the same path BLE uses,
 * paced like a real BMS: one cell-info frame about every 500 ms / speed.
 * With `loop` the capture starts over at its end; without, the pack falls
 * silent there (and goes stale like a real one).
 */
#ifndef REPLAY_H
#define REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define REPLAY_PERIOD_MS 500

/* Called with each notification; returns true when a cell-info frame completed. */
typedef bool (*replay_cb)(void *ctx, const uint8_t *data, size_t n);

struct replay {
	uint8_t *bytes;		/* all notifications, back to back */
	size_t *ends;		/* end offset of notification i */
	size_t count, next;
	bool loop;
	bool finished;
	uint64_t period_ms;
	replay_cb cb;
	void *ctx;
	struct loop_source timer;
};

/* Read the capture; 0, or -errno with a "file:line: message" in err. */
int replay_open(struct replay *r, struct loop *l, const char *path, bool loop, double speed,
		replay_cb cb, void *ctx, char *err, size_t errlen);
void replay_close(struct replay *r);

#endif
