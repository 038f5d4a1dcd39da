/*
 * capture — the text format of recorded BMS notifications.
 *
 * One notification per line, as hex; whitespace between digits is ignored,
 * '#' starts a comment, blank lines are skipped.  A line may carry a label
 * ("rx:", "hex:", "packet.01:" ...), which is how ../shared/vectors and
 * btsnoop extracts are written:
 *
 *	55AAEB90 0201 ...                         a bare notification
 *	rx: t=+0.903 notify handle=0x0012 len=128 55AAEB90...
 *	tx: t=+0.816 write-cmd handle=0x0012 len=20 AA5590EB97...
 *	cmd: AA5590EB96...00 10 ; 0x96 request ; source ...
 *
 * When a `len=N` field is present the hex follows it and must be N bytes
 * long; otherwise the hex is everything after the label up to a ';' or '#'.
 * Only lines that came from the BMS are notifications (no label, rx, hex,
 * packet.*, notify, ack*, junk); host writes (tx, cmd) and derived lines
 * (frame.*, expect) are data of another kind and are reported as such.
 *
 * Pure core: text in, bytes out.
 */
#ifndef CAPTURE_H
#define CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPTURE_MAX_BYTES 1024
#define CAPTURE_LABEL_MAX 32

enum capture_kind {
	CAPTURE_EMPTY,		/* blank or comment line */
	CAPTURE_NOTIFY,		/* bytes the BMS sent */
	CAPTURE_OTHER,		/* a labelled line that is not a notification */
};

struct capture_line {
	char label[CAPTURE_LABEL_MAX];	/* "" when the line had none */
	uint8_t data[CAPTURE_MAX_BYTES];
	size_t len;
	const char *error;		/* set when capture_parse_line fails */
};

/*
 * Parse one line (without or with its trailing newline).  Returns an
 * enum capture_kind, or -EINVAL with out->error saying why (odd number of
 * digits, a non-hex character, len= mismatch, too long).  Lines of kind
 * CAPTURE_OTHER are parsed too where they hold hex (frame.*, cmd, tx), and
 * out->len is 0 where they do not (expect).
 */
int capture_parse_line(const char *line, struct capture_line *out);

/* Hex digits to bytes, whitespace ignored; stops at '#', ';' or the end.
 * Returns the byte count, or -EINVAL (odd number of digits), -EILSEQ (a
 * character that is not a hex digit) or -E2BIG (more than cap bytes). */
int capture_hex(const char *text, uint8_t *out, size_t cap);

#endif
