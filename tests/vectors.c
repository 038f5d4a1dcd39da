/*
 * vectors — reading ../shared/vectors at test time (see vectors.h).
 *
 * Files are small (at most a few hundred lines), so every helper simply
 * reads the file again from the top.  Nothing here decodes frames: that is
 * what the tests check.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

const char *vector_path(const char *file)
{
	static char path[4096];
	const char *dir = tests_vectors_dir();

	ck_assert_msg(dir != NULL, "vectors folder absent (set JKB_VECTORS)");
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return path;
}

static FILE *vector_open(const char *file)
{
	const char *path = vector_path(file);
	FILE *f = fopen(path, "r");

	ck_assert_msg(f != NULL, "vector file %s: %s", path, strerror(errno));
	return f;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	size_t k = 0;

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[k]))
		k++;
	memmove(s, s + k, n - k + 1);
}

/* "# section A: ..." -> 'A', else 0. */
static char section_of(const char *line)
{
	static const char tag[] = "# section ";

	if (strncmp(line, tag, sizeof(tag) - 1) == 0 &&
	    isalpha((unsigned char)line[sizeof(tag) - 1]) && line[sizeof(tag)] == ':')
		return line[sizeof(tag) - 1];
	return 0;
}

/* Room for the longest line of any vector file (a 324-byte hex: line). */
static char line_buf[16384];

static bool read_line(FILE *f, const char *file, unsigned lineno)
{
	size_t len;

	if (!fgets(line_buf, sizeof(line_buf), f))
		return false;
	len = strlen(line_buf);
	ck_assert_msg(len + 1 < sizeof(line_buf) || line_buf[len - 1] == '\n',
		      "%s:%u: line longer than %zu bytes", file, lineno, sizeof(line_buf));
	return true;
}

/* The matching lines into caps[] or, with their context, into ex[]. */
static int scan_lines(const char *file, const char *label_prefix, struct capture_line *caps,
		      struct vector_line *ex, size_t max)
{
	static struct capture_line cap;
	size_t prefix_len = strlen(label_prefix);
	FILE *f = vector_open(file);
	unsigned lineno = 0;
	char section = 0;
	size_t n = 0;

	while (read_line(f, file, lineno + 1)) {
		int kind;

		lineno++;
		if (section_of(line_buf))
			section = section_of(line_buf);
		kind = capture_parse_line(line_buf, &cap);
		ck_assert_msg(kind >= 0, "%s:%u: capture_parse_line: %s", file, lineno,
			      cap.error ? cap.error : "(no message)");
		if (kind == CAPTURE_EMPTY || strncmp(cap.label, label_prefix, prefix_len) != 0)
			continue;
		ck_assert_msg(n < max, "%s: more than %zu '%s' lines", file, max, label_prefix);
		if (caps) {
			caps[n++] = cap;
			continue;
		}
		ex[n].cap = cap;
		ex[n].kind = kind;
		ex[n].lineno = lineno;
		ex[n].section = section;
		ex[n].note[0] = '\0';
		if (strchr(line_buf, ';')) {
			snprintf(ex[n].note, sizeof(ex[n].note), "%s", strchr(line_buf, ';') + 1);
			trim(ex[n].note);
		}
		n++;
	}
	fclose(f);
	return (int)n;
}

int vector_lines_ex(const char *file, const char *label_prefix, struct vector_line *out,
		    size_t max)
{
	return scan_lines(file, label_prefix, NULL, out, max);
}

int vector_lines(const char *file, const char *label_prefix, struct capture_line *out,
		 size_t max)
{
	return scan_lines(file, label_prefix, out, NULL, max);
}

size_t vector_hex(const char *file, uint8_t *out, size_t cap)
{
	static struct capture_line line[2];
	int n;

	n = vector_lines(file, "hex", line, 2);
	ck_assert_msg(n == 1, "%s: %d 'hex:' lines, want exactly 1", file, n);
	ck_assert_msg(line[0].len <= cap, "%s: %zu bytes do not fit %zu", file, line[0].len, cap);
	memcpy(out, line[0].data, line[0].len);
	return line[0].len;
}

