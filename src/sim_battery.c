/*
 * sim_battery — the simulated JK-BMS behind `jkbms sim` (see sim_battery.h).
 *
 * Invariants: 0 <= charge_mams <= capacity_mams; the notification queue
 * only fills while linked; every byte that leaves is a jk_encode frame, a
 * jk_cmd ack, or (junk fault only) "AT\r\n" plus noise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jk_cmd.h"
#include "jk_encode.h"
#include "sim_battery.h"

#define MAMS_PER_MAH 3600000LL
#define ACK_REG 0xC8			/* the BMS's ack: command header, type 0xC8, one byte 01 */
#define FIRST_FRAME_MS 250		/* from the 0x96 to the first cell-info frame */
#define CELL_MIN_MV 2500
#define CELL_MAX_MV 3650
#define BALANCE_TRIGGER_MV 5		/* = the settings frame's balance trigger */
#define BALANCE_START_MV 3400		/* = the settings frame's start-balance voltage */
#define BALANCE_CURRENT_MA 450
#define UPTIME_BASE_S (3 * 86400u)	/* the unit was up for a while before the simulator started */

static const uint8_t cmd_header[4] = { 0xAA, 0x55, 0x90, 0xEB };

/* LFP open-circuit voltage of one cell at rest, by SOC: the usual published
 * shape (steep below 10 %, a plateau of 3.25-3.34 V from 20 to 90 %, a knee
 * above 99 %).  Not from the JK documents; a model, not a measurement. */
