/*
 * loop — one level-triggered epoll set; timers are timerfds and signals a
 * signalfd, so everything the daemon waits for is a file descriptor and
 * the loop itself is just "wait, then call each ready source".
 *
 * Invariants:
 *  - the epoll data of every registration is its struct loop_source, and
 *    src->loop is non-NULL exactly while it is registered;
 *  - l->ready holds the events of the turn being dispatched; loop_remove()
 *    clears the removed source out of it, so a callback never runs for a
 *    source its owner removed earlier in the same turn (the fd may even
 *    have been closed and its number reused by then);
 *  - nothing here allocates: sources live inside their owners.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

int loop_init(struct loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	return 0;
}

void loop_close(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
	l->nready = 0;
}

int loop_add(struct loop *l, struct loop_source *src, int fd, uint32_t events, loop_cb cb, void *data)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	src->fd = fd;
	src->cb = cb;
	src->data = data;
	src->loop = NULL;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	src->loop = l;
	return 0;
}

int loop_modify(struct loop_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (!src->loop)
		return -EINVAL;
	if (epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Forget events already fetched for src in this turn. */
static void loop_forget(struct loop *l, const struct loop_source *src)
{
	for (int i = 0; i < l->nready; i++)
		if (l->ready[i].data.ptr == src)
			l->ready[i].data.ptr = NULL;
}

void loop_remove(struct loop_source *src)
{
	struct loop *l = src->loop;

	if (!l)
		return;
	/* Can only fail if the owner closed the fd first; epoll dropped it then. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	loop_forget(l, src);
	src->loop = NULL;
}

/* Remove, then close the fd the loop created for this source. */
static void loop_remove_close(struct loop_source *src)
{
	loop_remove(src);
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
}

int loop_timer_add(struct loop *l, struct loop_source *src, loop_cb cb, void *data)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int r;

	src->fd = -1;
	src->loop = NULL;
	if (fd < 0)
		return -errno;
	r = loop_add(l, src, fd, EPOLLIN, cb, data);
	if (r < 0) {
		close(fd);
		src->fd = -1;
	}
	return r;
}

static struct timespec loop_ms_to_timespec(uint64_t ms)
{
	return (struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
}

int loop_timer_arm(struct loop_source *src, uint64_t first_ms, uint64_t interval_ms)
{
	struct itimerspec its = {
		.it_value = loop_ms_to_timespec(first_ms),
		.it_interval = loop_ms_to_timespec(first_ms ? interval_ms : 0),
	};

	if (timerfd_settime(src->fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

void loop_timer_ack(struct loop_source *src)
{
	uint64_t expirations;

	/* EAGAIN (re-armed since the wake-up) is fine: nothing to consume. */
	if (read(src->fd, &expirations, sizeof(expirations)) < 0)
		return;
}

void loop_timer_del(struct loop_source *src)
{
	loop_remove_close(src);
}

static int loop_sigset(sigset_t *set, const int *sigs, unsigned n)
{
	sigemptyset(set);
	for (unsigned i = 0; i < n; i++)
		if (sigaddset(set, sigs[i]) < 0)
			return -errno;
	return 0;
}

int loop_signals_add(struct loop *l, struct loop_source *src, const int *sigs, unsigned n,
		     loop_cb cb, void *data)
{
	sigset_t set;
	int fd, r;

	src->fd = -1;
	src->loop = NULL;
	r = loop_sigset(&set, sigs, n);
	if (r < 0)
		return r;
	/* Blocked first, so a signal arriving before the fd exists stays pending. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		return r;
	}
	r = loop_add(l, src, fd, EPOLLIN, cb, data);
	if (r < 0) {
		close(fd);
		src->fd = -1;
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
	return r;
}

int loop_signal_read(struct loop_source *src)
{
	struct signalfd_siginfo si;
	ssize_t n = read(src->fd, &si, sizeof(si));

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n != (ssize_t)sizeof(si))
		return -EIO;
	return (int)si.ssi_signo;
}

void loop_signals_del(struct loop_source *src)
{
	loop_remove_close(src);
}

/* Call each source of this turn; a removed one has data.ptr cleared. */
static void loop_dispatch(struct loop *l)
{
	for (int i = 0; i < l->nready && !l->stop; i++) {
		struct loop_source *src = l->ready[i].data.ptr;

		if (src)
			src->cb(src, l->ready[i].events);
	}
	l->nready = 0;
}

int loop_run(struct loop *l)
{
	while (!l->stop) {
		int n = epoll_wait(l->epfd, l->ready, LOOP_MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		l->nready = n;
		loop_dispatch(l);
	}
	return l->exit_code;
}

void loop_stop(struct loop *l, int exit_code)
{
	/* The first reason to stop wins: a later one is a consequence. */
	if (l->stop)
		return;
	l->stop = true;
	l->exit_code = exit_code;
}

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t loop_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}
