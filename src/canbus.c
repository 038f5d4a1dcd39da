/*
 * canbus — the inverter link over SocketCAN (can-utils idioms: a raw
 * socket bound to one interface, a receive filter, non-blocking writes),
 * or a candump-format log sink.
 *
 * States (OpenBGPD change_state() shape: every transition goes through
 * canbus_set_state(), which applies the side effects and logs one line):
 *
 *   DOWN     no socket; retry_timer reopens every CANBUS_RETRY_MS.  Entered
 *            when the kernel has no SocketCAN, the interface is missing or
 *            administratively down, or a write/read says ENETDOWN.
 *   UP       socket bound, frames paced out.
 *   BUS_OFF  socket kept (to hear CAN_ERR_RESTARTED), nothing sent;
 *            retry_timer polls the interface's carrier (IFF_RUNNING: the
 *            CAN core turns it off at bus-off and on at restart).
 *   LOG      the log sink; never changes.
 *
 * Pacing: one frame per pace_timer expiry, the timer re-armed one-shot
 * after each frame, so two frames are always >= CANBUS_GAP_MS apart even
 * when the loop runs late.  The expiry after the last frame of a set finds
 * nothing and leaves the timer idle; hence an idle timer means the last
 * frame left >= CANBUS_GAP_MS ago, and a new set may start at once.
 *
 * Nothing here allocates or blocks (the log sink writes to a file or to
 * stdout, which is the operator's choice).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/raw.h>

#include "canbus.h"
#include "service.h"

#define CANBUS_RX_BUDGET 32	/* frames read per wake-up, so timers are not starved */
#define CANBUS_LOG_IFACE "log"

/* Inverter frames we listen to (inverter-can.md §1.2, §2.4, §2.7).  The
 * masks include CAN_EFF_FLAG and CAN_RTR_FLAG so each entry matches only
 * data frames of its own ID width. */
#define CANBUS_SFF_FILTER(id) { (id), CAN_SFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG }
static const struct can_filter canbus_filters[] = {
	CANBUS_SFF_FILTER(0x305),	/* keep-alive (Pylon and all who copy it) */
	CANBUS_SFF_FILTER(0x306),	/* Victron GX */
	CANBUS_SFF_FILTER(0x307),	/* Victron GX, "VIC" in bytes 4-6 */
	CANBUS_SFF_FILTER(0x300),	/* LuxPower shutdown command */
	/* Schneider XW Pro sends its 0x305 as a 29-bit frame. */
	{ 0x305 | CAN_EFF_FLAG, CAN_EFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG },
};

static const can_err_mask_t canbus_err_mask = CAN_ERR_BUSOFF | CAN_ERR_RESTARTED;

const char *canbus_state_name(enum canbus_state s)
{
	switch (s) {
	case CANBUS_DOWN:
		return "down";
	case CANBUS_UP:
		return "up";
	case CANBUS_BUS_OFF:
		return "bus-off";
	case CANBUS_LOG:
		return "log";
	}
	return "?";
}

bool canbus_inverter_alive(const struct canbus *cb, uint64_t now_ms, uint64_t timeout_ms)
{
	return cb->last_keepalive_ms != 0 && now_ms - cb->last_keepalive_ms <= timeout_ms;
}

/* ---- state ---------------------------------------------------------- */

static void canbus_stop_pacing(struct canbus *cb)
{
	cb->queued = 0;
	cb->next = 0;
	cb->pacing = false;
	if (cb->pace_timer.fd >= 0)
		loop_timer_arm(&cb->pace_timer, 0, 0);
}

static void canbus_close_socket(struct canbus *cb)
{
	loop_remove(&cb->sock_src);
	if (cb->fd >= 0)
		close(cb->fd);
	cb->fd = -1;
	cb->sock_src.fd = -1;
}

static void canbus_arm_retry(struct canbus *cb)
{
	loop_timer_arm(&cb->retry_timer, CANBUS_RETRY_MS, CANBUS_RETRY_MS);
}

/* Side effects of entering s, and its one log line.  err: why (DOWN). */
static void canbus_enter(struct canbus *cb, enum canbus_state s, int err)
{
	cb->state = s;
	switch (s) {
	case CANBUS_DOWN:
		canbus_close_socket(cb);
		canbus_stop_pacing(cb);
		canbus_arm_retry(cb);
		log_warn("%s: down (%s%s), retrying every %d s", cb->ifname,
			 err == EAFNOSUPPORT ? "no SocketCAN in this kernel: " : "",
			 strerror(err), CANBUS_RETRY_MS / 1000);
		break;
	case CANBUS_BUS_OFF:
		canbus_stop_pacing(cb);
		canbus_arm_retry(cb);
		log_err("%s: bus-off, retrying every %d s", cb->ifname, CANBUS_RETRY_MS / 1000);
		break;
	case CANBUS_UP:
		loop_timer_arm(&cb->retry_timer, 0, 0);
		log_notice("%s: up", cb->ifname);
		break;
	case CANBUS_LOG:
		break;
	}
}

