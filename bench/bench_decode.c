/*
 * bench_decode — what one cell-info frame costs: reassembly from 20-byte
 * BLE notifications through jk_stream plus jk_decode_cell_info (JK02_32S),
 * and each half on its own.  A measurement, not a test: no pass/fail.
 *
 * The frame is built here (valid checksum, a plausible 16-cell JK02_32S
 * pack, offsets from jkbms-ble.md §4.2), so the benchmark needs nothing
 * from ../shared/vectors.  Each measurement first calibrates an iteration
 * count for about one second, then times it with CLOCK_MONOTONIC.  The
 * results feed a checksum that is printed, so nothing can be optimised away.
 *
 * Usage: make bench   (or build/bench_decode [seconds])
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jk_decode.h"
#include "jk_stream.h"

#define CHUNK 20	/* a default-MTU BLE notification */

static uint8_t frame[JK_FRAME_LEN];
static uint64_t checksum;	/* folded results, printed at the end */

static void put16(unsigned off, uint16_t v)
{
	frame[off] = (uint8_t)v;
	frame[off + 1] = (uint8_t)(v >> 8);
}

static void put32(unsigned off, uint32_t v)
{
	put16(off, (uint16_t)v);
	put16(off + 2, (uint16_t)(v >> 16));
}

/* A 16S LiFePO4 pack on a fw 11.x+ BMS, discharging at 12.5 A. */
static void build_frame(void)
{
	static const uint8_t tail[] = { 0xFE, 0xFF, 0x7F, 0xDC, 0x0F, 0x01, 0x00 };
	uint32_t sum_mv = 0;
	float vref = 3.0f;

	memset(frame, 0, sizeof(frame));
	frame[0] = 0x55;
	frame[1] = 0xAA;
	frame[2] = 0xEB;
	frame[3] = 0x90;
	frame[4] = JK_FRAME_CELL_INFO;
	frame[5] = 0x42;
	for (unsigned i = 0; i < 16; i++) {
		uint16_t mv = (uint16_t)(3290 + (i * 7) % 23);

		put16(6 + 2 * i, mv);
		put16(80 + 2 * i, (uint16_t)(60 + i % 5));	/* wire resistance, mΩ */
		sum_mv += mv;
	}
	put32(70, 0x0000FFFFu);			/* 16 cells enabled */
	put16(74, (uint16_t)(sum_mv / 16));	/* average */
	put16(76, 22);				/* delta */
	frame[78] = 15;				/* max cell, 0-based */
	frame[79] = 0;				/* min cell */
	put16(144, 281);			/* MOSFET 28.1 °C */
	put32(150, sum_mv);			/* pack voltage */
	put32(154, sum_mv * 25 / 2);		/* power, mW (V x 12.5 A) */
	put32(158, (uint32_t)-12500);		/* -12.5 A */
	put16(162, 243);			/* T1 24.3 °C */
	put16(164, 239);			/* T2 */
	put32(166, 0);				/* no errors */
	put16(170, 0);				/* balance current */
	frame[172] = 0;				/* not balancing */
	frame[173] = 76;			/* SOC % */
	put32(174, 212800);			/* remaining mAh */
	put32(178, 280000);			/* full mAh */
	put32(182, 87);				/* cycles */
	put32(186, 24360000);			/* cycle capacity mAh */
	frame[190] = 100;			/* SOH */
	put32(194, 3124519);			/* uptime s */
	frame[198] = 1;				/* charge MOSFET */
	frame[199] = 1;				/* discharge MOSFET */
	frame[214] = 0xFF;			/* temperature sensors present */
	memcpy(frame + 226, &vref, 4);		/* calibration float */
	put16(234, (uint16_t)(sum_mv / 10));	/* second pack voltage, 10 mV */
	put16(254, 281);
	put16(256, 240);
	put16(258, 241);
	put32(270, 86400);			/* smart-sleep countdown */
	memcpy(frame + 283, tail, sizeof(tail));
	frame[JK_FRAME_LEN - 1] = jk_sum8(frame, JK_FRAME_LEN - 1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fold(const struct jk_sample *s)
{
	checksum = checksum * 31 + s->voltage_mv + (uint32_t)s->current_ma + s->cell_count +
		   s->cells_mv[15] + s->counter;
}

/* One frame through the stream, in 20-byte notifications, then decoded. */
static void run_stream_decode(struct jk_stream *st, uint64_t n)
{
	struct jk_sample s;
	struct jk_token tok;

	for (uint64_t k = 0; k < n; k++) {
		for (unsigned off = 0; off < JK_FRAME_LEN; off += CHUNK) {
			const uint8_t *in = frame + off;
			size_t left = CHUNK;

			while (left > 0) {
				size_t used = jk_stream_feed(st, in, left, &tok);

				in += used;
				left -= used;
				if (tok.kind == JK_TOKEN_FRAME &&
				    jk_decode_cell_info(tok.data, JK_PROTO_JK02_32S, &s) == 0)
					fold(&s);
			}
		}
	}
}

/* The reassembly alone. */
static void run_stream_only(struct jk_stream *st, uint64_t n)
{
	struct jk_token tok;

	for (uint64_t k = 0; k < n; k++) {
		for (unsigned off = 0; off < JK_FRAME_LEN; off += CHUNK) {
			const uint8_t *in = frame + off;
			size_t left = CHUNK;

			while (left > 0) {
				size_t used = jk_stream_feed(st, in, left, &tok);

				in += used;
				left -= used;
				if (tok.kind == JK_TOKEN_FRAME)
					checksum = checksum * 31 + tok.data[5] + tok.len;
			}
		}
	}
}

/* The decoder alone. */
static void run_decode_only(struct jk_stream *st, uint64_t n)
{
	struct jk_sample s;

	(void)st;
	for (uint64_t k = 0; k < n; k++) {
		if (jk_decode_cell_info(frame, JK_PROTO_JK02_32S, &s) == 0)
			fold(&s);
	}
}

struct bench {
	const char *name;
	void (*run)(struct jk_stream *st, uint64_t n);
};

static void measure(const struct bench *b, double seconds)
{
	struct jk_stream st;
	uint64_t n = 1000;
	double t0, dt;

	jk_stream_init(&st);
	/* Calibrate: grow n until a run takes a quarter of the target. */
	for (;;) {
		t0 = now_s();
		b->run(&st, n);
		dt = now_s() - t0;
		if (dt >= seconds / 4 || n >= (uint64_t)1 << 40)
			break;
		n *= dt > 0 ? (dt * 20 < seconds ? 10 : 2) : 10;
	}
	n = (uint64_t)((double)n * seconds / (dt > 0 ? dt : 1e-9));
	if (n == 0)
		n = 1;

	/* Measure; redo with a corrected count if the clock speed moved. */
	for (int tries = 0;; tries++) {
		jk_stream_init(&st);
		t0 = now_s();
		b->run(&st, n);
		dt = now_s() - t0;
		if (dt >= seconds * 0.9 || tries == 3)
			break;
		n = (uint64_t)((double)n * seconds / (dt > 0 ? dt : 1e-9));
	}

	if (b->run != run_decode_only && st.stats.frames != n) {
		fprintf(stderr, "%s: %u frames out of %llu fed\n", b->name, st.stats.frames,
			(unsigned long long)n);
		exit(1);
	}
	printf("%s: %.1f ns/frame (%.2f M frames/s, %llu frames in %.2f s)\n", b->name,
	       dt * 1e9 / (double)n, (double)n / dt / 1e6, (unsigned long long)n, dt);
}

int main(int argc, char **argv)
{
	static const struct bench benches[] = {
		{ "decode_cell_info_20byte_chunks", run_stream_decode },
		{ "stream_only_20byte_chunks", run_stream_only },
		{ "decode_cell_info_only", run_decode_only },
	};
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	struct jk_sample s;

	if (seconds <= 0)
		seconds = 1.0;
	build_frame();
	if (jk_decode_cell_info(frame, JK_PROTO_JK02_32S, &s) != 0 || s.cell_count != 16 ||
	    jk_detect_from_frame(frame) != JK_PROTO_JK02_32S) {
		fprintf(stderr, "bench frame does not decode as a 16-cell JK02_32S frame\n");
		return 1;
	}
	printf("frame: JK02_32S cell info, %u cells, %u mV, %d mA; %d-byte chunks\n",
	       s.cell_count, s.voltage_mv, s.current_ma, CHUNK);
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		measure(&benches[i], seconds);
	printf("(result checksum %016llx)\n", (unsigned long long)checksum);
	return 0;
}
