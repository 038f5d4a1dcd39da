/*
 * sim_battery: the simulated BMS behaves like the real one, as a client
 * sees it.  Everything it sends goes through the project's own jk_stream
 * and jk_decode here, so "decodes to the model's values" means what the
 * daemon will read from the simulator.
 */
#include <string.h>

#include "jk_cmd.h"
#include "sim_battery.h"
#include "tests.h"

TCase *tcase_sim_battery(void);

#define T0 1000000u		/* any monotonic start time */
#define HOUR_MS 3600000u

static struct sim_battery_config config_for(enum jk_protocol proto)
{
	return (struct sim_battery_config){
		.name = "sim-test",
		.protocol = proto,
		.cells = 16,
		.capacity_mah = 100000,
		.soc_permille = 500,
		.current_ma = proto == JK_PROTO_JK04 ? 0 : -10500,
		.temp_dc = 215,
		.seed = 42,
	};
}

/* What a client made of the notifications. */
struct seen {
	struct jk_stream stream;
	enum jk_protocol proto;
	unsigned cell_infos, settings_frames, device_infos, notifications;
	unsigned sizes[SIM_QUEUE_LEN];
	struct jk_sample sample;	/* the last of each */
	struct jk_settings settings;
	struct jk_device_info info;
	uint8_t first_counter, last_counter;
};

static void seen_init(struct seen *s, enum jk_protocol proto)
{
	memset(s, 0, sizeof(*s));
	jk_stream_init(&s->stream);
	s->proto = proto;
}

static void seen_frame(struct seen *s, const uint8_t *f)
{
	switch (jk_frame_type(f)) {
	case JK_FRAME_CELL_INFO:
		ck_assert_int_eq(jk_decode_cell_info(f, s->proto, &s->sample), 0);
		ck_assert_int_eq(jk_detect_from_frame(f), s->proto);
		if (s->cell_infos++ == 0)
			s->first_counter = s->sample.counter;
		s->last_counter = s->sample.counter;
		break;
	case JK_FRAME_SETTINGS:
		ck_assert_int_eq(jk_decode_settings(f, s->proto, &s->settings), 0);
		s->settings_frames++;
		break;
	case JK_FRAME_DEVICE_INFO:
		ck_assert_int_eq(jk_decode_device_info(f, &s->info), 0);
		s->device_infos++;
		break;
	default:
		ck_abort_msg("unexpected frame type 0x%02X", f[4]);
	}
}

/* Pop every queued notification and feed it to the reassembler. */
static void drain(struct sim_battery *b, struct seen *s)
{
	struct sim_notification n;

	while (sim_battery_pop(b, &n)) {
		const uint8_t *p = n.data;
		size_t len = n.len;
		struct jk_token tok;

		if (s->notifications < SIM_QUEUE_LEN)
			s->sizes[s->notifications] = n.len;
		s->notifications++;
		do {
			size_t used = jk_stream_feed(&s->stream, p, len, &tok);

			p += used;
			len -= used;
			if (tok.kind == JK_TOKEN_FRAME)
				seen_frame(s, tok.data);
		} while (len > 0 || tok.kind != JK_TOKEN_NONE);
	}
}

static unsigned send_request(struct sim_battery *b, enum jk_request req, uint64_t now, struct sim_command *c)
{
	uint8_t cmd[JK_CMD_LEN];

	jk_cmd_request(cmd, req);
	return sim_battery_write(b, cmd, sizeof(cmd), now, c, 1);
}

/* Link up and the usual handshake: 0x97, then 0x96. */
static void handshake(struct sim_battery *b, struct seen *s, uint16_t mtu, uint16_t block)
{
	struct sim_command c;

	sim_battery_link_up(b, mtu, block, T0);
	ck_assert_uint_eq(send_request(b, JK_REQ_DEVICE_INFO, T0, &c), 1);
	ck_assert_int_eq(c.kind, SIM_CMD_DEVICE_INFO);
	drain(b, s);
	ck_assert_uint_eq(send_request(b, JK_REQ_CELL_INFO, T0 + 100, &c), 1);
	ck_assert_int_eq(c.kind, SIM_CMD_CELL_INFO);
	drain(b, s);
}

