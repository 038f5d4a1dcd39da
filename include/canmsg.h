/*
 * canmsg — the virtual battery as CAN frames for one inverter profile, and
 * the inverter's own frames parsed (inverter-can.md §1–2).
 *
 * Profiles: pylon (Pylontech 1.2: 0x351 0x355 0x356 0x359 0x35C 0x35E, the
 * default), pylon-v2 (GoodWe; + 0x35A 0x372 0x373 0x374–0x377 0x379),
 * victron (0x351 0x355 0x356 0x35A 0x35E 0x35F 0x372–0x377 0x379 0x382),
 * sma (0x351 0x355 0x356 0x35A 0x35E 0x35F), luxpower (pylon with the
 * LuxPower byte uses).  Bit positions follow the specifications, not the
 * copies inverter-can.md warns about.  All multi-byte values little-endian.
 *
 * Pure core: structs in, frames out.  No kernel headers: struct
 * canmsg_frame is ours; canbus copies it into a struct can_frame.
 */
#ifndef CANMSG_H
#define CANMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bank.h"
#include "charge.h"

enum canmsg_profile {
	CANMSG_PYLON,
	CANMSG_PYLON_V2,
	CANMSG_VICTRON,
	CANMSG_SMA,
	CANMSG_LUXPOWER,
};

#define CANMSG_MAX_FRAMES 24

struct canmsg_frame {
	uint32_t id;		/* 11-bit standard ID */
	uint8_t len;
	uint8_t data[8];
};

/*
 * Fixed facts about the battery for the name/identity frames.  A zero
 * field (or a NULL identity) means "the default" given beside it.
 */
struct canmsg_identity {
	char manufacturer[9];	/* 0x35E, space padded; default per profile:
				 * "PYLON" (pylon, luxpower), "GOODWE" (pylon-v2),
				 * "JKBRIDGE" (victron), "SMA" (sma) */
	uint32_t installed_capacity_mah;	/* 0x379, 0x35F; 0 = the fresh packs' capacity */
	char product[9];	/* 0x382, NUL padded; default "JK-BMS" */
	uint8_t version_major, version_minor;	/* 0x35F bytes 2–3 (MSB first) */
};

/*
 * Build the frame set: every frame DLC 8, in ascending ID order.  Returns
 * the number of frames written: the profile's whole set, or 0 when
 * out->transmit is false or max is smaller than the set (never a partial
 * set).  CANMSG_MAX_FRAMES always suffices.
 */
size_t canmsg_build(enum canmsg_profile profile, const struct battery *bat,
		    const struct charge_output *out, const struct canmsg_identity *id,
		    struct canmsg_frame *frames, size_t max);

enum canmsg_rx {
	CANMSG_RX_IGNORED,	/* not an inverter frame we know */
	CANMSG_RX_KEEPALIVE,	/* 0x305; in the victron profile also 0x306/0x307 (GX) */
	CANMSG_RX_SHUTDOWN,	/* luxpower profile only: 0x300 byte 0 bit 0, shut down */
};

enum canmsg_rx canmsg_parse(enum canmsg_profile profile, const struct canmsg_frame *f);

const char *canmsg_profile_name(enum canmsg_profile p);	/* "pylon", ... */
int canmsg_profile_parse(const char *s, enum canmsg_profile *out);	/* 0 or -EINVAL */

#endif
