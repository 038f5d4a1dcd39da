/*
 * e2e — shared helpers of the end-to-end tests (see e2e.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "e2e.h"
#include "jk_encode.h"
#include "tests.h"

void e2e_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

double e2e_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *e2e_daemon_bin(void)
{
	const char *b = getenv("JKBRIDGED");

	return b && *b ? b : "build/jkbridged";
}

static void put_hex(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02X", p[i]);
	fputc('\n', f);
}

void e2e_write_capture(const char *path, const struct e2e_pack *p)
{
	uint8_t frame[JK_FRAME_LEN];
	struct jk_device_info info = { .model = "JK_PB2A16S20P", .hw_version = "15A", .sw_version = "15.38" };
	struct jk_settings st = { .protocol = p->proto, .cell_count = 16, .cell_ovp_mv = 3650,
				  .cell_uvp_mv = 2600, .max_charge_current_ma = p->max_charge_ma,
				  .max_discharge_current_ma = p->max_discharge_ma, .charging_switch = true,
				  .discharging_switch = true, .balancer_switch = true };
	struct jk_sample s = { .protocol = p->proto, .cell_count = 16, .cell_mask = 0xFFFF,
			       .voltage_mv = 16u * p->cell_mv, .current_ma = p->current_ma,
			       .soc_pct = p->soc_pct, .soh_pct = 100, .capacity_mah = p->capacity_mah,
			       .remaining_mah = p->capacity_mah / 100 * p->soc_pct,
			       .temps_dc = { p->temp_dc, p->temp_dc, JK_TEMP_ABSENT_DC, JK_TEMP_ABSENT_DC,
					     JK_TEMP_ABSENT_DC },
			       .mos_temp_dc = 300, .charging_enabled = true, .discharging_enabled = true };
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s", path);
	fprintf(f, "# built by the end-to-end tests with jk_encode\n");
	if (p->junk_only) {
		fprintf(f, "41540D0A\n0102030405\n");
		fclose(f);
		return;
	}
	if (p->proto == JK_PROTO_JK02_24S)
		strcpy(info.sw_version, "10.08");
	jk_encode_device_info(frame, &info, 0);
	put_hex(f, frame, 150);
	put_hex(f, frame + 150, 150);
	jk_encode_settings(frame, &st);
	put_hex(f, frame, JK_FRAME_LEN);
	for (unsigned i = 0; i < 16; i++)
		s.cells_mv[i] = p->cell_mv;
	for (unsigned n = 0; n < p->cell_frames; n++) {
		s.counter = (uint8_t)n;
		jk_encode_cell_info(frame, &s);
		for (unsigned off = 0; off < JK_FRAME_LEN; off += 20)	/* 20-byte notifications */
			put_hex(f, frame + off, 20);
	}
	fclose(f);
}

size_t e2e_read_can_log(const char *path, struct can_line *lines, size_t max)
{
	char text[256];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (n < max && fgets(text, sizeof(text), f)) {
		struct can_line *l = &lines[n];
		const char *hash = strchr(text, '#');

		if (!strchr(text, '\n'))	/* the daemon is still writing this line */
			break;
		ck_assert_msg(hash && sscanf(text, "(%lf) %*s %x#", &l->t, &l->id) == 2,
			      "bad candump line: %s", text);
		l->len = 0;
		for (const char *p = hash + 1; l->len < 8 && sscanf(p, "%2hhx", &l->data[l->len]) == 1; p += 2)
			l->len++;
		n++;
	}
	fclose(f);
	return n;
}

const struct can_line *e2e_last_frame(const struct can_line *lines, size_t n, unsigned id, double after)
{
	for (size_t i = n; i-- > 0;)
		if (lines[i].id == id && lines[i].t >= after)
			return &lines[i];
	return NULL;
}

unsigned e2e_u16le(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}
