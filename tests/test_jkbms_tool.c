/*
 * test_jkbms_tool — the built `jkbms decode` tool, run as a user runs it.
 *
 * The tool ($JKBMS, default build/jkbms) is started with fork + exec on
 * vector files and on small inputs made here; its stdout is JSON Lines,
 * parsed with jansson, and its stderr carries the summary or the error.
 * Values are checked against the files' expect: lines (mV, mA, 0.1 °C).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "jk_decode.h"
#include "tests.h"
#include "vectors.h"

/* ------------------------------------------------------------- runner */

struct run {
	int status;		/* exit code; 128 + signal when killed */
	char *out, *err;	/* NUL-terminated */
	size_t out_len, err_len;
	json_t *objects;	/* one array element per stdout line */
};

static const char *tool_path(void)
{
	const char *p = getenv("JKBMS");

	p = p && *p ? p : "build/jkbms";
	ck_assert_msg(access(p, X_OK) == 0, "jkbms tool %s: %s (run make first)", p,
		      strerror(errno));
	return p;
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);

	ck_assert_ptr_nonnull(b);
	memcpy(b + *len, p, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
}

/* Parse every stdout line as one JSON object. */
static void parse_lines(struct run *r)
{
	char *line = r->out;

	r->objects = json_array();
	while (line && *line) {
		char *nl = strchr(line, '\n');
		json_error_t e;
		json_t *o;

		ck_assert_msg(nl != NULL, "stdout does not end with a newline: %s", line);
		*nl = '\0';
		o = json_loads(line, 0, &e);
		ck_assert_msg(o != NULL, "stdout line is not JSON (%s): %s", e.text, line);
		ck_assert_msg(json_is_object(o), "stdout line is not an object: %s", line);
		json_array_append_new(r->objects, o);
		*nl = '\n';
		line = nl + 1;
	}
}

/* Run `jkbms decode ARGS...` with `in` on stdin (NULL: empty stdin). */
static void run_decode(struct run *r, const void *in, size_t in_len, const char *const args[])
{
	const char *argv[16] = { tool_path(), "decode" };
	int pin[2], pout[2], perr[2];
	size_t argc = 2, written = 0;
	pid_t pid;
	int status;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; args && args[i]; i++) {
		ck_assert(argc < sizeof(argv) / sizeof(argv[0]) - 1);
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	ck_assert(pipe(pin) == 0 && pipe(pout) == 0 && pipe(perr) == 0);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		close(pin[0]);
		close(pin[1]);
		close(pout[0]);
		close(pout[1]);
		close(perr[0]);
		close(perr[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	signal(SIGPIPE, SIG_IGN);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	if (in_len == 0) {
		close(pin[1]);
		pin[1] = -1;
	}

	struct pollfd fds[3] = {
		{ .fd = pout[0], .events = POLLIN },
		{ .fd = perr[0], .events = POLLIN },
		{ .fd = pin[1], .events = POLLOUT },
	};
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		char buf[4096];

		ck_assert_msg(poll(fds, 3, 20000) > 0, "jkbms does not finish");
		for (int i = 0; i < 2; i++) {
			ssize_t k;

			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = read(fds[i].fd, buf, sizeof(buf));
			if (k <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
			} else if (i == 0) {
				append(&r->out, &r->out_len, buf, (size_t)k);
			} else {
				append(&r->err, &r->err_len, buf, (size_t)k);
			}
		}
		if (fds[2].fd >= 0 && fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
			ssize_t k = write(fds[2].fd, (const char *)in + written, in_len - written);

			if (k > 0)
				written += (size_t)k;
			if (k < 0 || written == in_len) {
				close(fds[2].fd);
				fds[2].fd = -1;
			}
		}
	}
	if (fds[2].fd >= 0)
		close(fds[2].fd);
	ck_assert(waitpid(pid, &status, 0) == pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (!r->out)
		append(&r->out, &r->out_len, "", 0);
	if (!r->err)
		append(&r->err, &r->err_len, "", 0);
	parse_lines(r);
}

/* Runs live in static storage in the tests, so that what they hold stays
 * reachable (no LeakSanitizer report hiding the message) when an assertion
 * fails before run_free(). */
static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	json_decref(r->objects);
	memset(r, 0, sizeof(*r));
}

/* The number after the first occurrence of `word` in the summary, -1 if none. */
static long summary_count(const char *err, const char *word)
{
	const char *p = strstr(err, word);

	if (!p)
		return -1;
	p += strlen(word);
	while (*p && (*p < '0' || *p > '9') && *p != '\n')
		p++;
	return *p >= '0' && *p <= '9' ? strtol(p, NULL, 10) : -1;
}

static json_int_t int_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "\"%s\" missing or not an integer", key);
	return json_integer_value(v);
}

