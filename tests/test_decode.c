/*
 * jk_decode on frames the test builds itself: protocol detection rules,
 * string sanitising, field placement per layout, and refusal of frames of
 * the wrong type.  The real captures are checked in test_vectors.c.
 */
#include <errno.h>
#include <string.h>

#include "jk_decode.h"
#include "tests.h"

static void put_u16(uint8_t *f, unsigned off, uint16_t v)
{
	f[off] = v & 0xFF;
	f[off + 1] = v >> 8;
}

static void put_u32(uint8_t *f, unsigned off, uint32_t v)
{
	put_u16(f, off, v & 0xFFFF);
	put_u16(f, off + 2, v >> 16);
}

static void put_f32(uint8_t *f, unsigned off, float v)
{
	uint32_t bits;

	memcpy(&bits, &v, sizeof(bits));
	put_u32(f, off, bits);
}

static void frame_init(uint8_t *f, uint8_t type)
{
	static const uint8_t hdr[4] = { 0x55, 0xAA, 0xEB, 0x90 };

	memset(f, 0, JK_FRAME_LEN);
	memcpy(f, hdr, sizeof(hdr));
	f[4] = type;
}

/* A 16-cell JK02 cell-info frame with the fields placed for `proto`. */
static void jk02_cell_frame(uint8_t *f, enum jk_protocol proto)
{
	unsigned shift = proto == JK_PROTO_JK02_32S ? 16 : 0, shift2 = 2 * shift;

	frame_init(f, JK_FRAME_CELL_INFO);
	for (unsigned i = 0; i < 16; i++)
		put_u16(f, 6 + 2 * i, 3300 + i);
	put_u32(f, 54 + shift, 0xFFFF);
	put_u32(f, 118 + shift2, 52920);
	put_u32(f, 126 + shift2, (uint32_t)-12345);
	put_u16(f, 130 + shift2, (uint16_t)-31);
	put_u16(f, 132 + shift2, 0xF830);
	f[141 + shift2] = 71;
	put_u32(f, 142 + shift2, 198800);
	put_u32(f, 146 + shift2, 280000);
	f[166 + shift2] = 1;
	f[167 + shift2] = 0;
}

START_TEST(test_jk02_fields_follow_the_layout)
{
	static const enum jk_protocol protos[] = { JK_PROTO_JK02_24S, JK_PROTO_JK02_32S };
	uint8_t f[JK_FRAME_LEN];
	struct jk_sample s;

	for (unsigned i = 0; i < 2; i++) {
		jk02_cell_frame(f, protos[i]);
		ck_assert_int_eq(jk_decode_cell_info(f, protos[i], &s), 0);
		ck_assert_int_eq(s.cell_count, 16);
		ck_assert_uint_eq(s.cells_mv[15], 3315);
		ck_assert_uint_eq(s.cells_mv[16], 0);
		ck_assert_uint_eq(s.voltage_mv, 52920);
		ck_assert_int_eq(s.current_ma, -12345);
		ck_assert_int_eq(s.temps_dc[0], -31);
		ck_assert_int_eq(s.temps_dc[1], JK_TEMP_ABSENT_DC);
		ck_assert_uint_eq(s.soc_pct, 71);
		ck_assert_uint_eq(s.remaining_mah, 198800);
		ck_assert_uint_eq(s.capacity_mah, 280000);
		ck_assert(s.charging_enabled);
		ck_assert(!s.discharging_enabled);
		ck_assert_uint_eq(s.temp_count, protos[i] == JK_PROTO_JK02_32S ? 5 : 2);
		ck_assert_int_eq(jk_detect_from_frame(f), protos[i]);
	}
}
END_TEST