/* ------------------------------------------------------------ the battery */

static const struct {
	const char *name;
	uint16_t soc_permille;
	int32_t load_ma;
	uint64_t dt_ms;
	bool charging_switch, discharging_switch;
	uint16_t want_permille;
	int32_t want_current_ma;
} soc_cases[] = {
	{ "charging 10 A for an hour adds 10 Ah", 500, 10000, HOUR_MS, true, true, 600, 10000 },
	{ "discharging 25 A for two hours takes 50 Ah", 800, -25000, 2 * HOUR_MS, true, true, 300, -25000 },
	{ "no current leaves the SOC alone", 420, 0, HOUR_MS, true, true, 420, 0 },
	{ "a full pack takes no more charge", 950, 50000, HOUR_MS, true, true, 1000, 0 },
	{ "an empty pack gives no more", 100, -50000, HOUR_MS, true, true, 0, 0 },
	{ "charging switch off blocks charge current", 500, 10000, HOUR_MS, false, true, 500, 0 },
	{ "charging switch off lets discharge through", 500, -10000, HOUR_MS, false, true, 400, -10000 },
	{ "discharging switch off blocks discharge", 500, -10000, HOUR_MS, true, false, 500, 0 },
};

START_TEST(test_soc_follows_current)
{
	for (size_t i = 0; i < sizeof(soc_cases) / sizeof(soc_cases[0]); i++) {
		struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
		struct sim_battery b;

		c.soc_permille = soc_cases[i].soc_permille;
		c.current_ma = soc_cases[i].load_ma;
		sim_battery_init(&b, &c, T0);
		b.charging_switch = soc_cases[i].charging_switch;
		b.discharging_switch = soc_cases[i].discharging_switch;
		sim_battery_advance(&b, T0 + soc_cases[i].dt_ms);
		ck_assert_msg(sim_battery_soc_permille(&b) == soc_cases[i].want_permille, "%s: SOC %u, want %u",
			      soc_cases[i].name, sim_battery_soc_permille(&b), soc_cases[i].want_permille);
		ck_assert_msg(sim_battery_current_ma(&b) == soc_cases[i].want_current_ma, "%s: current %d",
			      soc_cases[i].name, sim_battery_current_ma(&b));
	}
}
END_TEST

START_TEST(test_small_steps_integrate_like_one_big_step)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_24S);
	struct sim_battery one, many;

	c.current_ma = 33333;
	sim_battery_init(&one, &c, T0);
	sim_battery_init(&many, &c, T0);
	sim_battery_advance(&one, T0 + HOUR_MS);
	for (uint64_t t = T0; t <= T0 + HOUR_MS; t += 487)
		sim_battery_advance(&many, t);
	sim_battery_advance(&many, T0 + HOUR_MS);
	ck_assert_int_eq(one.charge_mams, many.charge_mams);
	ck_assert_uint_eq(one.throughput_mams, many.throughput_mams);
	sim_battery_advance(&many, T0);		/* time never runs backwards */
	ck_assert_int_eq(one.charge_mams, many.charge_mams);
}
END_TEST

START_TEST(test_cells_follow_soc_and_sum_to_the_voltage)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct jk_sample s;
	unsigned last_avg = 0;

	c.current_ma = 0;
	sim_battery_init(&b, &c, T0);
	for (uint16_t soc = 0; soc <= 1000; soc += 50) {
		uint32_t sum = 0;

		sim_battery_set_soc(&b, soc);
		sim_battery_sample(&b, &s);
		ck_assert_uint_eq(s.cell_count, 16);
		for (unsigned i = 0; i < 16; i++)
			sum += s.cells_mv[i];
		ck_assert_uint_eq(s.voltage_mv, sum);
		ck_assert_uint_ge(s.cell_avg_mv, last_avg);	/* the OCV curve rises */
		ck_assert_uint_le(s.cell_delta_mv, 15);		/* a small, fixed spread */
		ck_assert_uint_eq(s.soc_pct, (soc + 5) / 10);
		last_avg = s.cell_avg_mv;
	}
	ck_assert_uint_ge(last_avg, 3400);
}
END_TEST