static void canbus_set_state(struct canbus *cb, enum canbus_state s, int err)
{
	if (cb->state != s)
		canbus_enter(cb, s, err);
}

/* ---- socket --------------------------------------------------------- */

static int canbus_if_flags(const struct canbus *cb, short *flags)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, cb->ifname, strnlen(cb->ifname, IFNAMSIZ - 1));
	/* CAN_RAW hands unknown ioctls down to the device layer. */
	if (ioctl(cb->fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	*flags = ifr.ifr_flags;
	return 0;
}

/* The state the interface's flags say we are in; err set for DOWN. */
static enum canbus_state canbus_link_state(const struct canbus *cb, int *err)
{
	short flags = 0;
	int r = canbus_if_flags(cb, &flags);

	if (r < 0)
		*err = -r;
	else if (!(flags & IFF_UP))
		*err = ENETDOWN;
	else
		return flags & IFF_RUNNING ? CANBUS_UP : CANBUS_BUS_OFF;
	return CANBUS_DOWN;
}

static int canbus_set_filters(int fd)
{
	if (setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FILTER, canbus_filters, sizeof(canbus_filters)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &canbus_err_mask, sizeof(canbus_err_mask)) < 0)
		return -errno;
	return 0;
}

static void canbus_rx_cb(struct loop_source *src, uint32_t events);

