/*
 * canbus — the inverter link: a SocketCAN raw socket, or a log sink.
 *
 * canbus_send_set() queues one frame set; a pacing timer sends one frame
 * every CANBUS_GAP_MS (>= 10 ms apart), and a set replaces any unsent rest
 * of the previous one, so no ID repeats faster than the set period (1 s).
 * ENOBUFS drops the frame and counts it; ENETDOWN and bus-off are logged
 * once and retried from a timer; the inverter's 0x305 keep-alive is tracked
 * (transmission continues without it).
 *
 * While DOWN or BUS_OFF a set is discarded, not kept: nothing goes out
 * late once the link is back (the next set, a second later, is fresh).
 *
 * interface = "log:PATH" (or "log:-" for stdout) writes each frame as a
 * candump log line "(sec.usec) log ID#HEXDATA" instead of sending: for
 * commissioning without touching the inverter, and for tests on machines
 * without SocketCAN.  The interface field is always "log", so the file
 * replays with `canplayer -I PATH can0=log`.  Receiving is off there.
 */
#ifndef CANBUS_H
#define CANBUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "canmsg.h"
#include "loop.h"

#define CANBUS_GAP_MS 20
#define CANBUS_RETRY_MS 5000
#define CANBUS_DROP_LOG_EVERY 1000	/* after the first drop, one line per this many */

enum canbus_state {
	CANBUS_DOWN,		/* socket could not be opened or interface down */
	CANBUS_UP,
	CANBUS_BUS_OFF,
	CANBUS_LOG,		/* log sink */
};

struct canbus_stats {
	uint64_t sent;
	uint64_t dropped_nobufs;
	uint64_t send_errors;
	uint64_t received;
	uint64_t keepalives;
};

struct canbus {
	char ifname[64];
	enum canmsg_profile profile;
	enum canbus_state state;
	int fd;			/* raw socket, or -1 */
	FILE *log;		/* log sink, or NULL */
	bool log_owned;		/* fclose on close (not stdout) */
	struct loop *loop;
	struct loop_source sock_src, pace_timer, retry_timer;
	struct canmsg_frame queue[CANMSG_MAX_FRAMES];
	unsigned queued, next;
	bool pacing;		/* pace_timer armed: a frame went out < CANBUS_GAP_MS ago */
	uint64_t last_keepalive_ms;	/* 0 = never */
	bool shutdown_requested;	/* LuxPower 0x300 */
	struct canbus_stats stats;
};

/* Open the interface ("can0") or the log sink ("log:PATH").  A SocketCAN
 * interface that is missing or down (or a kernel without SocketCAN) is not
 * fatal: the state is DOWN and a timer retries.  Returns 0, -EINVAL for an
 * empty name or one longer than IFNAMSIZ - 1, or -errno for a log file that
 * cannot be opened or timers that cannot be created.  canbus_close() is
 * safe after any canbus_open(), failed or not. */
int canbus_open(struct canbus *cb, struct loop *l, const char *interface, enum canmsg_profile profile);
void canbus_close(struct canbus *cb);

/* Frames with an id above 0x7FF go out as 29-bit frames (none do today).
 * At most CANMSG_MAX_FRAMES are taken. */
void canbus_send_set(struct canbus *cb, const struct canmsg_frame *frames, unsigned n);

/* Keep-alive seen within `timeout_ms`? */
bool canbus_inverter_alive(const struct canbus *cb, uint64_t now_ms, uint64_t timeout_ms);

const char *canbus_state_name(enum canbus_state s);

#endif