START_TEST(test_jk04_has_no_current_soc_or_capacity)
{
	uint8_t f[JK_FRAME_LEN];
	struct jk_sample s;

	frame_init(f, JK_FRAME_CELL_INFO);
	for (unsigned i = 0; i < 16; i++)
		put_f32(f, 6 + 4 * i, 3.3f);
	put_u32(f, 214, 0xFFFF);
	put_f32(f, 222, -2.6f);
	ck_assert_int_eq(jk_detect_from_frame(f), JK_PROTO_JK04);
	ck_assert_int_eq(jk_decode_cell_info(f, JK_PROTO_JK04, &s), 0);
	ck_assert_int_eq(s.cell_count, 16);
	ck_assert_uint_eq(s.cells_mv[0], 3300);
	ck_assert_uint_eq(s.voltage_mv, 16 * 3300);
	ck_assert_int_eq(s.balance_current_ma, -2600);
	ck_assert_uint_eq(s.has & (JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_MOSFETS | JK_HAS_TEMPS), 0);
}
END_TEST

START_TEST(test_jk04_nan_and_huge_floats_are_clamped)
{
	uint8_t f[JK_FRAME_LEN];
	struct jk_sample s;

	frame_init(f, JK_FRAME_CELL_INFO);
	put_u32(f, 6, 0x7FC00000);	/* NaN */
	put_f32(f, 10, 1e30f);
	put_f32(f, 14, -5.0f);
	put_u32(f, 214, 0x7);
	ck_assert_int_eq(jk_decode_cell_info(f, JK_PROTO_JK04, &s), 0);
	ck_assert_uint_eq(s.cells_mv[0], 0);
	ck_assert_uint_eq(s.cells_mv[1], UINT16_MAX);
	ck_assert_uint_eq(s.cells_mv[2], 0);
}
END_TEST

START_TEST(test_32s_with_more_than_24_cells_is_still_32s)
{
	uint8_t f[JK_FRAME_LEN];

	frame_init(f, JK_FRAME_CELL_INFO);
	for (unsigned i = 0; i < 26; i++)
		put_u16(f, 6 + 2 * i, 3300);
	put_u32(f, 70, (1u << 26) - 1);
	ck_assert_int_eq(jk_detect_from_frame(f), JK_PROTO_JK02_32S);
}
END_TEST

START_TEST(test_wrong_frame_type_is_refused)
{
	uint8_t f[JK_FRAME_LEN];
	struct jk_sample s;
	struct jk_settings st;
	struct jk_device_info d;
	struct jk_logbook l;

	frame_init(f, JK_FRAME_SETTINGS);
	ck_assert_int_eq(jk_decode_cell_info(f, JK_PROTO_JK02_32S, &s), -EINVAL);
	ck_assert_int_eq(jk_decode_device_info(f, &d), -EINVAL);
	ck_assert_int_eq(jk_decode_logbook(f, &l), -EINVAL);
	ck_assert_int_eq(jk_decode_settings(f, JK_PROTO_UNKNOWN, &st), -EPROTONOSUPPORT);
	f[4] = JK_FRAME_CELL_INFO;
	ck_assert_int_eq(jk_decode_cell_info(f, JK_PROTO_UNKNOWN, &s), -EPROTONOSUPPORT);
}
END_TEST

START_TEST(test_device_info_strings_are_cut_and_sanitised)
{
	uint8_t f[JK_FRAME_LEN];
	struct jk_device_info d;

	frame_init(f, JK_FRAME_DEVICE_INFO);
	memcpy(f + 6, "JK-PB2A16S20P\0\0\x10", 16);
	memcpy(f + 30, "15.38", 5);
	memcpy(f + 46, "Ba\xC3\xA9ry", 6);
	memcpy(f + 86, "0123456789ABCDEF", 16);	/* the full 16 characters */
	memcpy(f + 102, "XYZ", 3);
	ck_assert_int_eq(jk_decode_device_info(f, &d), 0);
	ck_assert_str_eq(d.model, "JK-PB2A16S20P");
	ck_assert_str_eq(d.name, "Ba??ry");
	ck_assert_str_eq(d.serial, "0123456789ABCDEF");
	ck_assert_str_eq(d.user_data, "XYZ");
}
END_TEST

struct detect_case {
	const char *model, *hw, *sw;
	enum jk_protocol want;
};

