/*
 * capture — one line of the capture text format to bytes (see capture.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

/* Labels whose bytes came from the BMS. */
static const char *const notify_labels[] = {
	"rx", "hex", "packet", "notify", "ack", "ack_hex", "ack_with_at_hex", "junk",
};

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int capture_hex(const char *text, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = text; *p && *p != '#' && *p != ';'; p++) {
		int v;

		if (isspace((unsigned char)*p))
			continue;
		v = hex_value((unsigned char)*p);
		if (v < 0)
			return -EILSEQ;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n == cap)
			return -E2BIG;
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	return hi < 0 ? (int)n : -EINVAL;
}

/* "label:" at the start of the line: copy it and return what follows. */
static const char *take_label(const char *line, char *label)
{
	const char *p = line;
	size_t n;

	while (isalnum((unsigned char)*p) || *p == '_' || *p == '.')
		p++;
	n = (size_t)(p - line);
	label[0] = '\0';
	if (*p != ':' || n == 0 || n >= CAPTURE_LABEL_MAX || !isalpha((unsigned char)*line))
		return line;
	memcpy(label, line, n);
	label[n] = '\0';
	return p + 1;
}

static bool label_is_notification(const char *label)
{
	size_t stem = strcspn(label, ".");

	if (!*label)
		return true;
	for (size_t i = 0; i < sizeof(notify_labels) / sizeof(notify_labels[0]); i++)
		if (strlen(notify_labels[i]) == stem && strncmp(label, notify_labels[i], stem) == 0)
			return true;
	return false;
}

/* After a "len=N" field, if there is one: the hex follows it. */
static const char *after_len_field(const char *text, long *len)
{
	const char *p = text;

	*len = -1;
	while ((p = strstr(p, "len=")) != NULL) {
		if (p == text || isspace((unsigned char)p[-1])) {
			char *end;

			*len = strtol(p + 4, &end, 10);
			return end;
		}
		p += 4;
	}
	return text;
}

int capture_parse_line(const char *line, struct capture_line *out)
{
	const char *text;
	long expect;
	int n;

	out->len = 0;
	out->error = NULL;
	while (isspace((unsigned char)*line))
		line++;
	if (*line == '\0' || *line == '#')
		return CAPTURE_EMPTY;
	text = take_label(line, out->label);
	if (strcmp(out->label, "expect") == 0)
		return CAPTURE_OTHER;
	text = after_len_field(text, &expect);
	n = capture_hex(text, out->data, sizeof(out->data));
	if (n == -E2BIG) {
		out->error = "line holds more bytes than a notification can";
		return -EINVAL;
	}
	if (n == -EILSEQ) {
		out->error = "a character that is not a hex digit";
		return -EINVAL;
	}
	if (n < 0) {
		out->error = "an odd number of hex digits";
		return -EINVAL;
	}
	if (expect >= 0 && n != expect) {
		out->error = "len= does not match the number of bytes";
		return -EINVAL;
	}
	out->len = (size_t)n;
	return label_is_notification(out->label) ? CAPTURE_NOTIFY : CAPTURE_OTHER;
}
