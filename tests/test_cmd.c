/*
 * jk_cmd on its own: layout, checksum and refusals.  The byte-for-byte match
 * with captured frames is in test_vectors.c.
 */
#include <errno.h>

#include "jk_cmd.h"
#include "tests.h"

START_TEST(test_request_has_header_zero_filler_and_checksum)
{
	uint8_t c[JK_CMD_LEN];

	jk_cmd_request(c, JK_REQ_LOGBOOK);
	ck_assert_uint_eq(c[0], 0xAA);
	ck_assert_uint_eq(c[3], 0xEB);
	ck_assert_uint_eq(c[4], 0xA1);
	ck_assert_uint_eq(c[5], 0);
	for (unsigned i = 6; i < JK_CMD_LEN - 1; i++)
		ck_assert_uint_eq(c[i], 0);
	ck_assert_uint_eq(c[19], jk_sum8(c, 19));
	ck_assert(jk_cmd_valid(c));
	c[7] ^= 1;
	ck_assert(!jk_cmd_valid(c));
}
END_TEST

START_TEST(test_write_refuses_empty_and_oversized_values)
{
	uint8_t c[JK_CMD_LEN], v[14] = { 0 };

	ck_assert_int_eq(jk_cmd_write(c, 0x9F, v, 0), -EINVAL);
	ck_assert_int_eq(jk_cmd_write(c, 0x9F, v, 14), -EINVAL);
	ck_assert_int_eq(jk_cmd_write(c, 0x9F, v, 13), 0);
	ck_assert(jk_cmd_valid(c));
}
END_TEST

struct switch_case {
	enum jk_protocol proto;
	enum jk_switch sw;
	bool on;
	int rc;
	uint8_t reg, len, value;
};

START_TEST(test_switch_registers_per_protocol)
{
	static const struct switch_case cases[] = {
		{ .proto = JK_PROTO_JK02_24S, .sw = JK_SWITCH_CHARGING, .on = true, .reg = 0x1D, .len = 4, .value = 1 },
		{ .proto = JK_PROTO_JK02_32S, .sw = JK_SWITCH_DISCHARGING, .on = false, .reg = 0x1E, .len = 4, .value = 0 },
		{ .proto = JK_PROTO_JK02_32S, .sw = JK_SWITCH_BALANCER, .on = true, .reg = 0x1F, .len = 4, .value = 1 },
		{ .proto = JK_PROTO_JK04, .sw = JK_SWITCH_BALANCER, .on = true, .reg = 0x6C, .len = 1, .value = 1 },
		{ .proto = JK_PROTO_JK04, .sw = JK_SWITCH_CHARGING, .on = true, .rc = -EOPNOTSUPP },
		{ .proto = JK_PROTO_UNKNOWN, .sw = JK_SWITCH_CHARGING, .on = true, .rc = -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct switch_case *k = &cases[i];
		uint8_t c[JK_CMD_LEN];

		ck_assert_int_eq(jk_cmd_switch(c, k->proto, k->sw, k->on), k->rc);
		if (k->rc)
			continue;
		ck_assert_msg(c[4] == k->reg && c[5] == k->len && c[6] == k->value,
			      "case %zu: reg %02x len %u value %u", i, c[4], c[5], c[6]);
		ck_assert(jk_cmd_valid(c));
	}
}
END_TEST

START_TEST(test_f32_write_is_ieee754_little_endian)
{
	uint8_t c[JK_CMD_LEN];

	jk_cmd_write_f32(c, 0x20, 3.1f);	/* 3.1f = 0x40466666 */
	ck_assert_uint_eq(c[5], 4);
	ck_assert_uint_eq(c[6], 0x66);
	ck_assert_uint_eq(c[7], 0x66);
	ck_assert_uint_eq(c[8], 0x46);
	ck_assert_uint_eq(c[9], 0x40);
}
END_TEST

TCase *tcase_cmd(void)
{
	TCase *tc = tcase_create("cmd");

	tcase_add_test(tc, test_request_has_header_zero_filler_and_checksum);
	tcase_add_test(tc, test_write_refuses_empty_and_oversized_values);
	tcase_add_test(tc, test_switch_registers_per_protocol);
	tcase_add_test(tc, test_f32_write_is_ieee754_little_endian);
	return tc;
}