START_TEST(test_protocol_from_device_info)
{
	static const struct detect_case cases[] = {
		{ .model = "JK_PB2A16S20P", .hw = "15A", .sw = "15.38", .want = JK_PROTO_JK02_32S },
		{ .model = "JK-B2A20S20P", .hw = "10.XW", .sw = "11.21h", .want = JK_PROTO_JK02_32S },
		{ .model = "JK_B2A8S30P", .hw = "19H", .sw = "V19.04", .want = JK_PROTO_JK02_32S },
		{ .model = "JK-B2A24S20P", .hw = "10.XG", .sw = "10.07", .want = JK_PROTO_JK02_24S },
		{ .model = "JK-BD6A17S6P", .hw = "7.2", .sw = "7.1.0H", .want = JK_PROTO_JK02_24S },
		{ .model = "JK-B2A16S", .hw = "3.0", .sw = "3.3.0", .want = JK_PROTO_JK04 },
		{ .model = "JK-B5A24S", .hw = "8.X", .sw = "8.0.3M", .want = JK_PROTO_JK04 },
		{ .model = "", .hw = "", .sw = "", .want = JK_PROTO_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jk_device_info d = { 0 };

		strcpy(d.model, cases[i].model);
		strcpy(d.hw_version, cases[i].hw);
		strcpy(d.sw_version, cases[i].sw);
		ck_assert_msg(jk_detect_from_device_info(&d) == cases[i].want,
			      "case %zu (%s %s %s)", i, cases[i].model, cases[i].hw, cases[i].sw);
	}
}
END_TEST

START_TEST(test_settings_protocol_prefers_what_was_learned)
{
	uint8_t f[JK_FRAME_LEN];

	frame_init(f, JK_FRAME_SETTINGS);
	put_u32(f, 6, 3300);
	ck_assert_int_eq(jk_protocol_for_frame(JK_PROTO_UNKNOWN, JK_PROTO_UNKNOWN, f),
			 JK_PROTO_JK02_24S);
	ck_assert_int_eq(jk_protocol_for_frame(JK_PROTO_UNKNOWN, JK_PROTO_JK02_32S, f),
			 JK_PROTO_JK02_32S);
	ck_assert_int_eq(jk_protocol_for_frame(JK_PROTO_JK04, JK_PROTO_JK02_32S, f),
			 JK_PROTO_JK04);
	f[282] = 0x11;	/* a 32S controls word */
	ck_assert_int_eq(jk_detect_from_frame(f), JK_PROTO_JK02_32S);
	put_f32(f, 6, 1.0f);
	ck_assert_int_eq(jk_protocol_for_frame(JK_PROTO_UNKNOWN, JK_PROTO_JK02_32S, f),
			 JK_PROTO_JK04);
}
END_TEST

START_TEST(test_protocol_names_round_trip)
{
	enum jk_protocol p;

	for (int i = JK_PROTO_JK02_24S; i <= JK_PROTO_JK04; i++) {
		ck_assert_int_eq(jk_protocol_parse(jk_protocol_name(i), &p), 0);
		ck_assert_int_eq(p, i);
	}
	ck_assert_int_eq(jk_protocol_parse("jk02_32s", &p), 0);
	ck_assert_int_eq(p, JK_PROTO_JK02_32S);
	ck_assert_int_eq(jk_protocol_parse("auto", &p), 0);
	ck_assert_int_eq(p, JK_PROTO_UNKNOWN);
	ck_assert_int_eq(jk_protocol_parse("jk03", &p), -EINVAL);
	ck_assert_str_eq(jk_protocol_name((enum jk_protocol)42), "unknown");
}
END_TEST

TCase *tcase_decode(void)
{
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, test_jk02_fields_follow_the_layout);
	tcase_add_test(tc, test_jk04_has_no_current_soc_or_capacity);
	tcase_add_test(tc, test_jk04_nan_and_huge_floats_are_clamped);
	tcase_add_test(tc, test_32s_with_more_than_24_cells_is_still_32s);
	tcase_add_test(tc, test_wrong_frame_type_is_refused);
	tcase_add_test(tc, test_device_info_strings_are_cut_and_sanitised);
	tcase_add_test(tc, test_protocol_from_device_info);
	tcase_add_test(tc, test_settings_protocol_prefers_what_was_learned);
	tcase_add_test(tc, test_protocol_names_round_trip);
	return tc;
}