/* Socket, filters, bind, register.  0 with cb->fd set, or -errno. */
static int canbus_socket_open(struct canbus *cb)
{
	struct sockaddr_can addr = { .can_family = AF_CAN };
	int fd, r = 0;

	fd = socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
	if (fd < 0)
		return -errno;
	addr.can_ifindex = (int)if_nametoindex(cb->ifname);
	if (addr.can_ifindex == 0)
		r = -ENODEV;
	if (r == 0)
		r = canbus_set_filters(fd);
	if (r == 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		r = -errno;
	if (r == 0)
		r = loop_add(cb->loop, &cb->sock_src, fd, EPOLLIN, canbus_rx_cb, cb);
	if (r < 0) {
		close(fd);
		cb->sock_src.fd = -1;
		return r;
	}
	cb->fd = fd;
	return 0;
}

/* Try the socket; the state it leads to, err set for DOWN. */
static enum canbus_state canbus_connect(struct canbus *cb, int *err)
{
	int r = canbus_socket_open(cb);

	if (r < 0) {
		*err = -r;
		return CANBUS_DOWN;
	}
	return canbus_link_state(cb, err);
}

static void canbus_retry_cb(struct loop_source *src, uint32_t events)
{
	struct canbus *cb = src->data;
	enum canbus_state s;
	int err = 0;

	loop_timer_ack(src);
	switch (cb->state) {
	case CANBUS_DOWN:
		s = canbus_connect(cb, &err);
		canbus_set_state(cb, s, err);
		if (cb->state == CANBUS_DOWN)
			canbus_close_socket(cb);	/* a bound socket on a down link */
		break;
	case CANBUS_BUS_OFF:
		s = canbus_link_state(cb, &err);
		canbus_set_state(cb, s, err);
		break;
	case CANBUS_UP:
	case CANBUS_LOG:
		break;
	}
}

/* ---- receive -------------------------------------------------------- */

static void canbus_on_error_frame(struct canbus *cb, const struct can_frame *cf)
{
	if (cf->can_id & CAN_ERR_BUSOFF)
		canbus_set_state(cb, CANBUS_BUS_OFF, 0);
	else if ((cf->can_id & CAN_ERR_RESTARTED) && cb->state == CANBUS_BUS_OFF)
		canbus_set_state(cb, CANBUS_UP, 0);
}

static void canbus_on_keepalive(struct canbus *cb)
{
	if (cb->last_keepalive_ms == 0)
		log_info("%s: inverter keep-alive received", cb->ifname);
	cb->last_keepalive_ms = loop_now_ms();
	cb->stats.keepalives++;
}

static void canbus_on_frame(struct canbus *cb, const struct can_frame *cf)
{
	struct canmsg_frame f = { .len = cf->len > 8 ? 8 : cf->len };

	/* The filter lets through one 29-bit ID, 0x305: to canmsg it is the
	 * same keep-alive as the standard one. */
	f.id = cf->can_id & CAN_EFF_FLAG ? cf->can_id & CAN_EFF_MASK : cf->can_id & CAN_SFF_MASK;
	memcpy(f.data, cf->data, f.len);
	cb->stats.received++;
	switch (canmsg_parse(cb->profile, &f)) {
	case CANMSG_RX_IGNORED:
		break;
	case CANMSG_RX_KEEPALIVE:
		canbus_on_keepalive(cb);
		break;
	case CANMSG_RX_SHUTDOWN:
		if (!cb->shutdown_requested)
			log_warn("%s: inverter requests battery shutdown (0x%03X)", cb->ifname, (unsigned)f.id);
		cb->shutdown_requested = true;
		break;
	}
}

static void canbus_rx_error(struct canbus *cb, int err)
{
	switch (err) {
	case EAGAIN:
	case EINTR:
		return;
	case ENETDOWN:
	case ENODEV:
	case ENXIO:
		canbus_set_state(cb, CANBUS_DOWN, err);
		return;
	}
	/* Anything else (e.g. a receive overflow) is not a link change. */
	log_debug("%s: receive: %s", cb->ifname, strerror(err));
}

static void canbus_rx_cb(struct loop_source *src, uint32_t events)
{
	struct canbus *cb = src->data;
	struct can_frame cf;

	for (int i = 0; i < CANBUS_RX_BUDGET && cb->fd >= 0; i++) {
		ssize_t n = read(cb->fd, &cf, sizeof(cf));

		if (n < 0) {
			canbus_rx_error(cb, errno);
			return;
		}
		if (n != (ssize_t)sizeof(cf))
			continue;	/* not a classic CAN frame: CAN FD is never enabled */
		if (cf.can_id & CAN_ERR_FLAG)
			canbus_on_error_frame(cb, &cf);
		else
			canbus_on_frame(cb, &cf);
	}
}

/* ---- transmit ------------------------------------------------------- */

static int canbus_write_frame(struct canbus *cb, const struct canmsg_frame *f)
{
	struct can_frame cf;
	ssize_t n;

	memset(&cf, 0, sizeof(cf));
	cf.can_id = f->id > CAN_SFF_MASK ? (f->id & CAN_EFF_MASK) | CAN_EFF_FLAG : f->id;
	cf.len = f->len > CAN_MAX_DLEN ? CAN_MAX_DLEN : f->len;
	memcpy(cf.data, f->data, cf.len);
	n = write(cb->fd, &cf, sizeof(cf));
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(cf) ? 0 : -EIO;
}

/* candump -l, byte for byte (can-utils candump.c, lib.c fprint_canframe):
 * "(1700000000.123456) log 351#2802E803DC05E001" */
static int canbus_log_frame(struct canbus *cb, const struct canmsg_frame *f)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[80], *p;
	struct timespec ts;
	unsigned len = f->len > 8 ? 8 : f->len;

	clock_gettime(CLOCK_REALTIME, &ts);
	p = line + snprintf(line, sizeof(line), f->id > CAN_SFF_MASK ? "(%010lu.%06lu) %s %08X#" :
			    "(%010lu.%06lu) %s %03X#", (unsigned long)ts.tv_sec,
			    (unsigned long)ts.tv_nsec / 1000, CANBUS_LOG_IFACE, (unsigned)f->id);
	for (unsigned i = 0; i < len; i++) {
		*p++ = hex[f->data[i] >> 4];
		*p++ = hex[f->data[i] & 0xF];
	}
	*p++ = '\n';
	*p = '\0';
	errno = 0;
	if (fputs(line, cb->log) == EOF) {
		int err = errno ? errno : EIO;

		clearerr(cb->log);
		return -err;
	}
	return 0;
}

/* First occurrence, then every CANBUS_DROP_LOG_EVERY-th. */
static bool canbus_log_due(uint64_t count)
{
	return count == 1 || count % CANBUS_DROP_LOG_EVERY == 0;
}

static void canbus_tx_failed(struct canbus *cb, const struct canmsg_frame *f, int err)
{
	switch (err) {
	case ENETDOWN:
	case ENODEV:
	case ENXIO:
		canbus_set_state(cb, CANBUS_DOWN, err);
		return;
	case EAGAIN:
	case ENOBUFS:
		/* Transmit queue full: usually nobody ACKs (inverter off or unplugged). */
		if (canbus_log_due(++cb->stats.dropped_nobufs))
			log_warn("%s: transmit queue full, %llu frame(s) dropped so far (last 0x%03X: %s)",
				 cb->ifname, (unsigned long long)cb->stats.dropped_nobufs,
				 (unsigned)f->id, strerror(err));
		return;
	}
	if (canbus_log_due(++cb->stats.send_errors))
		log_warn("%s: send failed, %llu error(s) so far (last 0x%03X: %s)", cb->ifname,
			 (unsigned long long)cb->stats.send_errors, (unsigned)f->id, strerror(err));
}

