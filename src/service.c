/*
 * service — the daemon's side of systemd: sd_notify() messages and log
 * lines that journald files under the right priority.
 *
 * Under systemd stderr is a stream to journald and JOURNAL_STREAM holds
 * its "device:inode"; only when stderr still is that stream (not
 * redirected by the user) do lines get the "<N>" priority prefix of
 * sd-daemon(3), which journald strips and turns into PRIORITY=N.
 * Elsewhere lines read "jkbridged: warning: ...".
 *
 * Invariants: one call, one line (embedded newlines become spaces, so a
 * message can never forge a second, differently prioritised line), one
 * write(2); errno is the same after a log call as before it.  Without
 * NOTIFY_SOCKET every sd_notify() is a cheap no-op.
 */
#define _GNU_SOURCE	/* program_invocation_short_name */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "service.h"

#define SERVICE_LINE_MAX 1024

static struct {
	bool initialised;
	bool journal;		/* stderr is journald's stream */
	bool verbose;
} service;

/* JOURNAL_STREAM="<st_dev>:<st_ino>" of the stream systemd connected. */
static bool service_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env || !*env)
		return false;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno || *end != ':')
		return false;
	ino = strtoull(end + 1, &end, 10);
	if (errno || *end)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void service_init(void)
{
	service.journal = service_stderr_is_journal();
	service.initialised = true;
}

void service_set_verbose(int verbose)
{
	service.verbose = verbose != 0;
}

/* Newlines (and other control characters) would split or garble the line. */
static void service_flatten(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	for (; *s; s++)
		if ((unsigned char)*s < ' ' && *s != '\t')
			*s = ' ';
}

static const char *service_level_word(int priority)
{
	if (priority <= LOG_ERR)
		return "error: ";
	if (priority == LOG_WARNING)
		return "warning: ";
	return "";
}

static void service_vlog(int priority, const char *fmt, va_list ap)
{
	char msg[SERVICE_LINE_MAX], line[SERVICE_LINE_MAX + 32];
	int n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	service_flatten(msg);
	if (service.journal)
		n = snprintf(line, sizeof(line), "<%d>%s\n", priority, msg);
	else
		n = snprintf(line, sizeof(line), "%s: %s%s\n", program_invocation_short_name, service_level_word(priority), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {	/* cannot happen with the sizes above */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* stderr is unbuffered: one fwrite is one write(2), one journal entry. */
	fwrite(line, 1, (size_t)n, stderr);
}

void service_log(int priority, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	priority = LOG_PRI(priority);
	if (priority == LOG_DEBUG && !service.verbose)
		return;
	if (!service.initialised)
		service_init();
	va_start(ap, fmt);
	service_vlog(priority, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void service_ready(void)
{
	sd_notify(0, "READY=1");
}

void service_status(const char *fmt, ...)
{
	char status[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	/* A newline would start another assignment in the notify datagram. */
	service_flatten(status);
	sd_notifyf(0, "STATUS=%s", status);
}

void service_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

uint64_t service_watchdog_interval_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	/* Half the period, as sd_watchdog_enabled(3) advises; never 0 = "off". */
	return usec / 2000 ? usec / 2000 : 1;
}

void service_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
