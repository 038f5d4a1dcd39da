/*
 * jk_encode against jk_decode: whatever the encoder writes, the decoder
 * reads back, for every layout and frame type.  These are the frames the
 * simulator serves and the daemon tests replay.
 */
#include <string.h>

#include "jk_encode.h"
#include "tests.h"

static uint32_t rng = 2463534242u;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static struct jk_sample random_sample(enum jk_protocol proto)
{
	unsigned max = proto == JK_PROTO_JK02_32S ? 32 : 24;
	unsigned cells = 1 + next() % max;
	struct jk_sample s = { .protocol = proto, .counter = (uint8_t)next() };

	s.cell_mask = cells == 32 ? 0xFFFFFFFFu : (1u << cells) - 1;
	for (unsigned i = 0; i < cells; i++) {
		s.cells_mv[i] = (uint16_t)(2500 + next() % 1200);
		s.cell_res_mohm[i] = (uint16_t)(next() % 400);
	}
	s.cell_avg_mv = 3300;
	s.cell_delta_mv = (uint16_t)(next() % 100);
	s.cell_max_index = (uint8_t)(next() % cells);
	s.cell_min_index = (uint8_t)(next() % cells);
	s.balance_current_ma = (int32_t)(next() % 4000) - 2000;
	s.balancing = JK_BALANCE_DISCHARGE;
	s.uptime_s = next();
	if (proto == JK_PROTO_JK04)
		return s;
	s.voltage_mv = next() % 100000;
	s.current_ma = (int32_t)(next() % 400000) - 200000;
	s.power_mw = next();
	s.temps_dc[0] = (int16_t)(next() % 800) - 200;
	s.temps_dc[1] = JK_TEMP_ABSENT_DC;
	s.temps_dc[2] = 301;
	s.temps_dc[3] = 0;
	s.temps_dc[4] = -55;
	s.mos_temp_dc = 333;
	s.errors = proto == JK_PROTO_JK02_32S ? next() : next() & 0xFFFF;
	s.soc_pct = (uint8_t)(next() % 101);
	s.soh_pct = 97;
	s.remaining_mah = next() % 300000;
	s.capacity_mah = 300000;
	s.cycles = next() % 5000;
	s.cycle_capacity_mah = next();
	s.charging_enabled = next() & 1;
	s.discharging_enabled = next() & 1;
	s.temp_presence = 0x7;
	if (proto == JK_PROTO_JK02_32S) {
		s.heating = true;
		s.emergency_countdown_s = 12;
		s.charge_status = 2;
		s.charge_status_time_s = 677;
	}
	return s;
}

START_TEST(test_cell_info_round_trips_in_every_layout)
{
	static const enum jk_protocol protos[] = { JK_PROTO_JK02_24S, JK_PROTO_JK02_32S, JK_PROTO_JK04 };

	for (unsigned n = 0; n < 300; n++) {
		enum jk_protocol proto = protos[n % 3];
		struct jk_sample in = random_sample(proto), out;
		uint8_t f[JK_FRAME_LEN];

		ck_assert_int_eq(jk_encode_cell_info(f, &in), 0);
		ck_assert_uint_eq(f[JK_FRAME_LEN - 1], jk_sum8(f, JK_FRAME_LEN - 1));
		ck_assert_int_eq(jk_detect_from_frame(f), proto);
		ck_assert_int_eq(jk_decode_cell_info(f, proto, &out), 0);
		ck_assert_uint_eq(out.cell_mask, in.cell_mask);
		ck_assert_mem_eq(out.cells_mv, in.cells_mv, sizeof(in.cells_mv));
		ck_assert_mem_eq(out.cell_res_mohm, in.cell_res_mohm, sizeof(in.cell_res_mohm));
		ck_assert_int_eq(out.balance_current_ma, in.balance_current_ma);
		ck_assert_uint_eq(out.uptime_s, in.uptime_s);
		ck_assert_uint_eq(out.counter, in.counter);
		if (proto == JK_PROTO_JK04)
			continue;
		ck_assert_uint_eq(out.voltage_mv, in.voltage_mv);
		ck_assert_int_eq(out.current_ma, in.current_ma);
		ck_assert_uint_eq(out.errors, in.errors);
		ck_assert_uint_eq(out.remaining_mah, in.remaining_mah);
		ck_assert_uint_eq(out.soc_pct, in.soc_pct);
		ck_assert(out.charging_enabled == in.charging_enabled);
		ck_assert_mem_eq(out.temps_dc, in.temps_dc, out.temp_count * sizeof(int16_t));
		ck_assert_int_eq(out.mos_temp_dc, in.mos_temp_dc);
		ck_assert_uint_eq(out.charge_status, in.charge_status);
	}
}
END_TEST

