/*
 * replay — capture file to paced notifications (see replay.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "replay.h"

static int append(struct replay *r, const uint8_t *data, size_t n, size_t *cap_bytes, size_t *cap_ends)
{
	size_t used = r->count ? r->ends[r->count - 1] : 0;

	if (used + n > *cap_bytes) {
		size_t cap = (*cap_bytes ? *cap_bytes * 2 : 4096) + n;
		uint8_t *b = realloc(r->bytes, cap);

		if (!b)
			return -ENOMEM;
		r->bytes = b;
		*cap_bytes = cap;
	}
	if (r->count == *cap_ends) {
		size_t cap = *cap_ends ? *cap_ends * 2 : 64;
		size_t *e = realloc(r->ends, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		r->ends = e;
		*cap_ends = cap;
	}
	memcpy(r->bytes + used, data, n);
	r->ends[r->count++] = used + n;
	return 0;
}

static int load(struct replay *r, FILE *f, const char *path, char *err, size_t errlen)
{
	static struct capture_line line;
	size_t cap_bytes = 0, cap_ends = 0, len = 0;
	char *text = NULL;
	unsigned lineno = 0;
	int rc = 0;

	while (rc == 0 && getline(&text, &len, f) >= 0) {
		int kind = capture_parse_line(text, &line);

		lineno++;
		if (kind < 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, line.error);
			rc = -EINVAL;
		} else if (kind == CAPTURE_NOTIFY && line.len) {
			rc = append(r, line.data, line.len, &cap_bytes, &cap_ends);
		}
	}
	free(text);
	if (rc == 0 && r->count == 0) {
		snprintf(err, errlen, "%s: no notifications in the file", path);
		rc = -EINVAL;
	}
	return rc;
}

/* Hand out notifications until one cell-info frame completed, or the end
 * of the capture (a capture without cell info must not spin the loop). */
static void replay_tick(struct loop_source *src, uint32_t events)
{
	struct replay *r = src->data;

	loop_timer_ack(src);
	while (!r->finished) {
		size_t start = r->next ? r->ends[r->next - 1] : 0;
		bool cell = r->cb(r->ctx, r->bytes + start, r->ends[r->next] - start);

		if (++r->next == r->count) {
			r->next = 0;
			r->finished = !r->loop;
			break;
		}
		if (cell)
			return;
	}
	if (r->finished)
		loop_timer_arm(src, 0, 0);
}

int replay_open(struct replay *r, struct loop *l, const char *path, bool loop, double speed,
		replay_cb cb, void *ctx, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	int rc;

	memset(r, 0, sizeof(*r));
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	rc = load(r, f, path, err, errlen);
	fclose(f);
	if (rc == 0)
		rc = loop_timer_add(l, &r->timer, replay_tick, r);
	if (rc < 0) {
		replay_close(r);
		if (!*err)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	r->loop = loop;
	r->cb = cb;
	r->ctx = ctx;
	r->period_ms = (uint64_t)(REPLAY_PERIOD_MS / (speed > 0 ? speed : 1.0));
	if (r->period_ms == 0)
		r->period_ms = 1;
	rc = loop_timer_arm(&r->timer, 1, r->period_ms);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot arm the replay timer: %s", path, strerror(-rc));
		replay_close(r);
	}
	return rc;
}

void replay_close(struct replay *r)
{
	if (r->timer.loop)
		loop_timer_del(&r->timer);
	free(r->bytes);
	free(r->ends);
	memset(r, 0, sizeof(*r));
}