START_TEST(test_charge_current_lifts_the_cells)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct jk_sample rest, charging;

	c.current_ma = 0;
	sim_battery_init(&b, &c, T0);
	sim_battery_sample(&b, &rest);
	sim_battery_set_load(&b, 100000);
	sim_battery_sample(&b, &charging);
	ck_assert_uint_gt(charging.cell_avg_mv, rest.cell_avg_mv);
	ck_assert_int_eq(charging.current_ma, 100000);
	ck_assert_uint_eq(charging.power_mw, (uint64_t)charging.voltage_mv * 100);
}
END_TEST

/* ------------------------------------------------------------- the frames */

static const struct {
	enum jk_protocol proto;
	uint16_t mtu, block;
	unsigned stream_sizes[4];	/* the notifications of one cell-info frame */
} link_cases[] = {
	{ JK_PROTO_JK02_24S, 131, 0, { 128, 128, 44 } },
	{ JK_PROTO_JK02_32S, 131, 150, { 128, 22, 128, 22 } },
	{ JK_PROTO_JK04, 23, 0, { 20, 20, 20, 20 } },
};

START_TEST(test_frames_decode_to_the_model_in_every_protocol)
{
	for (size_t i = 0; i < sizeof(link_cases) / sizeof(link_cases[0]); i++) {
		enum jk_protocol proto = link_cases[i].proto;
		struct sim_battery_config c = config_for(proto);
		struct sim_battery b;
		struct jk_sample want;
		struct seen s;
		unsigned before;

		sim_battery_init(&b, &c, T0);
		seen_init(&s, proto);
		handshake(&b, &s, link_cases[i].mtu, link_cases[i].block);
		ck_assert_uint_eq(s.device_infos, 1);
		ck_assert_str_eq(s.info.model, sim_battery_identity(proto)->model);
		ck_assert_str_eq(s.info.name, "sim-test");
		ck_assert_int_eq(jk_detect_from_device_info(&s.info), proto);
		ck_assert_uint_eq(s.settings_frames, 1);
		ck_assert_uint_eq(s.settings.cell_count, 16);
		ck_assert_uint_eq(s.stream.stats.acks, 2);
		ck_assert_uint_eq(s.cell_infos, 0);

		sim_battery_advance(&b, T0 + 400);
		sim_battery_sample(&b, &want);
		before = s.notifications;
		sim_battery_tick(&b, T0 + 400);
		drain(&b, &s);
		ck_assert_uint_eq(s.cell_infos, 1);
		for (unsigned k = 0; k < 4 && link_cases[i].stream_sizes[k]; k++)
			ck_assert_uint_eq(s.sizes[before + k], link_cases[i].stream_sizes[k]);
		ck_assert_mem_eq(s.sample.cells_mv, want.cells_mv, sizeof(want.cells_mv));
		ck_assert_uint_eq(s.sample.cell_mask, 0xFFFF);
		ck_assert_uint_eq(s.sample.counter, want.counter);
		if (proto == JK_PROTO_JK04)
			continue;
		ck_assert_uint_eq(s.sample.voltage_mv, want.voltage_mv);
		ck_assert_int_eq(s.sample.current_ma, -10500);
		ck_assert_uint_eq(s.sample.soc_pct, 50);
		ck_assert_uint_eq(s.sample.remaining_mah, want.remaining_mah);
		ck_assert_int_eq(s.sample.temps_dc[0], 215);
		ck_assert(s.sample.charging_enabled && s.sample.discharging_enabled);
		ck_assert_uint_eq(s.settings.capacity_mah, 100000);
		ck_assert(s.settings.charging_switch && s.settings.discharging_switch);
	}
}
END_TEST