static const char *str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "\"%s\" missing or not a string", key);
	return json_string_value(v);
}

static const char *type_name(uint8_t type)
{
	switch (type) {
	case JK_FRAME_SETTINGS:
		return "settings";
	case JK_FRAME_CELL_INFO:
		return "cell_info";
	case JK_FRAME_DEVICE_INFO:
		return "device_info";
	case JK_FRAME_LOGBOOK:
		return "logbook";
	}
	return "?";
}

static enum jk_protocol protocol_of(const char *file)
{
	char word[32];
	enum jk_protocol p;

	ck_assert_msg(vector_meta_word(file, "protocol", word, sizeof(word)),
		      "%s: no protocol line", file);
	ck_assert_int_eq(jk_protocol_parse(word, &p), 0);
	return p;
}

/* ----------------------------------------------------- single frames */

struct tool_cell {
	const char *file;
	enum jk_protocol proto;
	long voltage_mv;
	bool has_current;
	long current_ma;
	size_t n_cells;
	const int temps_null[JK_MAX_TEMPS];	/* 1 = this temps_dc entry must be null */
};

/* Values from the files' expect: lines (batmon_2: "decoded by this research"). */
static const struct tool_cell tool_cells[] = {
	{ .file = "jk02_24s_cellinfo_aiobmsble_1.txt", .proto = JK_PROTO_JK02_24S,
	  .voltage_mv = 52971, .has_current = true, .current_ma = 2329, .n_cells = 16 },
	{ .file = "jk02_24s_cellinfo_esphome_1.txt", .proto = JK_PROTO_JK02_24S,
	  .voltage_mv = 78735, .has_current = true, .current_ma = 0, .n_cells = 24 },
	{ .file = "jk02_24s_cellinfo_batmon_1.txt", .proto = JK_PROTO_JK02_24S,
	  .voltage_mv = 26911, .has_current = true, .current_ma = 12219, .n_cells = 8 },
	{ .file = "jk02_32s_cellinfo_aiobmsble_1.txt", .proto = JK_PROTO_JK02_32S,
	  .voltage_mv = 26509, .has_current = true, .current_ma = -7063, .n_cells = 8 },
	{ .file = "jk02_32s_cellinfo_aiobmsble_2.txt", .proto = JK_PROTO_JK02_32S,
	  .voltage_mv = 53224, .has_current = true, .current_ma = 31881, .n_cells = 16 },
	{ .file = "jk02_32s_cellinfo_batmon_2.txt", .proto = JK_PROTO_JK02_32S,
	  .voltage_mv = 26943, .has_current = true, .current_ma = 445, .n_cells = 8,
	  .temps_null = { [3] = 1, [4] = 1 } },	/* 0xF830 at 256 / 258 */
	{ .file = "jk04_cellinfo_esphome_1.txt", .proto = JK_PROTO_JK04,
	  .voltage_mv = 53691, .has_current = false },
};

static const char *const jk02_cell_keys[] = {
	"type", "protocol", "cells_mv", "voltage_mv", "current_ma", "soc_pct", "soh_pct",
	"remaining_mah", "capacity_mah", "cycles", "cycle_capacity_mah", "temps_dc",
	"mos_temp_dc", "errors", "balance_current_ma", "charging_enabled",
	"discharging_enabled", "uptime_s",
};

