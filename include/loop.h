/*
 * loop — the daemon's one epoll loop: file descriptors, timerfd timers and
 * signalfd signals, each with a callback.  No threads anywhere.
 *
 * Every registration is a struct loop_source owned by the caller (embedded
 * in the module that uses it), so the loop allocates nothing.  A callback
 * gets its source back and finds its owner through src->data.
 *
 * Level-triggered: a callback that leaves data unread is called again on
 * the next turn.  A source removed from inside a callback is never called
 * again, not even for an event already fetched in the same turn, so an
 * owner may remove (and free) its sources from any callback.
 */
#ifndef LOOP_H
#define LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#define LOOP_MAX_EVENTS 16	/* events fetched per epoll_wait */

struct loop;
struct loop_source;

typedef void (*loop_cb)(struct loop_source *src, uint32_t events);

struct loop_source {
	int fd;			/* -1 when not open */
	loop_cb cb;
	void *data;		/* the owner's context */
	struct loop *loop;	/* NULL when not registered */
};

struct loop {
	int epfd;
	bool stop;
	int exit_code;
	struct epoll_event ready[LOOP_MAX_EVENTS];	/* this turn's events */
	int nready;
};

int loop_init(struct loop *l);
void loop_close(struct loop *l);

/* Watch fd for `events` (EPOLLIN, EPOLLOUT ...). 0 or -errno. */
int loop_add(struct loop *l, struct loop_source *src, int fd, uint32_t events, loop_cb cb, void *data);
int loop_modify(struct loop_source *src, uint32_t events);
void loop_remove(struct loop_source *src);	/* closes nothing: the owner closes; no-op if not added */

/* timerfd on CLOCK_MONOTONIC: first expiry after first_ms (0 = disarm),
 * then every interval_ms (0 = one-shot).  The callback reads the timerfd
 * with loop_timer_ack(). */
int loop_timer_add(struct loop *l, struct loop_source *src, loop_cb cb, void *data);
int loop_timer_arm(struct loop_source *src, uint64_t first_ms, uint64_t interval_ms);
void loop_timer_ack(struct loop_source *src);	/* consume expirations (call in the callback) */
void loop_timer_del(struct loop_source *src);	/* remove and close; no-op if not added */

/* Block `sigs` and deliver them through a signalfd.  In the callback,
 * loop_signal_read() returns the next signal number, 0 when none is left,
 * or -errno. */
int loop_signals_add(struct loop *l, struct loop_source *src, const int *sigs, unsigned n,
		     loop_cb cb, void *data);
int loop_signal_read(struct loop_source *src);
void loop_signals_del(struct loop_source *src);	/* remove and close (signals stay blocked) */

/* Run until loop_stop(); returns the exit code given to the first
 * loop_stop() call (later ones are consequences and are ignored), or
 * -errno if epoll_wait itself fails (a broken invariant, not a state).
 * A loop_stop() before loop_run() makes it return at once; events of the
 * turn not yet dispatched when loop_stop() is called are not. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l, int exit_code);

uint64_t loop_now_ms(void);	/* CLOCK_MONOTONIC */
int64_t loop_wall_s(void);	/* CLOCK_REALTIME, seconds */

#endif