START_TEST(test_cell_info_streams_every_half_second_until_the_link_drops)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct seen s;
	uint64_t t;

	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_32S);
	handshake(&b, &s, 131, 150);
	for (t = T0 + 100; t <= T0 + 100 + 10000; t += 10) {
		sim_battery_tick(&b, t);
		drain(&b, &s);
	}
	ck_assert_uint_ge(s.cell_infos, 18);
	ck_assert_uint_le(s.cell_infos, 21);
	ck_assert_uint_eq((uint8_t)(s.last_counter - s.first_counter), s.cell_infos - 1);
	ck_assert_uint_lt(s.sample.remaining_mah, 50000 - 10500 * 9 / 3600);	/* 10.5 A for about 10 s */
	ck_assert_uint_ge(s.sample.remaining_mah, 50000 - 10500 * 11 / 3600);

	sim_battery_link_down(&b);
	ck_assert_uint_eq(sim_battery_next_due_ms(&b), UINT64_MAX);
	sim_battery_tick(&b, t + 5000);
	ck_assert(!sim_battery_pop(&b, &(struct sim_notification){ 0 }));
}
END_TEST

START_TEST(test_strict_order_streams_only_after_0x97)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct sim_command cmd;
	struct seen s;

	c.strict_order = true;
	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_32S);
	sim_battery_link_up(&b, 131, 150, T0);
	send_request(&b, JK_REQ_CELL_INFO, T0, &cmd);
	sim_battery_tick(&b, T0 + 2000);
	drain(&b, &s);
	ck_assert_uint_eq(s.settings_frames, 1);	/* fw 20.20: 0x01 and 0x03, no 0x02 */
	ck_assert_uint_eq(s.device_infos, 1);
	ck_assert_uint_eq(s.cell_infos, 0);

	send_request(&b, JK_REQ_DEVICE_INFO, T0 + 2000, &cmd);
	send_request(&b, JK_REQ_CELL_INFO, T0 + 2100, &cmd);
	sim_battery_tick(&b, T0 + 3000);
	drain(&b, &s);
	ck_assert_uint_eq(s.cell_infos, 1);
}
END_TEST

/* --------------------------------------------------------------- commands */

static const struct {
	enum jk_protocol proto;
	enum jk_switch sw;
	uint8_t reg;
} switch_cases[] = {
	{ JK_PROTO_JK02_24S, JK_SWITCH_CHARGING, 0x1D },
	{ JK_PROTO_JK02_24S, JK_SWITCH_DISCHARGING, 0x1E },
	{ JK_PROTO_JK02_32S, JK_SWITCH_CHARGING, 0x1D },
	{ JK_PROTO_JK02_32S, JK_SWITCH_DISCHARGING, 0x1E },
	{ JK_PROTO_JK02_32S, JK_SWITCH_BALANCER, 0x1F },
	{ JK_PROTO_JK04, JK_SWITCH_BALANCER, 0x6C },
};

static bool switch_in_settings(const struct jk_settings *st, enum jk_switch sw)
{
	return sw == JK_SWITCH_CHARGING ? st->charging_switch :
	       sw == JK_SWITCH_DISCHARGING ? st->discharging_switch : st->balancer_switch;
}

