/*
 * vectors — access to the real captures in ../shared/vectors for the tests.
 *
 * The vector files are read at run time from tests_vectors_dir() and never
 * copied into this repository.  Lines are parsed with capture_parse_line(),
 * so the tests read the files exactly as `jkbms decode` does.  Every helper
 * fails the running test (ck_assert) with the file name when a file is
 * missing or a line does not parse.
 *
 * Also here: a driver that runs bytes through jk_stream and records every
 * token it hands out (copied, since tok.data only lives until the next
 * call), and a collector for mismatches, so that a table-driven test can
 * report every disagreement of a run at once instead of the first one.
 */
#ifndef VECTORS_H
#define VECTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "jk_stream.h"
#include "tests.h"

#define VECTOR_NOTE_MAX 512
#define VECTOR_NAME_MAX 96

/* One labelled line of a vector file, with where it came from. */
struct vector_line {
	struct capture_line cap;
	int kind;			/* enum capture_kind */
	unsigned lineno;
	char section;			/* X of the last "# section X:" comment, 0 before one */
	char note[VECTOR_NOTE_MAX];	/* what follows the first ';' of the line, trimmed */
};

/* "<vectors dir>/<file>", valid until the next call. */
const char *vector_path(const char *file);

/*
 * The lines whose label starts with label_prefix ("hex", "rx", "frame.",
 * "packet.", "cmd", "ack" ...), in file order.  Returns how many; fails the
 * test when the file is missing, a line does not parse or more than max
 * lines match.
 */
int vector_lines(const char *file, const char *label_prefix, struct capture_line *out,
		 size_t max);
int vector_lines_ex(const char *file, const char *label_prefix, struct vector_line *out,
		    size_t max);

/* The bytes of the single "hex:" line of a single-frame file (300 bytes,
 * 320 or 324 where the source kept the ack / "AT\r\n" behind the frame). */
size_t vector_hex(const char *file, uint8_t *out, size_t cap);

/* The first word of a "# key: value" metadata line; false when absent. */
bool vector_meta_word(const char *file, const char *key, char *out, size_t cap);

/* Sum of N over the "# non-frame bytes seen between frames #k (N bytes)"
 * comments of a session file; -1 when the file has none. */
long vector_nonframe_bytes(const char *file);

/* The *.txt files of the vectors folder, sorted; returns how many. */
size_t vector_list(char names[][VECTOR_NAME_MAX], size_t max);

/* ----------------------------------------------------------- stream driver */

#define VECTOR_MAX_FRAMES 16
#define VECTOR_MAX_TOKENS 64

struct vector_tokens {
	size_t n_frames;
	size_t n_acks;
	uint8_t frames[VECTOR_MAX_FRAMES][JK_FRAME_LEN];
	char order[VECTOR_MAX_TOKENS + 1];	/* 'F' frame, 'A' ack, in output order */
	size_t n_tokens;
	size_t fed;				/* bytes fed in total */
};

void vector_tokens_init(struct vector_tokens *t);

/* Feed n bytes in one jk_stream_feed() loop, recording every token. */
void vector_feed(struct jk_stream *s, const uint8_t *in, size_t n, struct vector_tokens *t);

/* Call jk_stream_feed() with no input until it has nothing more to hand out:
 * retires the last token and judges what a resync left behind. */
void vector_flush(struct jk_stream *s, struct vector_tokens *t);

/* ------------------------------------------------------- mismatch collector */

struct vector_report {
	unsigned n;
	size_t len;
	char text[12288];
};

void vector_report_init(struct vector_report *r);
void vector_report_add(struct vector_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fail the running test, listing every mismatch, if there was one. */
#define vector_report_assert(r)							\
	ck_assert_msg((r)->n == 0, "%u mismatch(es) with the vectors:\n%s",	\
		      (r)->n, (r)->text)

#endif