static const struct {
	uint16_t permille, mv;
} lfp_ocv[] = {
	{ 0, 2800 }, { 50, 3000 }, { 100, 3150 }, { 200, 3220 }, { 300, 3250 },
	{ 400, 3270 }, { 500, 3285 }, { 600, 3300 }, { 700, 3315 }, { 800, 3330 },
	{ 900, 3340 }, { 950, 3350 }, { 990, 3400 }, { 1000, 3450 },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Strings of real units of each protocol (jkbms-ble.md §4.5, §4.1): what
 * jk_detect_from_device_info() tells apart. */
const struct sim_identity *sim_battery_identity(enum jk_protocol proto)
{
	static const struct sim_identity jk02_24s = { "JK-BD6A24S10P", "10.XG", "10.07" };
	static const struct sim_identity jk02_32s = { "JK_PB2A16S20P", "15A", "15.38" };
	static const struct sim_identity jk04 = { "JK-B2A16S", "3.0", "3.3.0" };

	switch (proto) {
	case JK_PROTO_JK02_24S:
		return &jk02_24s;
	case JK_PROTO_JK04:
		return &jk04;
	default:
		return &jk02_32s;
	}
}

static uint32_t rng_next(struct sim_battery *b)
{
	uint32_t x = b->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	b->rng = x;
	return x;
}

static uint16_t ocv_mv(uint16_t permille)
{
	for (size_t i = 1; i < NELEM(lfp_ocv); i++) {
		unsigned p0 = lfp_ocv[i - 1].permille, p1 = lfp_ocv[i].permille;
		unsigned v0 = lfp_ocv[i - 1].mv, v1 = lfp_ocv[i].mv;

		if (permille <= p1)
			return (uint16_t)(v0 + (v1 - v0) * (permille - p0) / (p1 - p0));
	}
	return lfp_ocv[NELEM(lfp_ocv) - 1].mv;
}

void sim_battery_init(struct sim_battery *b, const struct sim_battery_config *c, uint64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	b->cfg = *c;
	if (b->cfg.cells == 0 || b->cfg.cells > JK_MAX_CELLS)
		b->cfg.cells = 16;
	if (b->cfg.capacity_mah == 0)
		b->cfg.capacity_mah = 1000;
	b->capacity_mams = (int64_t)b->cfg.capacity_mah * MAMS_PER_MAH;
	b->rng = c->seed ^ 0x9E3779B9u;
	if (!b->rng)
		b->rng = 1;
	sim_battery_set_soc(b, c->soc_permille);
	b->load_ma = c->current_ma;
	b->temp_dc = c->temp_dc;
	for (unsigned i = 0; i < JK_MAX_CELLS; i++)
		b->cell_offset_mv[i] = (int8_t)((int)(rng_next(b) % 13) - 6);
	/* About 0.29 mΩ for 280 Ah: 80 mΩ·Ah over the capacity. */
	b->cell_res_uohm = 80000000u / b->cfg.capacity_mah;
	b->charging_switch = b->discharging_switch = b->balancer_switch = true;
	b->now_ms = b->boot_ms = now_ms;
	b->payload_max = 20;
}

int32_t sim_battery_current_ma(const struct sim_battery *b)
{
	int32_t i = b->load_ma;

	if (i > 0 && (!b->charging_switch || b->charge_mams >= b->capacity_mams))
		return 0;
	if (i < 0 && (!b->discharging_switch || b->charge_mams <= 0))
		return 0;
	return i;
}

uint16_t sim_battery_soc_permille(const struct sim_battery *b)
{
	return (uint16_t)((b->charge_mams * 1000 + b->capacity_mams / 2) / b->capacity_mams);
}

void sim_battery_advance(struct sim_battery *b, uint64_t now_ms)
{
	int64_t before = b->charge_mams, after;
	int32_t i = sim_battery_current_ma(b);

	if (now_ms <= b->now_ms)
		return;
	after = before + (int64_t)i * (int64_t)(now_ms - b->now_ms);
	if (after > b->capacity_mams)
		after = b->capacity_mams;
	if (after < 0)
		after = 0;
	b->charge_mams = after;
	b->throughput_mams += (uint64_t)llabs(after - before);
	b->now_ms = now_ms;
}

void sim_battery_set_soc(struct sim_battery *b, uint16_t soc_permille)
{
	if (soc_permille > 1000)
		soc_permille = 1000;
	b->charge_mams = b->capacity_mams * soc_permille / 1000;
}

void sim_battery_set_load(struct sim_battery *b, int32_t current_ma)
{
	b->load_ma = current_ma;
}

void sim_battery_set_temp(struct sim_battery *b, int16_t temp_dc)
{
	b->temp_dc = temp_dc;
}

void sim_battery_set_fault(struct sim_battery *b, enum sim_fault f, bool on)
{
	if (on)
		b->faults |= f;
	else
		b->faults &= ~(unsigned)f;
}

static uint16_t cell_mv(const struct sim_battery *b, unsigned i, uint16_t ocv, int32_t current_ma)
{
	int32_t mv = ocv + b->cell_offset_mv[i] + (int32_t)((int64_t)current_ma * b->cell_res_uohm / 1000000);

	if (mv < CELL_MIN_MV)
		mv = CELL_MIN_MV;
	if (mv > CELL_MAX_MV)
		mv = CELL_MAX_MV;
	return (uint16_t)mv;
}

static void sample_cells(const struct sim_battery *b, struct jk_sample *s, int32_t current_ma)
{
	uint16_t ocv = ocv_mv(sim_battery_soc_permille(b));
	unsigned n = b->cfg.cells, lo = 0, hi = 0;
	uint32_t sum = 0;

	s->cell_count = (uint8_t)n;
	s->cell_mask = n >= 32 ? 0xFFFFFFFFu : (1u << n) - 1;
	for (unsigned i = 0; i < n; i++) {
		s->cells_mv[i] = cell_mv(b, i, ocv, current_ma);
		s->cell_res_mohm[i] = (uint16_t)(55 + i * 7 % 20);
		sum += s->cells_mv[i];
		if (s->cells_mv[i] < s->cells_mv[lo])
			lo = i;
		if (s->cells_mv[i] > s->cells_mv[hi])
			hi = i;
	}
	s->voltage_mv = sum;
	s->cell_avg_mv = (uint16_t)(sum / n);
	s->cell_delta_mv = (uint16_t)(s->cells_mv[hi] - s->cells_mv[lo]);
	s->cell_max_index = (uint8_t)hi;
	s->cell_min_index = (uint8_t)lo;
	if (b->balancer_switch && s->cell_delta_mv >= BALANCE_TRIGGER_MV &&
	    s->cells_mv[hi] >= BALANCE_START_MV) {
		s->balancing = current_ma >= 0 ? JK_BALANCE_CHARGE : JK_BALANCE_DISCHARGE;
		s->balance_current_ma = current_ma >= 0 ? BALANCE_CURRENT_MA : -BALANCE_CURRENT_MA;
	}
}

void sim_battery_sample(const struct sim_battery *b, struct jk_sample *s)
{
	int32_t current_ma = sim_battery_current_ma(b);
	bool is32 = b->cfg.protocol == JK_PROTO_JK02_32S;

	memset(s, 0, sizeof(*s));
	s->protocol = b->cfg.protocol;
	s->counter = b->counter;
	sample_cells(b, s, current_ma);
	s->uptime_s = UPTIME_BASE_S + (uint32_t)((b->now_ms - b->boot_ms) / 1000);
	if (b->cfg.protocol == JK_PROTO_JK04)
		return;		/* no current, SOC, temperatures or MOSFETs on JK04 */
	s->current_ma = current_ma;
	s->power_mw = (uint32_t)((uint64_t)s->voltage_mv * (uint64_t)llabs(current_ma) / 1000);
	s->temp_count = is32 ? 5 : 2;
	s->temps_dc[0] = b->temp_dc;
	s->temps_dc[1] = (int16_t)(b->temp_dc + 3);
	for (unsigned i = 2; is32 && i < JK_MAX_TEMPS; i++)
		s->temps_dc[i] = b->temp_dc;
	s->temp_presence = is32 ? 0x1F : 0x07;
	s->mos_temp_dc = (int16_t)(b->temp_dc + 50 + llabs(current_ma) / 2000);
	s->soc_pct = (uint8_t)((sim_battery_soc_permille(b) + 5) / 10);
	s->soh_pct = 100;
	s->remaining_mah = (uint32_t)(b->charge_mams / MAMS_PER_MAH);
	s->capacity_mah = b->cfg.capacity_mah;
	s->cycle_capacity_mah = (uint32_t)(b->throughput_mams / MAMS_PER_MAH);
	s->cycles = (uint32_t)(b->throughput_mams / 2 / (uint64_t)b->capacity_mams);
	s->charging_enabled = b->charging_switch;
	s->discharging_enabled = b->discharging_switch;
	if (!is32)
		return;
	s->balancer_working = s->balancing != JK_BALANCE_OFF;
	s->charge_status = sim_battery_soc_permille(b) >= 1000 ? 2 : 0;	/* float when full */
}

static uint32_t clamp_ma(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void sim_battery_settings(const struct sim_battery *b, struct jk_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->protocol = b->cfg.protocol;
	s->cell_count = b->cfg.cells;
	s->balancer_switch = b->balancer_switch;
	if (b->cfg.protocol == JK_PROTO_JK04) {
		s->jk04_vref_mv = 2975;
		s->jk04_balance_trigger_mv = 10;
		s->jk04_max_balance_current_ma = 2000;
		s->jk04_power_off_mv = 2800;
		s->jk04_balance_start_mv = BALANCE_START_MV;
		return;
	}
	/* An LFP unit's usual settings (the PB 15.41 capture's shape). */
	s->smart_sleep_mv = 3300;
	s->cell_uvp_mv = 2600, s->cell_uvpr_mv = 2800;
	s->cell_ovp_mv = 3650, s->cell_ovpr_mv = 3550;
	s->balance_trigger_mv = BALANCE_TRIGGER_MV;
	s->soc100_mv = 3450, s->soc0_mv = 2900;
	s->rcv_mv = 3450, s->rfv_mv = 3350;
	s->power_off_mv = 2550;
	s->max_charge_current_ma = clamp_ma(b->cfg.capacity_mah / 2, 10000, 200000);
	s->max_discharge_current_ma = clamp_ma(b->cfg.capacity_mah, 10000, 200000);
	s->charge_ocp_delay_s = 30, s->charge_ocp_recovery_s = 60;
	s->discharge_ocp_delay_s = 300, s->discharge_ocp_recovery_s = 60;
	s->scp_recovery_s = 5;
	s->max_balance_current_ma = 2000;
	s->charge_otp_dc = 700, s->charge_otpr_dc = 600;
	s->discharge_otp_dc = 700, s->discharge_otpr_dc = 600;
	s->charge_utp_dc = 20, s->charge_utpr_dc = 50;
	s->mos_otp_dc = 1000, s->mos_otpr_dc = 800;
	s->charging_switch = b->charging_switch;
	s->discharging_switch = b->discharging_switch;
	s->capacity_mah = b->cfg.capacity_mah;
	s->scp_delay_us = 1500;
	s->balance_start_mv = BALANCE_START_MV;
	s->wire_res_count = b->cfg.protocol == JK_PROTO_JK02_32S ? 32 : 24;
	if (b->cfg.protocol != JK_PROTO_JK02_32S)
		return;
	s->precharge_time_s = 5;
	s->controls = 1u << 4 | 1u << 9;	/* display always on, charging float mode */
	s->heating_start_c = 3, s->heating_stop_c = 7;
	s->smart_sleep_h = 24;
	s->discharge_utp_c = -20, s->discharge_utpr_c = -10;
}

void sim_battery_device_info(const struct sim_battery *b, struct jk_device_info *d)
{
	const struct sim_identity *id = sim_battery_identity(b->cfg.protocol);

	memset(d, 0, sizeof(*d));
	snprintf(d->model, sizeof(d->model), "%s", id->model);
	snprintf(d->hw_version, sizeof(d->hw_version), "%s", id->hw_version);
	snprintf(d->sw_version, sizeof(d->sw_version), "%s", id->sw_version);
	snprintf(d->name, sizeof(d->name), "%s", b->cfg.name);
	snprintf(d->manufacturing_date, sizeof(d->manufacturing_date), "230815");
	snprintf(d->serial, sizeof(d->serial), "%010u", b->cfg.seed % 1000000000u);
	snprintf(d->user_data, sizeof(d->user_data), "jkbms sim");
	d->uptime_s = UPTIME_BASE_S + (uint32_t)((b->now_ms - b->boot_ms) / 1000);
	d->power_on_count = 7;
}

/* ------------------------------------------------------------- the link */

void sim_battery_link_up(struct sim_battery *b, uint16_t mtu, uint16_t block_len, uint64_t now_ms)
{
	sim_battery_advance(b, now_ms);
	sim_battery_link_down(b);
	b->linked = true;
	b->payload_max = mtu < 23 ? 20 : mtu - 3 > SIM_NOTIFY_MAX ? SIM_NOTIFY_MAX : (uint16_t)(mtu - 3);
	b->block_len = block_len;
}

void sim_battery_link_down(struct sim_battery *b)
{
	b->linked = false;
	b->info_sent = false;
	b->streaming = false;
	b->rx_len = 0;
	b->q_head = b->q_len = 0;
}

static void queue_push(struct sim_battery *b, const uint8_t *p, size_t n)
{
	struct sim_notification *q;

	if (b->q_len == SIM_QUEUE_LEN) {
		b->dropped++;
		return;
	}
	q = &b->queue[(b->q_head + b->q_len) % SIM_QUEUE_LEN];
	q->len = (uint16_t)n;
	memcpy(q->data, p, n);
	b->q_len++;
}

/* "AT\r\n" and up to 11 bytes of noise (never a header byte), in one
 * notification, as some modules emit between frames (§3.4). */
static void queue_junk(struct sim_battery *b)
{
	uint8_t junk[4 + 11] = { 'A', 'T', '\r', '\n' };
	size_t n = 4 + rng_next(b) % 12;

	for (size_t i = 4; i < n; i++)
		junk[i] = (uint8_t)(rng_next(b) & 0x3F);
	queue_push(b, junk, n);
}

/* One reply or frame as the module forwards it: UART blocks of block_len
 * bytes (or one block), each cut into notifications of payload_max. */
static void send_unit(struct sim_battery *b, const uint8_t *p, size_t n)
{
	size_t block = b->block_len ? b->block_len : n;

	if (!b->linked || b->faults & SIM_FAULT_SILENCE)
		return;
	if (b->faults & SIM_FAULT_JUNK)
		queue_junk(b);
	while (n > 0) {
		size_t bl = n < block ? n : block;

		for (size_t off = 0; off < bl; off += b->payload_max)
			queue_push(b, p + off, bl - off < b->payload_max ? bl - off : b->payload_max);
		p += bl;
		n -= bl;
	}
}

static void send_frame(struct sim_battery *b, const uint8_t frame[JK_FRAME_LEN], bool with_ack)
{
	uint8_t unit[JK_FRAME_LEN + JK_CMD_LEN];
	size_t n = JK_FRAME_LEN;

	memcpy(unit, frame, JK_FRAME_LEN);
	if (b->faults & SIM_FAULT_CORRUPT)
		unit[6 + rng_next(b) % (JK_FRAME_LEN - 7)] ^= 0x5A;	/* the sum changes: the checksum fails */
	if (with_ack) {
		const uint8_t one = 1;

		jk_cmd_write(unit + JK_FRAME_LEN, ACK_REG, &one, 1);
		n += JK_CMD_LEN;
	}
	send_unit(b, unit, n);
}

static void send_ack(struct sim_battery *b)
{
	const uint8_t one = 1;
	uint8_t ack[JK_CMD_LEN];

	jk_cmd_write(ack, ACK_REG, &one, 1);
	send_unit(b, ack, sizeof(ack));
}

static void send_device_info(struct sim_battery *b, bool with_ack)
{
	struct jk_device_info d;
	uint8_t f[JK_FRAME_LEN];

	sim_battery_device_info(b, &d);
	jk_encode_device_info(f, &d, b->counter);
	send_frame(b, f, with_ack);
}

static void send_settings(struct sim_battery *b)
{
	struct jk_settings s;
	uint8_t f[JK_FRAME_LEN];

	sim_battery_settings(b, &s);
	if (jk_encode_settings(f, &s) == 0)
		send_frame(b, f, true);
}

static void send_cell_info(struct sim_battery *b)
{
	struct jk_sample s;
	uint8_t f[JK_FRAME_LEN];

	sim_battery_sample(b, &s);
	if (jk_encode_cell_info(f, &s) == 0)
		send_frame(b, f, false);
	b->counter++;
}

static uint64_t stream_interval_ms(struct sim_battery *b)
{
	return SIM_STREAM_INTERVAL_MS - 60 + rng_next(b) % 121;
}

/* Which switch a register is, on this protocol; -1 for none. */
static int switch_of(enum jk_protocol proto, uint8_t reg)
{
	if (proto == JK_PROTO_JK04)
		return reg == 0x6C ? JK_SWITCH_BALANCER : -1;
	switch (reg) {
	case 0x1D:
		return JK_SWITCH_CHARGING;
	case 0x1E:
		return JK_SWITCH_DISCHARGING;
	case 0x1F:
		return JK_SWITCH_BALANCER;
	default:
		return -1;
	}
}

static void classify(const struct sim_battery *b, const uint8_t cmd[JK_CMD_LEN], struct sim_command *c)
{
	int sw;

	memset(c, 0, sizeof(*c));
	c->reg = cmd[4];
	c->len = cmd[5];
	for (unsigned i = 0; i < 4 && i < c->len; i++)
		c->value |= (uint32_t)cmd[6 + i] << (8 * i);
	if (!jk_cmd_valid(cmd))
		c->kind = SIM_CMD_BAD_CHECKSUM;
	else if (c->reg == JK_REQ_DEVICE_INFO)
		c->kind = SIM_CMD_DEVICE_INFO;
	else if (c->reg == JK_REQ_CELL_INFO)
		c->kind = SIM_CMD_CELL_INFO;
	else if ((sw = switch_of(b->cfg.protocol, c->reg)) >= 0 && c->len > 0) {
		c->kind = SIM_CMD_SWITCH;
		c->sw = (uint8_t)sw;
		c->on = c->value != 0;
	} else
		c->kind = SIM_CMD_REGISTER;
}

static void apply_switch(struct sim_battery *b, enum jk_switch sw, bool on)
{
	switch (sw) {
	case JK_SWITCH_CHARGING:
		b->charging_switch = on;
		break;
	case JK_SWITCH_DISCHARGING:
		b->discharging_switch = on;
		break;
	case JK_SWITCH_BALANCER:
		b->balancer_switch = on;
		break;
	}
}

static void handle_command(struct sim_battery *b, const uint8_t cmd[JK_CMD_LEN], uint64_t now_ms,
			   struct sim_command *c)
{
	classify(b, cmd, c);
	c->answered = c->kind != SIM_CMD_BAD_CHECKSUM && !(b->faults & SIM_FAULT_SILENCE);
	if (!c->answered)
		return;
	switch (c->kind) {
	case SIM_CMD_DEVICE_INFO:
		send_device_info(b, true);
		b->info_sent = true;
		break;
	case SIM_CMD_CELL_INFO:
		send_settings(b);
		if (b->cfg.strict_order && !b->info_sent) {
			send_device_info(b, false);	/* 0x01 and 0x03, but no stream (E#1020) */
			break;
		}
		if (!b->streaming) {
			b->streaming = true;
			b->next_frame_ms = now_ms + FIRST_FRAME_MS;
		}
		break;
	case SIM_CMD_SWITCH:
		apply_switch(b, (enum jk_switch)c->sw, c->on);
		send_ack(b);
		break;
	case SIM_CMD_REGISTER:
		send_ack(b);
		break;
	case SIM_CMD_BAD_CHECKSUM:
		break;
	}
}

/* Keep rx a prefix of a command: drop bytes until it starts like a header. */
static void rx_resync(struct sim_battery *b)
{
	while (b->rx_len > 0 &&
	       memcmp(b->rx, cmd_header, b->rx_len < 4 ? b->rx_len : 4) != 0) {
		memmove(b->rx, b->rx + 1, b->rx_len - 1);
		b->rx_len--;
	}
}

unsigned sim_battery_write(struct sim_battery *b, const uint8_t *data, size_t len, uint64_t now_ms,
			   struct sim_command *cmds, unsigned max)
{
	unsigned n = 0;

	sim_battery_advance(b, now_ms);
	if (!b->linked)
		return 0;
	for (size_t i = 0; i < len; i++) {
		struct sim_command c;

		b->rx[b->rx_len++] = data[i];
		rx_resync(b);
		if (b->rx_len < JK_CMD_LEN)
			continue;
		handle_command(b, b->rx, now_ms, &c);
		if (n < max)
			cmds[n] = c;
		n++;
		b->rx_len = 0;
	}
	return n;
}

uint64_t sim_battery_next_due_ms(const struct sim_battery *b)
{
	return b->linked && b->streaming ? b->next_frame_ms : UINT64_MAX;
}

void sim_battery_tick(struct sim_battery *b, uint64_t now_ms)
{
	sim_battery_advance(b, now_ms);
	if (!b->linked || !b->streaming || now_ms < b->next_frame_ms)
		return;
	send_cell_info(b);
	b->next_frame_ms += stream_interval_ms(b);
	if (b->next_frame_ms <= now_ms)		/* late (a stalled loop): no burst to catch up */
		b->next_frame_ms = now_ms + stream_interval_ms(b);
}

bool sim_battery_pop(struct sim_battery *b, struct sim_notification *out)
{
	const struct sim_notification *q;

	if (b->q_len == 0)
		return false;
	q = &b->queue[b->q_head];
	out->len = q->len;
	memcpy(out->data, q->data, q->len);
	b->q_head = (b->q_head + 1) % SIM_QUEUE_LEN;
	b->q_len--;
	return true;
}

void sim_command_describe(const struct sim_command *c, char *buf, size_t size)
{
	static const char *const switches[] = {
		[JK_SWITCH_CHARGING] = "charging", [JK_SWITCH_DISCHARGING] = "discharging",
		[JK_SWITCH_BALANCER] = "balancer",
	};
	const char *tail = c->answered || c->kind == SIM_CMD_BAD_CHECKSUM ? "" : " (not answered: silenced)";

	switch (c->kind) {
	case SIM_CMD_DEVICE_INFO:
		snprintf(buf, size, "0x97 device info%s", tail);
		break;
	case SIM_CMD_CELL_INFO:
		snprintf(buf, size, "0x96 cell info%s", tail);
		break;
	case SIM_CMD_SWITCH:
		snprintf(buf, size, "0x%02X %s switch %s%s", c->reg, switches[c->sw % 3], c->on ? "on" : "off",
			 tail);
		break;
	case SIM_CMD_REGISTER:
		if (c->len == 0)
			snprintf(buf, size, "0x%02X request (acked, not simulated)%s", c->reg, tail);
		else
			snprintf(buf, size, "0x%02X register write, %u bytes, value 0x%X (acked, not simulated)%s",
				 c->reg, c->len, c->value, tail);
		break;
	case SIM_CMD_BAD_CHECKSUM:
		snprintf(buf, size, "0x%02X with a bad checksum (ignored)", c->reg);
		break;
	}
}
