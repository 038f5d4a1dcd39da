/*
 * jk_cmd — the 20-byte host -> BMS frames: requests and register writes.
 *
 *	AA 55 90 EB | reg | len | value (LE, len bytes) | zero filler | sum8
 *
 * JK02 (24S and 32S) registers take u32 values; JK04 takes IEEE-754 float32
 * for its voltages and currents and one byte for the balancer switch
 * (jkbms-ble.md §2).  Filler is zero, as every open client sends and every
 * BMS accepts.
 *
 * Pure core: the caller owns the output buffer.
 */
#ifndef JK_CMD_H
#define JK_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jk_decode.h"

enum jk_request {
	JK_REQ_DEVICE_INFO = 0x97,	/* -> device-info frame, then the ack */
	JK_REQ_CELL_INFO = 0x96,	/* -> settings frame, then the cell-info stream */
	JK_REQ_LOGBOOK = 0xA1,		/* -> logbook frame (JK02_32S) */
};

enum jk_switch {
	JK_SWITCH_CHARGING,
	JK_SWITCH_DISCHARGING,
	JK_SWITCH_BALANCER,
};

/* A request without value. */
void jk_cmd_request(uint8_t out[JK_CMD_LEN], enum jk_request req);

/* A register write with `len` value bytes (1..13) already little-endian.
 * Returns 0 or -EINVAL. */
int jk_cmd_write(uint8_t out[JK_CMD_LEN], uint8_t reg, const uint8_t *value, size_t len);

/* Register writes with the value encoded as the protocol wants it. */
void jk_cmd_write_u32(uint8_t out[JK_CMD_LEN], uint8_t reg, uint32_t value);
void jk_cmd_write_f32(uint8_t out[JK_CMD_LEN], uint8_t reg, float value);

/* A switch write for the protocol.  JK04 has only the balancer switch:
 * the others return -EOPNOTSUPP.  Unknown protocol: -EINVAL. */
int jk_cmd_switch(uint8_t out[JK_CMD_LEN], enum jk_protocol proto, enum jk_switch sw, bool on);

/* true if the 20 bytes are a command-header frame with a valid checksum. */
bool jk_cmd_valid(const uint8_t frame[JK_CMD_LEN]);

#endif