START_TEST(test_switch_writes_change_the_state_and_are_acked)
{
	for (size_t i = 0; i < sizeof(switch_cases) / sizeof(switch_cases[0]); i++) {
		enum jk_protocol proto = switch_cases[i].proto;
		enum jk_switch sw = switch_cases[i].sw;
		struct sim_battery_config c = config_for(proto);
		struct sim_battery b;
		struct sim_command cmd;
		uint8_t frame[JK_CMD_LEN];
		struct seen s;

		sim_battery_init(&b, &c, T0);
		seen_init(&s, proto);
		handshake(&b, &s, 131, 0);
		for (int on = 0; on <= 1; on++) {
			unsigned acks = s.stream.stats.acks;

			ck_assert_int_eq(jk_cmd_switch(frame, proto, sw, on), 0);
			ck_assert_uint_eq(sim_battery_write(&b, frame, sizeof(frame), T0 + 200, &cmd, 1), 1);
			ck_assert_int_eq(cmd.kind, SIM_CMD_SWITCH);
			ck_assert_uint_eq(cmd.reg, switch_cases[i].reg);
			ck_assert_uint_eq(cmd.sw, sw);
			ck_assert(cmd.on == on && cmd.answered);
			drain(&b, &s);
			ck_assert_uint_eq(s.stream.stats.acks, acks + 1);

			send_request(&b, JK_REQ_CELL_INFO, T0 + 300, &cmd);	/* fresh settings */
			sim_battery_tick(&b, T0 + 300 + 2000 * (on + 1));
			drain(&b, &s);
			ck_assert(switch_in_settings(&s.settings, sw) == on);
			if (sw == JK_SWITCH_CHARGING)
				ck_assert(s.sample.charging_enabled == on);
			if (sw == JK_SWITCH_DISCHARGING) {
				ck_assert(s.sample.discharging_enabled == on);
				ck_assert_int_eq(s.sample.current_ma, on ? -10500 : 0);
			}
		}
	}
}
END_TEST

START_TEST(test_other_writes_are_acked_and_bad_commands_ignored)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct sim_command cmd[2];
	uint8_t frame[JK_CMD_LEN], two[2 * JK_CMD_LEN + 3] = { 0x00, 0x41, 0x54 };
	struct seen s;

	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_32S);
	sim_battery_link_up(&b, 131, 150, T0);

	jk_cmd_write_u32(frame, 0x6C, 0x0B1F2C3F);	/* JK02_32S time sync */
	ck_assert_uint_eq(sim_battery_write(&b, frame, sizeof(frame), T0, cmd, 1), 1);
	ck_assert_int_eq(cmd[0].kind, SIM_CMD_REGISTER);
	ck_assert_uint_eq(cmd[0].value, 0x0B1F2C3F);
	drain(&b, &s);
	ck_assert_uint_eq(s.stream.stats.acks, 1);

	frame[19] ^= 1;				/* bad checksum: the BMS stays quiet */
	ck_assert_uint_eq(sim_battery_write(&b, frame, sizeof(frame), T0, cmd, 1), 1);
	ck_assert_int_eq(cmd[0].kind, SIM_CMD_BAD_CHECKSUM);
	ck_assert(!cmd[0].answered);
	drain(&b, &s);
	ck_assert_uint_eq(s.stream.stats.acks, 1);

	/* junk before a header is skipped; a command may come in pieces */
	jk_cmd_request(two + 3, JK_REQ_DEVICE_INFO);
	jk_cmd_request(two + 3 + JK_CMD_LEN, JK_REQ_CELL_INFO);
	ck_assert_uint_eq(sim_battery_write(&b, two, 3 + 25, T0, cmd, 2), 1);
	ck_assert_uint_eq(sim_battery_write(&b, two + 28, sizeof(two) - 28, T0, cmd + 1, 1), 1);
	ck_assert_int_eq(cmd[0].kind, SIM_CMD_DEVICE_INFO);
	ck_assert_int_eq(cmd[1].kind, SIM_CMD_CELL_INFO);
	drain(&b, &s);
	ck_assert_uint_eq(s.device_infos, 1);
	ck_assert_uint_eq(s.settings_frames, 1);

	sim_battery_link_down(&b);
	ck_assert_uint_eq(sim_battery_write(&b, frame, sizeof(frame), T0, cmd, 1), 0);
}
END_TEST

/* ----------------------------------------------------------------- faults */