START_TEST(test_settings_round_trip_in_every_layout)
{
	static const enum jk_protocol protos[] = { JK_PROTO_JK02_24S, JK_PROTO_JK02_32S };

	for (unsigned n = 0; n < 2; n++) {
		struct jk_settings in = { .protocol = protos[n], .cell_count = 16, .cell_ovp_mv = 3650,
					  .cell_uvp_mv = 2600, .max_charge_current_ma = 150000,
					  .max_discharge_current_ma = 200000, .charging_switch = true,
					  .balancer_switch = true, .capacity_mah = 280000,
					  .charge_utp_dc = -50, .wire_res_count = protos[n] == JK_PROTO_JK02_32S ? 32 : 24,
					  .controls = protos[n] == JK_PROTO_JK02_32S ? 0x3311 : 0,
					  .heating_start_c = protos[n] == JK_PROTO_JK02_32S ? -3 : 0 };
		struct jk_settings out;
		uint8_t f[JK_FRAME_LEN];

		in.wire_res_mohm[3] = 17;
		ck_assert_int_eq(jk_encode_settings(f, &in), 0);
		ck_assert_int_eq(jk_detect_from_frame(f), protos[n] == JK_PROTO_JK02_32S ?
				 JK_PROTO_JK02_32S : JK_PROTO_JK02_24S);
		ck_assert_int_eq(jk_decode_settings(f, protos[n], &out), 0);
		ck_assert_mem_eq(&out, &in, sizeof(in));
	}
}
END_TEST

START_TEST(test_jk04_settings_and_device_info_round_trip)
{
	struct jk_settings in = { .protocol = JK_PROTO_JK04, .cell_count = 16, .balancer_switch = true,
				  .jk04_power_off_mv = 3100, .jk04_max_balance_current_ma = 2000 }, out;
	struct jk_device_info d = { .model = "JK_PB2A16S20P", .hw_version = "15A", .sw_version = "15.38",
				    .name = "rack-top", .serial = "0123456789ABCDEF", .uptime_s = 99,
				    .power_on_count = 7 }, dout;
	uint8_t f[JK_FRAME_LEN];

	ck_assert_int_eq(jk_encode_settings(f, &in), 0);
	ck_assert_int_eq(jk_detect_from_frame(f), JK_PROTO_JK04);
	ck_assert_int_eq(jk_decode_settings(f, JK_PROTO_JK04, &out), 0);
	ck_assert_mem_eq(&out, &in, sizeof(in));
	jk_encode_device_info(f, &d, 5);
	ck_assert_int_eq(jk_decode_device_info(f, &dout), 0);
	ck_assert_mem_eq(&dout, &d, sizeof(d));
	ck_assert_int_eq(jk_detect_from_device_info(&dout), JK_PROTO_JK02_32S);
}
END_TEST

START_TEST(test_unknown_protocol_is_refused)
{
	struct jk_sample s = { 0 };
	struct jk_settings st = { 0 };
	uint8_t f[JK_FRAME_LEN];

	ck_assert_int_lt(jk_encode_cell_info(f, &s), 0);
	ck_assert_int_lt(jk_encode_settings(f, &st), 0);
}
END_TEST

TCase *tcase_encode(void)
{
	TCase *tc = tcase_create("encode");

	tcase_add_test(tc, test_cell_info_round_trips_in_every_layout);
	tcase_add_test(tc, test_settings_round_trip_in_every_layout);
	tcase_add_test(tc, test_jk04_settings_and_device_info_round_trip);
	tcase_add_test(tc, test_unknown_protocol_is_refused);
	return tc;
}
