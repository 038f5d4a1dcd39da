/*
 * jk_cmd — 20-byte host -> BMS frames (jkbms-ble.md §2).
 *
 * Switch registers: JK02 (24S and 32S) 0x1D charging, 0x1E discharging,
 * 0x1F balancer, each a u32 0/1 (esphome switch/__init__.py, mpp-solar unit
 * tests); JK04 has only the balancer switch, register 0x6C with one byte
 * (esphome jk04 test frames).
 */
#include <errno.h>
#include <string.h>

#include "jk_cmd.h"

static const uint8_t cmd_header[4] = { 0xAA, 0x55, 0x90, 0xEB };

#define JK_CMD_VALUE_MAX 13	/* bytes 6..18 */

static void finish(uint8_t out[JK_CMD_LEN])
{
	out[JK_CMD_LEN - 1] = jk_sum8(out, JK_CMD_LEN - 1);
}

static void start(uint8_t out[JK_CMD_LEN], uint8_t reg, uint8_t len)
{
	memset(out, 0, JK_CMD_LEN);
	memcpy(out, cmd_header, sizeof(cmd_header));
	out[4] = reg;
	out[5] = len;
}

void jk_cmd_request(uint8_t out[JK_CMD_LEN], enum jk_request req)
{
	start(out, (uint8_t)req, 0);
	finish(out);
}

int jk_cmd_write(uint8_t out[JK_CMD_LEN], uint8_t reg, const uint8_t *value, size_t len)
{
	if (len == 0 || len > JK_CMD_VALUE_MAX)
		return -EINVAL;
	start(out, reg, (uint8_t)len);
	memcpy(out + 6, value, len);
	finish(out);
	return 0;
}

void jk_cmd_write_u32(uint8_t out[JK_CMD_LEN], uint8_t reg, uint32_t value)
{
	const uint8_t le[4] = { value & 0xFF, value >> 8 & 0xFF, value >> 16 & 0xFF, value >> 24 };

	jk_cmd_write(out, reg, le, sizeof(le));
}

void jk_cmd_write_f32(uint8_t out[JK_CMD_LEN], uint8_t reg, float value)
{
	uint32_t bits;

	memcpy(&bits, &value, sizeof(bits));
	jk_cmd_write_u32(out, reg, bits);
}

int jk_cmd_switch(uint8_t out[JK_CMD_LEN], enum jk_protocol proto, enum jk_switch sw, bool on)
{
	static const uint8_t jk02_regs[] = {
		[JK_SWITCH_CHARGING] = 0x1D,
		[JK_SWITCH_DISCHARGING] = 0x1E,
		[JK_SWITCH_BALANCER] = 0x1F,
	};
	const uint8_t one = on;

	switch (proto) {
	case JK_PROTO_JK02_24S:
	case JK_PROTO_JK02_32S:
		if ((unsigned)sw >= sizeof(jk02_regs))
			return -EINVAL;
		jk_cmd_write_u32(out, jk02_regs[sw], on);
		return 0;
	case JK_PROTO_JK04:
		if (sw != JK_SWITCH_BALANCER)
			return -EOPNOTSUPP;
		return jk_cmd_write(out, 0x6C, &one, 1);
	default:
		return -EINVAL;
	}
}

bool jk_cmd_valid(const uint8_t frame[JK_CMD_LEN])
{
	return memcmp(frame, cmd_header, sizeof(cmd_header)) == 0 &&
	       jk_sum8(frame, JK_CMD_LEN - 1) == frame[JK_CMD_LEN - 1];
}