START_TEST(test_tool_prints_one_cell_info_object_with_source_values)
{
	for (size_t i = 0; i < sizeof(tool_cells) / sizeof(tool_cells[0]); i++) {
		const struct tool_cell *c = &tool_cells[i];
		const char *args[] = { vector_path(c->file), NULL };
		static struct run r;
		json_t *o, *cells, *temps;

		run_decode(&r, NULL, 0, args);
		ck_assert_msg(r.status == 0, "%s: exit %d: %s", c->file, r.status, r.err);
		ck_assert_msg(json_array_size(r.objects) == 1, "%s: %zu objects", c->file,
			      json_array_size(r.objects));
		o = json_array_get(r.objects, 0);
		ck_assert_str_eq(str_of(o, "type"), "cell_info");
		ck_assert_str_eq(str_of(o, "protocol"), jk_protocol_name(c->proto));
		ck_assert_msg(int_of(o, "voltage_mv") == c->voltage_mv, "%s: voltage_mv %lld", c->file,
			      (long long)int_of(o, "voltage_mv"));
		if (c->has_current) {
			ck_assert_msg(int_of(o, "current_ma") == c->current_ma, "%s: current_ma %lld",
				      c->file, (long long)int_of(o, "current_ma"));
			for (size_t k = 0; k < sizeof(jk02_cell_keys) / sizeof(jk02_cell_keys[0]); k++)
				ck_assert_msg(json_object_get(o, jk02_cell_keys[k]) != NULL,
					      "%s: no \"%s\"", c->file, jk02_cell_keys[k]);
			ck_assert(json_is_boolean(json_object_get(o, "charging_enabled")));
		} else {
			/* JK04 carries no pack current: left out, not shown as 0 */
			ck_assert_msg(json_object_get(o, "current_ma") == NULL,
				      "%s: current_ma present on JK04", c->file);
		}
		cells = json_object_get(o, "cells_mv");
		ck_assert(json_is_array(cells));
		if (c->n_cells)
			ck_assert_msg(json_array_size(cells) == c->n_cells, "%s: %zu cells",
				      c->file, json_array_size(cells));
		ck_assert_msg(int_of(o, "cell_count") == (json_int_t)json_array_size(cells),
			      "%s: cell_count disagrees with cells_mv", c->file);
		temps = json_object_get(o, "temps_dc");
		for (size_t k = 0; k < JK_MAX_TEMPS; k++)
			if (c->temps_null[k])
				ck_assert_msg(json_is_null(json_array_get(temps, k)),
					      "%s: temps_dc[%zu] is not null", c->file, k);
		ck_assert_msg(summary_count(r.err, "frames") == 1, "%s: summary \"%s\"", c->file,
			      r.err);
		run_free(&r);
	}
}
END_TEST

START_TEST(test_tool_prints_device_info_settings_and_logbook_objects)
{
	static const struct {
		const char *file;
		const char *type;
		const char *key;
		const char *str;	/* expected string value of key, or NULL */
		long num;		/* else the integer */
	} cases[] = {
		{ .file = "jk02_24s_devinfo_aiobmsble_1.txt", .type = "device_info",
		  .key = "model", .str = "JK-B2A20S20P" },
		{ .file = "jk02_32s_devinfo_aiobmsble_2.txt", .type = "device_info",
		  .key = "sw_version", .str = "15.38" },
		{ .file = "jk04_devinfo_mppsolar_1.txt", .type = "device_info",
		  .key = "power_on_count", .num = 4 },
		{ .file = "jk02_32s_devinfo_aiobmsble_3.txt", .type = "device_info",
		  .key = "name", .str = "Baterie 1" },
		{ .file = "jk02_24s_settings_batmon_1.txt", .type = "settings",
		  .key = "capacity_mah", .num = 275000 },
		{ .file = "jk02_32s_settings_batmon_1.txt", .type = "settings",
		  .key = "capacity_mah", .num = 320000 },
		{ .file = "jk04_settings_esphome_1.txt", .type = "settings",
		  .key = "cell_count", .num = 16 },
		{ .file = "jk02_32s_logbook_esphome_1.txt", .type = "logbook",
		  .key = "entry_count", .num = 4 },
	};
	static const char *const info_keys[] = {
		"type", "model", "hw_version", "sw_version", "serial", "name", "uptime_s",
		"power_on_count",
	};
	static const char *const jk02_settings_keys[] = {
		"type", "cell_count", "cell_ovp_mv", "cell_uvp_mv", "max_charge_current_ma",
		"max_discharge_current_ma", "charging_switch", "discharging_switch",
		"balancer_switch", "capacity_mah",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { vector_path(cases[i].file), NULL };
		enum jk_protocol proto = protocol_of(cases[i].file);
		static struct run r;
		json_t *o;

		run_decode(&r, NULL, 0, args);
		ck_assert_msg(r.status == 0, "%s: exit %d: %s", cases[i].file, r.status, r.err);
		ck_assert_msg(json_array_size(r.objects) == 1, "%s: %zu objects", cases[i].file,
			      json_array_size(r.objects));
		o = json_array_get(r.objects, 0);
		ck_assert_str_eq(str_of(o, "type"), cases[i].type);
		ck_assert_str_eq(str_of(o, "protocol"), jk_protocol_name(proto));
		if (cases[i].str)
			ck_assert_str_eq(str_of(o, cases[i].key), cases[i].str);
		else
			ck_assert_msg(int_of(o, cases[i].key) == cases[i].num, "%s: %s = %lld",
				      cases[i].file, cases[i].key,
				      (long long)int_of(o, cases[i].key));
		if (strcmp(cases[i].type, "device_info") == 0)
			for (size_t k = 0; k < sizeof(info_keys) / sizeof(info_keys[0]); k++)
				ck_assert_msg(json_object_get(o, info_keys[k]) != NULL,
					      "%s: no \"%s\"", cases[i].file, info_keys[k]);
		if (strcmp(cases[i].type, "settings") == 0 && proto != JK_PROTO_JK04)
			for (size_t k = 0; k < sizeof(jk02_settings_keys) / sizeof(jk02_settings_keys[0]); k++)
				ck_assert_msg(json_object_get(o, jk02_settings_keys[k]) != NULL,
					      "%s: no \"%s\"", cases[i].file, jk02_settings_keys[k]);
		run_free(&r);
	}
}
END_TEST

