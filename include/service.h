/*
 * service — systemd integration: sd_notify READY / STATUS / WATCHDOG /
 * STOPPING, and log lines with journald priority prefixes ("<6>") when
 * stderr is the journal (JOURNAL_STREAM set), plain "jkbridged: ..." lines
 * otherwise.  Outside systemd every call is a cheap no-op.
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <stdint.h>
#include <syslog.h>

void service_init(void);
void service_ready(void);
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void service_stopping(void);

/* Half of WatchdogSec in ms, or 0 when no watchdog is asked for. */
uint64_t service_watchdog_interval_ms(void);
void service_watchdog(void);

/* One log line; priority is a syslog LOG_* level. */
void service_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void service_set_verbose(int verbose);

#define log_err(...) service_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...) service_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) service_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) service_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) service_log(LOG_DEBUG, __VA_ARGS__)

#endif