bool vector_meta_word(const char *file, const char *key, char *out, size_t cap)
{
	FILE *f = vector_open(file);
	size_t key_len = strlen(key);
	unsigned lineno = 0;
	bool found = false;

	while (!found && read_line(f, file, ++lineno)) {
		const char *p = line_buf;
		size_t w;

		if (*p++ != '#')
			continue;
		while (*p == ' ')
			p++;
		if (strncmp(p, key, key_len) != 0 || p[key_len] != ':')
			continue;
		p += key_len + 1;
		while (isspace((unsigned char)*p))
			p++;
		w = strcspn(p, " \t\r\n");

		ck_assert_msg(w < cap, "%s: metadata '%s' too long", file, key);
		memcpy(out, p, w);
		out[w] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

long vector_nonframe_bytes(const char *file)
{
	static const char tag[] = "# non-frame bytes seen between frames #";
	FILE *f = vector_open(file);
	unsigned lineno = 0;
	long sum = -1;

	while (read_line(f, file, ++lineno)) {
		const char *p;
		long k;

		if (strncmp(line_buf, tag, sizeof(tag) - 1) != 0)
			continue;
		p = strchr(line_buf, '(');
		ck_assert_msg(p != NULL && sscanf(p, "(%ld bytes)", &k) == 1,
			      "%s:%u: unreadable non-frame comment", file, lineno);
		sum = (sum < 0 ? 0 : sum) + k;
	}
	fclose(f);
	return sum;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

size_t vector_list(char names[][VECTOR_NAME_MAX], size_t max)
{
	const char *dir = tests_vectors_dir();
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	ck_assert_msg(dir != NULL, "vectors folder absent (set JKB_VECTORS)");
	d = opendir(dir);
	ck_assert_msg(d != NULL, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0)
			continue;
		ck_assert_msg(n < max && len < VECTOR_NAME_MAX, "%s: too many files", dir);
		memcpy(names[n++], e->d_name, len + 1);
	}
	closedir(d);
	qsort(names, n, VECTOR_NAME_MAX, name_cmp);
	return n;
}

/* ----------------------------------------------------------- stream driver */

void vector_tokens_init(struct vector_tokens *t)
{
	memset(t, 0, sizeof(*t));
}

static void record(struct vector_tokens *t, const struct jk_token *tok)
{
	switch (tok->kind) {
	case JK_TOKEN_NONE:
		return;
	case JK_TOKEN_FRAME:
		ck_assert_msg(tok->len == JK_FRAME_LEN, "frame token of %zu bytes", tok->len);
		ck_assert_msg(t->n_frames < VECTOR_MAX_FRAMES, "more than %d frames",
			      VECTOR_MAX_FRAMES);
		memcpy(t->frames[t->n_frames++], tok->data, JK_FRAME_LEN);
		break;
	case JK_TOKEN_ACK:
		ck_assert_msg(tok->len == JK_CMD_LEN, "ack token of %zu bytes", tok->len);
		t->n_acks++;
		break;
	default:
		ck_abort_msg("unknown token kind %d", (int)tok->kind);
	}
	ck_assert_msg(t->n_tokens < VECTOR_MAX_TOKENS, "more than %d tokens", VECTOR_MAX_TOKENS);
	t->order[t->n_tokens++] = tok->kind == JK_TOKEN_FRAME ? 'F' : 'A';
	t->order[t->n_tokens] = '\0';
}

void vector_feed(struct jk_stream *s, const uint8_t *in, size_t n, struct vector_tokens *t)
{
	struct jk_token tok;
	unsigned spins = 0;

	t->fed += n;
	while (n > 0) {
		size_t used = jk_stream_feed(s, in, n, &tok);

		ck_assert_msg(used <= n, "jk_stream_feed used %zu of %zu bytes", used, n);
		ck_assert_msg(used > 0 || tok.kind != JK_TOKEN_NONE,
			      "jk_stream_feed made no progress (%zu bytes left)", n);
		ck_assert_msg(++spins < 100000, "jk_stream_feed does not finish");
		in += used;
		n -= used;
		record(t, &tok);
	}
}

void vector_flush(struct jk_stream *s, struct vector_tokens *t)
{
	static const uint8_t nothing[1];
	struct jk_token tok;
	unsigned spins = 0;

	do {
		size_t used = jk_stream_feed(s, nothing, 0, &tok);

		ck_assert_msg(used == 0, "jk_stream_feed used %zu of 0 bytes", used);
		ck_assert_msg(++spins < 1000, "jk_stream_feed keeps handing out tokens");
		record(t, &tok);
	} while (tok.kind != JK_TOKEN_NONE);
}

/* ------------------------------------------------------- mismatch collector */

void vector_report_init(struct vector_report *r)
{
	r->n = 0;
	r->len = 0;
	r->text[0] = '\0';
}

void vector_report_add(struct vector_report *r, const char *fmt, ...)
{
	va_list ap;
	int k;

	r->n++;
	if (r->len + 2 >= sizeof(r->text))
		return;
	va_start(ap, fmt);
	k = vsnprintf(r->text + r->len, sizeof(r->text) - r->len - 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	r->len += (size_t)k;
	if (r->len > sizeof(r->text) - 2)
		r->len = sizeof(r->text) - 2;
	r->text[r->len++] = '\n';
	r->text[r->len] = '\0';
}
