/*
 * e2e — what the end-to-end tests (test_daemon.c, test_ble.c, test_mqtt.c)
 * share: waiting, the binaries under test, captures built with jk_encode,
 * and the candump log the daemon's CAN log sink writes.
 */
#ifndef E2E_H
#define E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jk_decode.h"

/* A pack for a replay capture: device info, settings, then cell frames. */
struct e2e_pack {
	const char *name;
	enum jk_protocol proto;
	uint16_t cell_mv;	/* every cell */
	int32_t current_ma;
	uint8_t soc_pct;
	uint32_t capacity_mah;
	int16_t temp_dc;
	uint32_t max_charge_ma, max_discharge_ma;	/* the settings frame's OCP */
	unsigned cell_frames;
	bool junk_only;		/* a capture with no valid frame at all */
};

/* One candump log line: "(sec.usec) IFACE ID#HEX". */
struct can_line {
	double t;
	unsigned id;
	uint8_t len;
	uint8_t data[8];
};

void e2e_sleep_ms(unsigned ms);
double e2e_wall_now(void);		/* CLOCK_REALTIME, as in the CAN log */
const char *e2e_daemon_bin(void);	/* $JKBRIDGED or build/jkbridged */

/* Write the capture (hex text, cell frames in 20-byte notifications). */
void e2e_write_capture(const char *path, const struct e2e_pack *p);

/* Parse the CAN log at `path`; returns the number of lines read. */
size_t e2e_read_can_log(const char *path, struct can_line *lines, size_t max);
/* The last frame with `id` at or after `after` (0 = any), or NULL. */
const struct can_line *e2e_last_frame(const struct can_line *lines, size_t n, unsigned id, double after);
unsigned e2e_u16le(const uint8_t *p);

#endif
