/*
 * The capture text format: labels, len= fields, comments and the errors a
 * user sees for a damaged file.
 */
#include <string.h>

#include "capture.h"
#include "tests.h"

struct line_case {
	const char *text;
	int kind;
	const char *label;
	size_t len;
	uint8_t first, last;
};

START_TEST(test_capture_lines)
{
	static const struct line_case cases[] = {
		{ .text = "", .kind = CAPTURE_EMPTY },
		{ .text = "   # a comment", .kind = CAPTURE_EMPTY },
		{ .text = "55 aa eb 90\n", .kind = CAPTURE_NOTIFY, .label = "", .len = 4, .first = 0x55, .last = 0x90 },
		{ .text = "hex: 55AAEB90 0102", .kind = CAPTURE_NOTIFY, .label = "hex", .len = 6, .first = 0x55, .last = 0x02 },
		{ .text = "rx: t=+0.903 notify handle=0x0012 len=4 41540D0A", .kind = CAPTURE_NOTIFY, .label = "rx", .len = 4, .first = 0x41, .last = 0x0A },
		{ .text = "rx: t=+0.000 len=2 ABCD", .kind = CAPTURE_NOTIFY, .label = "rx", .len = 2, .first = 0xAB, .last = 0xCD },
		{ .text = "packet.02: 0A0B", .kind = CAPTURE_NOTIFY, .label = "packet.02", .len = 2, .first = 0x0A, .last = 0x0B },
		{ .text = "ack_with_at_hex: AA55   # a note", .kind = CAPTURE_NOTIFY, .label = "ack_with_at_hex", .len = 2, .first = 0xAA, .last = 0x55 },
		{ .text = "tx: t=+0.5 write-req handle=0x0013 len=2 0100", .kind = CAPTURE_OTHER, .label = "tx", .len = 2, .first = 0x01, .last = 0x00 },
		{ .text = "cmd: AA5590EB ; meaning ; source", .kind = CAPTURE_OTHER, .label = "cmd", .len = 4, .first = 0xAA, .last = 0xEB },
		{ .text = "frame.01: 55AA", .kind = CAPTURE_OTHER, .label = "frame.01", .len = 2, .first = 0x55, .last = 0xAA },
		{ .text = "expect: voltage_V = 52.971", .kind = CAPTURE_OTHER, .label = "expect", .len = 0 },
		{ .text = "55A", .kind = -1 },
		{ .text = "55 xx", .kind = -1 },
		{ .text = "rx: t=0 len=3 0102", .kind = -1 },
	};
	static struct capture_line line;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct line_case *k = &cases[i];
		int kind = capture_parse_line(k->text, &line);

		if (k->kind < 0) {
			ck_assert_msg(kind < 0 && line.error, "case %zu '%s' accepted", i, k->text);
			continue;
		}
		ck_assert_msg(kind == k->kind, "case %zu '%s': kind %d", i, k->text, kind);
		if (k->kind == CAPTURE_EMPTY)
			continue;
		ck_assert_str_eq(line.label, k->label);
		ck_assert_uint_eq(line.len, k->len);
		if (k->len) {
			ck_assert_uint_eq(line.data[0], k->first);
			ck_assert_uint_eq(line.data[k->len - 1], k->last);
		}
	}
}
END_TEST

START_TEST(test_capture_hex_errors_are_distinct)
{
	uint8_t out[2];

	ck_assert_int_eq(capture_hex("0102", out, sizeof(out)), 2);
	ck_assert_int_lt(capture_hex("010", out, sizeof(out)), 0);
	ck_assert_int_lt(capture_hex("0g", out, sizeof(out)), 0);
	ck_assert_int_lt(capture_hex("010203", out, sizeof(out)), 0);
}
END_TEST

START_TEST(test_capture_too_long_line_is_an_error)
{
	static struct capture_line line;
	static char text[2 * CAPTURE_MAX_BYTES + 8];

	memset(text, 'a', 2 * CAPTURE_MAX_BYTES + 2);
	ck_assert_int_lt(capture_parse_line(text, &line), 0);
	ck_assert_ptr_nonnull(line.error);
}
END_TEST

TCase *tcase_capture(void)
{
	TCase *tc = tcase_create("capture");

	tcase_add_test(tc, test_capture_lines);
	tcase_add_test(tc, test_capture_hex_errors_are_distinct);
	tcase_add_test(tc, test_capture_too_long_line_is_an_error);
	return tc;
}