static bool canbus_transmitting(const struct canbus *cb)
{
	return cb->state == CANBUS_UP || cb->state == CANBUS_LOG;
}

static void canbus_send_next(struct canbus *cb)
{
	const struct canmsg_frame *f = &cb->queue[cb->next++];
	int r = cb->state == CANBUS_LOG ? canbus_log_frame(cb, f) : canbus_write_frame(cb, f);

	if (r == 0)
		cb->stats.sent++;
	else
		canbus_tx_failed(cb, f, -r);
}

static void canbus_pace_cb(struct loop_source *src, uint32_t events)
{
	struct canbus *cb = src->data;

	loop_timer_ack(src);
	if (!canbus_transmitting(cb) || cb->next >= cb->queued) {
		cb->pacing = false;	/* one-shot: already disarmed */
		return;
	}
	canbus_send_next(cb);
	if (cb->pacing)		/* still, unless the send took the link down */
		loop_timer_arm(&cb->pace_timer, CANBUS_GAP_MS, 0);
}

void canbus_send_set(struct canbus *cb, const struct canmsg_frame *frames, unsigned n)
{
	if (!canbus_transmitting(cb))
		return;
	if (n > CANMSG_MAX_FRAMES)
		n = CANMSG_MAX_FRAMES;
	memcpy(cb->queue, frames, n * sizeof(*frames));
	cb->queued = n;
	cb->next = 0;
	if (cb->pacing || n == 0)
		return;
	/* Idle means the last frame left >= CANBUS_GAP_MS ago: start now. */
	cb->pacing = true;
	loop_timer_arm(&cb->pace_timer, 1, 0);
}

/* ---- open / close --------------------------------------------------- */

static int canbus_open_log(struct canbus *cb, const char *path)
{
	bool to_stdout = strcmp(path, "-") == 0;
	int r;

	cb->log = to_stdout ? stdout : fopen(path, "ae");
	if (!cb->log)
		return -errno;
	cb->log_owned = !to_stdout;
	/* A line per frame reaches the file (or a pipe to can-utils) at once.
	 * For stdout this must come before anything is printed there. */
	setvbuf(cb->log, NULL, _IOLBF, 0);
	snprintf(cb->ifname, sizeof(cb->ifname), "%s", CANBUS_LOG_IFACE);
	r = loop_timer_add(cb->loop, &cb->pace_timer, canbus_pace_cb, cb);
	if (r < 0)
		return r;
	cb->state = CANBUS_LOG;
	log_info("%s: frames go to %s as candump lines (profile %s), not to an inverter",
		 cb->ifname, to_stdout ? "stdout" : path, canmsg_profile_name(cb->profile));
	return 0;
}

static int canbus_open_socket(struct canbus *cb, const char *ifname)
{
	enum canbus_state s;
	int err = 0, r;

	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	snprintf(cb->ifname, sizeof(cb->ifname), "%s", ifname);
	r = loop_timer_add(cb->loop, &cb->pace_timer, canbus_pace_cb, cb);
	if (r == 0)
		r = loop_timer_add(cb->loop, &cb->retry_timer, canbus_retry_cb, cb);
	if (r < 0)
		return r;
	/* canbus_enter, not _set_state: the first state is logged whatever it is. */
	s = canbus_connect(cb, &err);
	canbus_enter(cb, s, err);
	return 0;
}

int canbus_open(struct canbus *cb, struct loop *l, const char *interface, enum canmsg_profile profile)
{
	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
	cb->sock_src.fd = -1;
	cb->pace_timer.fd = -1;
	cb->retry_timer.fd = -1;
	cb->loop = l;
	cb->profile = profile;
	cb->state = CANBUS_DOWN;
	if (strncmp(interface, "log:", 4) == 0)
		return canbus_open_log(cb, interface + 4);
	return canbus_open_socket(cb, interface);
}

void canbus_close(struct canbus *cb)
{
	canbus_close_socket(cb);
	loop_timer_del(&cb->pace_timer);
	loop_timer_del(&cb->retry_timer);
	if (cb->log && cb->log_owned)
		fclose(cb->log);
	else if (cb->log)
		fflush(cb->log);
	cb->log = NULL;
	cb->pacing = false;
	cb->queued = cb->next = 0;
	cb->state = CANBUS_DOWN;
}