START_TEST(test_corrupt_frames_fail_their_checksum)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_24S);
	struct sim_battery b;
	struct seen s;

	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_24S);
	sim_battery_set_fault(&b, SIM_FAULT_CORRUPT, true);
	handshake(&b, &s, 131, 0);
	sim_battery_tick(&b, T0 + 600);
	drain(&b, &s);
	ck_assert_uint_eq(s.stream.stats.frames, 0);
	ck_assert_uint_ge(s.stream.stats.bad_checksums, 3);
	ck_assert_uint_eq(s.stream.stats.acks, 2);	/* acks are not frames: intact */

	sim_battery_set_fault(&b, SIM_FAULT_CORRUPT, false);
	sim_battery_tick(&b, T0 + 2000);
	drain(&b, &s);
	ck_assert_uint_eq(s.cell_infos, 1);
}
END_TEST

START_TEST(test_junk_between_frames_leaves_them_decodable)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct seen s;

	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_32S);
	sim_battery_set_fault(&b, SIM_FAULT_JUNK, true);
	handshake(&b, &s, 131, 150);
	for (uint64_t t = T0; t < T0 + 3000; t += 50) {
		sim_battery_tick(&b, t);
		drain(&b, &s);
	}
	ck_assert_uint_eq(s.device_infos, 1);
	ck_assert_uint_eq(s.settings_frames, 1);
	ck_assert_uint_ge(s.cell_infos, 4);
	ck_assert_uint_ge(s.stream.stats.at_tokens + s.stream.stats.skipped_bytes, 4u * 7);
	ck_assert_uint_eq(s.stream.stats.bad_checksums, 0);
}
END_TEST

START_TEST(test_silence_sends_nothing_and_answers_nothing)
{
	struct sim_battery_config c = config_for(JK_PROTO_JK02_32S);
	struct sim_battery b;
	struct sim_command cmd;
	struct seen s;
	char text[128];

	sim_battery_init(&b, &c, T0);
	seen_init(&s, JK_PROTO_JK02_32S);
	handshake(&b, &s, 131, 150);
	sim_battery_set_fault(&b, SIM_FAULT_SILENCE, true);
	send_request(&b, JK_REQ_DEVICE_INFO, T0 + 200, &cmd);
	ck_assert(!cmd.answered);
	sim_command_describe(&cmd, text, sizeof(text));
	ck_assert_str_eq(text, "0x97 device info (not answered: silenced)");
	sim_battery_tick(&b, T0 + 3000);
	drain(&b, &s);
	ck_assert_uint_eq(s.device_infos, 1);
	ck_assert_uint_eq(s.cell_infos, 0);

	sim_battery_set_fault(&b, SIM_FAULT_SILENCE, false);	/* the stream was never stopped */
	sim_battery_tick(&b, T0 + 4000);
	drain(&b, &s);
	ck_assert_uint_eq(s.cell_infos, 1);
}
END_TEST

TCase *tcase_sim_battery(void)
{
	TCase *tc = tcase_create("sim_battery");

	tcase_add_test(tc, test_soc_follows_current);
	tcase_add_test(tc, test_small_steps_integrate_like_one_big_step);
	tcase_add_test(tc, test_cells_follow_soc_and_sum_to_the_voltage);
	tcase_add_test(tc, test_charge_current_lifts_the_cells);
	tcase_add_test(tc, test_frames_decode_to_the_model_in_every_protocol);
	tcase_add_test(tc, test_cell_info_streams_every_half_second_until_the_link_drops);
	tcase_add_test(tc, test_strict_order_streams_only_after_0x97);
	tcase_add_test(tc, test_switch_writes_change_the_state_and_are_acked);
	tcase_add_test(tc, test_other_writes_are_acked_and_bad_commands_ignored);
	tcase_add_test(tc, test_corrupt_frames_fail_their_checksum);
	tcase_add_test(tc, test_junk_between_frames_leaves_them_decodable);
	tcase_add_test(tc, test_silence_sends_nothing_and_answers_nothing);
	return tc;
}