/* aiobmsble's 8-character serial is a prefix of the tool's whole field. */
START_TEST(test_tool_serial_is_the_whole_field)
{
	const char *args[] = { vector_path("jk02_32s_devinfo_aiobmsble_4.txt"), NULL };
	static struct run r;
	const char *serial;

	run_decode(&r, NULL, 0, args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(json_array_size(r.objects), 1);
	serial = str_of(json_array_get(r.objects, 0), "serial");
	ck_assert_msg(strncmp(serial, "51020BO4", 8) == 0, "serial \"%s\"", serial);
	ck_assert_msg(strlen(serial) > 8, "serial \"%s\" cut to aiobmsble's 8 characters", serial);
	run_free(&r);
}
END_TEST

/* ---------------------------------------------------------- sessions */

static const char *const tool_sessions[] = {
	"jk02_24s_session_frag_esphome_1.txt", "jk02_24s_session_frag_esphome_2.txt",
	"jk02_32s_session_frag_esphome_1.txt", "jk02_32s_session_frag_esphome_2.txt",
	"jk04_session_frag_esphome_1.txt", "jk04_stream_frag_esphome_2.txt",
	"jk04_stream_frag_esphome_3.txt",
};

START_TEST(test_tool_session_prints_one_object_per_listed_frame)
{
	for (size_t i = 0; i < sizeof(tool_sessions) / sizeof(tool_sessions[0]); i++) {
		const char *file = tool_sessions[i];
		const char *args[] = { vector_path(file), NULL };
		static struct capture_line frames[VECTOR_MAX_FRAMES];
		enum jk_protocol proto = protocol_of(file);
		static struct run r;
		int n;

		n = vector_lines(file, "frame.", frames, VECTOR_MAX_FRAMES);
		ck_assert_msg(n > 0, "%s: no frame lines", file);
		run_decode(&r, NULL, 0, args);
		ck_assert_msg(r.status == 0, "%s: exit %d: %s", file, r.status, r.err);
		ck_assert_msg(json_array_size(r.objects) == (size_t)n, "%s: %zu objects, %d frames",
			      file, json_array_size(r.objects), n);
		for (int k = 0; k < n; k++) {
			json_t *o = json_array_get(r.objects, (size_t)k);

			ck_assert_msg(strcmp(str_of(o, "type"), type_name(frames[k].data[4])) == 0,
				      "%s: object %d is %s, %s is type 0x%02x", file, k + 1,
				      str_of(o, "type"), frames[k].label, frames[k].data[4]);
			ck_assert_msg(strcmp(str_of(o, "protocol"), jk_protocol_name(proto)) == 0,
				      "%s: object %d protocol %s", file, k + 1,
				      str_of(o, "protocol"));
		}
		ck_assert_msg(summary_count(r.err, "frames") == n, "%s: summary \"%s\"", file, r.err);
		ck_assert_msg(summary_count(r.err, "checksum") == 0, "%s: summary \"%s\"", file,
			      r.err);
		run_free(&r);
	}
}
END_TEST

/* The same session text on stdin gives the same objects as the file. */
START_TEST(test_tool_reads_capture_text_from_stdin)
{
	const char *file = "jk02_32s_session_frag_esphome_1.txt";
	const char *args[] = { vector_path(file), NULL };
	const char *dash[] = { "-", NULL };
	static struct run a, b;
	static char *text;	/* static: still reachable if an assertion fails */
	FILE *f;
	long n;

	run_decode(&a, NULL, 0, args);
	f = fopen(vector_path(file), "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = malloc((size_t)n);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);

	run_decode(&b, text, (size_t)n, dash);
	ck_assert_int_eq(b.status, 0);
	ck_assert_uint_eq(json_array_size(b.objects), 5);
	ck_assert_msg(json_equal(a.objects, b.objects), "stdin and file output differ");
	free(text);
	text = NULL;
	run_free(&a);
	run_free(&b);
}
END_TEST

/* ------------------------------------------------- summary and errors */

START_TEST(test_tool_summary_counts_the_corrupt_frame_as_bad_checksum)
{
	const char *args[] = { vector_path("jk02_32s_cellinfo_batmon_corrupt_1.txt"), NULL };
	static struct run r;

	run_decode(&r, NULL, 0, args);
	ck_assert_msg(r.status == 0, "junk is not an error: exit %d: %s", r.status, r.err);
	ck_assert_uint_eq(json_array_size(r.objects), 0);
	ck_assert_msg(summary_count(r.err, "frames") == 0, "summary \"%s\"", r.err);
	ck_assert_msg(summary_count(r.err, "checksum") == 1, "summary \"%s\"", r.err);
	run_free(&r);
}
END_TEST

START_TEST(test_tool_missing_file_fails_with_message)
{
	const char *args[] = { "/nonexistent/jkbms-test/capture.txt", NULL };
	static struct run r;

	run_decode(&r, NULL, 0, args);
	ck_assert_msg(r.status != 0, "exit 0 for a missing file");
	ck_assert_msg(strstr(r.err, "/nonexistent/jkbms-test/capture.txt") != NULL,
		      "stderr does not name the file: \"%s\"", r.err);
	ck_assert_uint_eq(json_array_size(r.objects), 0);
	run_free(&r);
}
END_TEST

START_TEST(test_tool_odd_hex_fails_with_line_message)
{
	char path[] = "/tmp/jkbms-odd-XXXXXX";
	static const char text[] = "# a capture\nhex: 55AAEB9002F\n";
	int fd = mkstemp(path);
	const char *args[] = { path, NULL };
	char where[64];
	static struct run r;

	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	ck_assert(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
	close(fd);
	run_decode(&r, NULL, 0, args);
	unlink(path);
	ck_assert_msg(r.status != 0, "exit 0 for odd hex");
	snprintf(where, sizeof(where), "%s:2", path);
	ck_assert_msg(strstr(r.err, where) != NULL, "stderr does not say %s: \"%s\"", where, r.err);
	ck_assert_uint_eq(json_array_size(r.objects), 0);
	run_free(&r);
}
END_TEST

START_TEST(test_tool_rejects_unknown_protocol)
{
	const char *args[] = { "--protocol", "jk03", NULL };
	static struct run r;

	run_decode(&r, NULL, 0, args);
	ck_assert_msg(r.status != 0, "exit 0 for --protocol jk03");
	ck_assert_msg(strstr(r.err, "jk03") != NULL, "stderr: \"%s\"", r.err);
	run_free(&r);
}
END_TEST

START_TEST(test_tool_empty_raw_stdin_gives_no_objects)
{
	const char *args[] = { "--raw", NULL };
	static struct run r;

	run_decode(&r, NULL, 0, args);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_uint_eq(json_array_size(r.objects), 0);
	ck_assert_msg(summary_count(r.err, "frames") == 0, "summary \"%s\"", r.err);
	run_free(&r);
}
END_TEST

/* ----------------------------------------------------------- options */

START_TEST(test_tool_protocol_option_is_accepted_and_used)
{
	static const struct {
		const char *file;
		const char *option;
		enum jk_protocol want;
	} cases[] = {
		{ "jk04_cellinfo_esphome_1.txt", "jk04", JK_PROTO_JK04 },
		{ "jk02_24s_cellinfo_aiobmsble_1.txt", "jk02_24s", JK_PROTO_JK02_24S },
		{ "jk02_32s_cellinfo_aiobmsble_1.txt", "jk02_32s", JK_PROTO_JK02_32S },
		{ "jk02_32s_cellinfo_aiobmsble_1.txt", "auto", JK_PROTO_JK02_32S },
		{ "jk02_32s_cellinfo_aiobmsble_1.txt", "JK02_32S", JK_PROTO_JK02_32S },
		/* a configured protocol wins over detection, even a wrong one */
		{ "jk02_32s_cellinfo_aiobmsble_1.txt", "jk02_24s", JK_PROTO_JK02_24S },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { "--protocol", cases[i].option, vector_path(cases[i].file),
				       NULL };
		static struct run r;

		run_decode(&r, NULL, 0, args);
		ck_assert_msg(r.status == 0, "--protocol %s: exit %d: %s", cases[i].option,
			      r.status, r.err);
		ck_assert_uint_eq(json_array_size(r.objects), 1);
		ck_assert_str_eq(str_of(json_array_get(r.objects, 0), "protocol"),
				 jk_protocol_name(cases[i].want));
		run_free(&r);
	}
}
END_TEST

/* --raw: the batmon byte stream as binary on stdin gives its three frames. */
START_TEST(test_tool_raw_reads_binary_stdin)
{
	static const char *const want[] = { "cell_info", "device_info", "settings" };
	const char *file = "jk02_32s_stream_batmon_1.txt";
	static struct capture_line p[8];
	uint8_t bytes[4 * CAPTURE_MAX_BYTES];
	size_t len = 0;
	int n;

	n = vector_lines(file, "packet.", p, 8);
	ck_assert_int_eq(n, 3);
	for (int i = 0; i < n; i++) {
		memcpy(bytes + len, p[i].data, p[i].len);
		len += p[i].len;
	}
	for (int variant = 0; variant < 2; variant++) {
		const char *args_stdin[] = { "--raw", NULL };
		const char *args_dash[] = { "--raw", "-", NULL };
		static struct run r;

		run_decode(&r, bytes, len, variant ? args_dash : args_stdin);
		ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
		ck_assert_uint_eq(json_array_size(r.objects), 3);
		for (size_t k = 0; k < 3; k++) {
			json_t *o = json_array_get(r.objects, k);

			ck_assert_str_eq(str_of(o, "type"), want[k]);
			ck_assert_str_eq(str_of(o, "protocol"), "JK02_32S");
		}
		ck_assert_msg(int_of(json_array_get(r.objects, 0), "voltage_mv") == 26943,
			      "voltage_mv %lld",
			      (long long)int_of(json_array_get(r.objects, 0), "voltage_mv"));
		ck_assert_msg(summary_count(r.err, "frames") == 3, "summary \"%s\"", r.err);
		run_free(&r);
	}
}
END_TEST

TCase *tcase_jkbms_tool(void)
{
	TCase *tc = tcase_create("jkbms_tool");

	tcase_set_timeout(tc, 120);
	tests_add_vector_test(tc, test_tool_prints_one_cell_info_object_with_source_values);
	tests_add_vector_test(tc, test_tool_prints_device_info_settings_and_logbook_objects);
	tests_add_vector_test(tc, test_tool_serial_is_the_whole_field);
	tests_add_vector_test(tc, test_tool_session_prints_one_object_per_listed_frame);
	tests_add_vector_test(tc, test_tool_reads_capture_text_from_stdin);
	tests_add_vector_test(tc, test_tool_summary_counts_the_corrupt_frame_as_bad_checksum);
	tests_add_vector_test(tc, test_tool_protocol_option_is_accepted_and_used);
	tests_add_vector_test(tc, test_tool_raw_reads_binary_stdin);
	tcase_add_test(tc, test_tool_missing_file_fails_with_message);
	tcase_add_test(tc, test_tool_odd_hex_fails_with_line_message);
	tcase_add_test(tc, test_tool_rejects_unknown_protocol);
	tcase_add_test(tc, test_tool_empty_raw_stdin_gives_no_objects);
	return tc;
}
