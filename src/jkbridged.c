/*
 * jkbridged — the daemon: packs in, one virtual battery out on the
 * inverter's CAN bus.
 *
 *	jkbridged [-c FILE] [-n [-v]] [-v]
 *
 * Start-up ladder: configuration (refused whole, with every problem, exit
 * 78) -> state restored -> CAN link (a missing interface is a state, not an
 * exit) -> packs -> timers -> READY.  Once a second the tick merges the
 * packs (bank), runs the charge logic (charge), builds the profile's frames
 * (canmsg) and queues them (canbus).  SIGHUP reloads the configuration
 * without pausing transmission; SIGTERM stops cleanly.  One log line per
 * state change, never one per frame.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bank.h"
#include "canbus.h"
#include "canmsg.h"
#include "cfg.h"
#include "charge.h"
#include "loop.h"
#include "pack.h"
#include "replay.h"
#include "service.h"
#include "store.h"

#ifndef JKB_VERSION
#define JKB_VERSION "0.0.0"
#endif

#define DEFAULT_CONFIG "/etc/jkbridged/jkbridged.conf"
#define EXIT_CONFIG 78	/* EX_CONFIG */
#define TICK_MS 1000
#define CHARGE_STATE_FILE "charge.json"

struct daemon;

struct dpack {
	struct daemon *d;
	const struct cfg_pack *cfg;
	struct pack pack;
	struct replay replay;
	bool replaying;
	bool fresh;		/* as last logged */
	bool offline_logged;
};

struct daemon {
	struct cfg cfg;
	struct loop loop;
	struct loop_source signals, tick, watchdog;
	struct bank bank;
	struct charge charge;
	struct canbus can;
	struct dpack packs[CFG_MAX_PACKS];
	uint64_t installed_mah;
	bool transmitting;
	bool inverter_alive;	/* as last logged */
	char status[160];
};

static struct daemon daemon_state;
static struct cfg reload_cfg;	/* big: not on the stack */

/* --------------------------------------------------------------- packs */

static bool replay_bytes(void *ctx, const uint8_t *data, size_t n)
{
	struct dpack *dp = ctx;
	uint32_t ev = pack_feed(&dp->pack, &dp->d->bank, data, n, loop_now_ms());

	if (ev & PACK_EV_PROTOCOL)
		log_info("pack %s: protocol %s%s", dp->cfg->name, jk_protocol_name(dp->pack.learned),
			 dp->pack.have_info ? "" : " (from frame content)");
	if ((ev & PACK_EV_DEVICE_INFO) && dp->pack.have_info)
		log_info("pack %s: %s hw %s fw %s serial %s", dp->cfg->name, dp->pack.info.model,
			 dp->pack.info.hw_version, dp->pack.info.sw_version, dp->pack.info.serial);
	return ev & PACK_EV_CELL_INFO;
}

static int dpack_start(struct daemon *d, unsigned i)
{
	struct dpack *dp = &d->packs[i];
	char err[512] = "";
	int rc;

	dp->d = d;
	dp->cfg = &d->cfg.packs[i];
	pack_init(&dp->pack, i, dp->cfg->protocol);
	if (!*dp->cfg->replay) {
		log_warn("pack %s: Bluetooth packs (%s) are not supported by this build yet; "
			 "it will be declared offline after the start-up timeout",
			 dp->cfg->name, dp->cfg->address);
		return 0;
	}
	rc = replay_open(&dp->replay, &d->loop, dp->cfg->replay, dp->cfg->loop, dp->cfg->speed,
			 replay_bytes, dp, err, sizeof(err));
	if (rc < 0) {
		log_err("pack %s: %s", dp->cfg->name, err);
		return rc;
	}
	dp->replaying = true;
	log_info("pack %s: replaying %s (%zu notifications%s, speed %.2f)", dp->cfg->name,
		 dp->cfg->replay, dp->replay.count, dp->cfg->loop ? ", looped" : "", dp->cfg->speed);
	return 0;
}

static void dpack_stop(struct dpack *dp)
{
	if (dp->replaying)
		replay_close(&dp->replay);
	dp->replaying = false;
}

static void log_pack_changes(struct daemon *d, uint64_t now_ms)
{
	for (unsigned i = 0; i < d->cfg.npacks; i++) {
		struct dpack *dp = &d->packs[i];
		bool fresh = bank_pack_fresh(&d->bank, i, now_ms);

		if (d->bank.packs[i].offline && !dp->offline_logged) {
			log_warn("pack %s: no valid frame within the start-up timeout, declared offline",
				 dp->cfg->name);
			dp->offline_logged = true;
		}
		if (fresh == dp->fresh)
			continue;
		dp->fresh = fresh;
		if (fresh)
			log_info("pack %s: fresh", dp->cfg->name);
		else
			log_warn("pack %s: stale (no valid frame for %u s), left out of the battery",
				 dp->cfg->name, d->cfg.battery.stale_after_ms / 1000);
	}
}

/* ---------------------------------------------------------------- state */

static void save_charge_state(struct daemon *d)
{
	struct charge_persist p;
	json_t *doc;
	int rc;

	charge_persist(&d->charge, &p);
	doc = json_pack("{s:s, s:I}", "state", charge_state_name(p.state),
			"last_end_of_charge", (json_int_t)p.last_eoc_wall_s);
	rc = doc ? store_save(d->cfg.state_dir, CHARGE_STATE_FILE, doc) : -ENOMEM;
	json_decref(doc);
	if (rc < 0)
		log_warn("state: cannot save %s/%s: %s", d->cfg.state_dir, CHARGE_STATE_FILE, strerror(-rc));
}

static void restore_charge_state(struct daemon *d, uint64_t now_ms)
{
	static const enum charge_state states[] = { CHARGE_WAIT, CHARGE_BULK, CHARGE_CUTOFF,
						    CHARGE_EOC, CHARGE_FLOAT };
	char err[512];
	json_t *doc = store_load(d->cfg.state_dir, CHARGE_STATE_FILE, err, sizeof(err));
	struct charge_persist p = { .state = CHARGE_WAIT };
	const char *name = NULL;
	json_int_t eoc = 0;

	if (!doc) {
		if (*err)
			log_warn("state: %s; starting without it", err);
		return;
	}
	if (json_unpack(doc, "{s:s, s:I}", "state", &name, "last_end_of_charge", &eoc) == 0) {
		for (unsigned i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			if (strcmp(name, charge_state_name(states[i])) == 0)
				p.state = states[i];
		p.last_eoc_wall_s = eoc;
		charge_restore(&d->charge, &p, now_ms);
		log_info("state: charge %s restored", charge_state_name(d->charge.state));
	} else {
		log_warn("state: %s/%s is not what this version wrote; ignored",
			 d->cfg.state_dir, CHARGE_STATE_FILE);
	}
	json_decref(doc);
}

/* ----------------------------------------------------------------- tick */

/* The inverter's keep-alive is shown, never required: transmission goes on. */
static void watch_inverter(struct daemon *d, uint64_t now_ms)
{
	bool alive = canbus_inverter_alive(&d->can, now_ms, d->cfg.can.keepalive_timeout_ms);

	if (alive == d->inverter_alive)
		return;
	d->inverter_alive = alive;
	if (alive)
		log_info("inverter: keep-alive (0x305) seen");
	else
		log_warn("inverter: no keep-alive for %u s; still transmitting",
			 d->cfg.can.keepalive_timeout_ms / 1000);
}

static void update_status(struct daemon *d, const struct battery *bat, const struct charge_output *out)
{
	char status[sizeof(d->status)];

	if (!bat->ready)
		snprintf(status, sizeof(status), "starting: waiting for %u packs", bat->packs_configured);
	else
		snprintf(status, sizeof(status), "%u/%u packs fresh, CAN %s%s, SOC %u%%, %s",
			 bat->packs_fresh, bat->packs_configured, canbus_state_name(d->can.state),
			 d->inverter_alive ? " (inverter seen)" : "", out->soc_pct,
			 charge_state_name(out->state));
	if (strcmp(status, d->status) == 0)
		return;
	snprintf(d->status, sizeof(d->status), "%s", status);
	service_status("%s", status);
}

static void tick(struct loop_source *src, uint32_t events)
{
	struct daemon *d = src->data;
	struct canmsg_frame frames[CANMSG_MAX_FRAMES];
	struct canmsg_identity id = { 0 };
	uint64_t now = loop_now_ms();
	struct charge_output out;
	struct battery bat;
	size_t n;

	loop_timer_ack(src);
	bank_aggregate(&d->bank, now, &bat);
	log_pack_changes(d, now);
	charge_step(&d->charge, &bat, now, loop_wall_s(), &out);
	if (out.changed) {
		log_info("charge: %s (CVL %.1f V, CCL %.1f A, DCL %.1f A)", charge_state_name(out.state),
			 out.cvl_mv / 1000.0, out.ccl_ma / 1000.0, out.dcl_ma / 1000.0);
		save_charge_state(d);
	}
	if (out.transmit != d->transmitting) {
		if (out.transmit)
			log_info("battery: %u/%u packs, transmitting to the inverter", bat.packs_fresh,
				 bat.packs_configured);
		else
			log_warn("battery: %s, nothing is sent to the inverter",
				 bat.ready ? "no fresh pack" : "not every pack has reported yet");
		d->transmitting = out.transmit;
	}
	if (bat.capacity_mah > d->installed_mah)
		d->installed_mah = bat.capacity_mah;
	snprintf(id.manufacturer, sizeof(id.manufacturer), "%s", d->cfg.can.manufacturer);
	id.installed_capacity_mah = (uint32_t)d->installed_mah;
	n = canmsg_build(d->cfg.can.profile, &bat, &out, &id, frames, CANMSG_MAX_FRAMES);
	if (out.transmit && n > 0)
		canbus_send_set(&d->can, frames, (unsigned)n);
	watch_inverter(d, now);
	update_status(d, &bat, &out);
}

static void watchdog_tick(struct loop_source *src, uint32_t events)
{
	loop_timer_ack(src);
	service_watchdog();
}

/* --------------------------------------------------------------- reload */

static int start_packs(struct daemon *d)
{
	struct bank_config bc;

	cfg_bank_config(&d->cfg, &bc);
	bank_init(&d->bank, &bc, d->cfg.npacks, loop_now_ms());
	for (unsigned i = 0; i < d->cfg.npacks; i++) {
		int rc = dpack_start(d, i);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static void stop_packs(struct daemon *d)
{
	for (unsigned i = 0; i < d->cfg.npacks; i++)
		dpack_stop(&d->packs[i]);
}

/*
 * Swap in a new configuration.  The bank keeps what it knew of packs that
 * are still configured (matched by name), so the battery stays ready and
 * transmission does not pause; new packs join when they report.
 */
static void apply_reload(struct daemon *d, const struct cfg *next)
{
	static struct bank old_bank;
	struct cfg_can old_can = d->cfg.can;

	old_bank = d->bank;
	stop_packs(d);
	{
		static struct cfg old_cfg;

		old_cfg = d->cfg;
		d->cfg = *next;
		if (start_packs(d) < 0) {
			log_err("reload: packs could not be started; going back to the running configuration");
			stop_packs(d);
			d->cfg = old_cfg;
			start_packs(d);
		}
		for (unsigned i = 0; i < d->cfg.npacks; i++)
			for (unsigned j = 0; j < old_cfg.npacks; j++)
				if (strcmp(d->cfg.packs[i].name, old_cfg.packs[j].name) == 0) {
					d->bank.packs[i] = old_bank.packs[j];
					d->packs[i].fresh = bank_pack_fresh(&d->bank, i, loop_now_ms());
				}
	}
	d->bank.started = old_bank.started;
	d->charge.cfg = d->cfg.charge;
	if (strcmp(old_can.interface, d->cfg.can.interface) != 0 || old_can.profile != d->cfg.can.profile) {
		canbus_close(&d->can);
		if (canbus_open(&d->can, &d->loop, d->cfg.can.interface, d->cfg.can.profile) < 0)
			log_err("reload: CAN %s cannot be opened", d->cfg.can.interface);
	}
	log_notice("reload: %s applied (%u packs)", d->cfg.path, d->cfg.npacks);
}

static void reload(struct daemon *d)
{
	struct cfg_diags diags;

	if (cfg_load(d->cfg.path, &reload_cfg, &diags) < 0) {
		for (unsigned i = 0; i < diags.n && i < CFG_MAX_DIAGS; i++)
			log_err("%s", diags.msg[i]);
		log_err("reload: %s refused, the running configuration stays", d->cfg.path);
		return;
	}
	apply_reload(d, &reload_cfg);
}

static void on_signal(struct loop_source *src, uint32_t events)
{
	struct daemon *d = src->data;
	struct signalfd_siginfo si;

	while (read(src->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_notice("SIGHUP: reloading %s", d->cfg.path);
			reload(d);
		} else {
			log_notice("%s: stopping", strsignal((int)si.ssi_signo));
			service_stopping();
			loop_stop(&d->loop, 0);
		}
	}
}

/* -------------------------------------------------------------- start-up */

static int start(struct daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	uint64_t wd = service_watchdog_interval_ms();
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if ((rc = loop_init(&d->loop)) < 0)
		return rc;
	if ((rc = loop_signals_add(&d->loop, &d->signals, sigs, 3, on_signal, d)) < 0)
		return rc;
	charge_init(&d->charge, &d->cfg.charge, loop_now_ms());
	restore_charge_state(d, loop_now_ms());
	if ((rc = canbus_open(&d->can, &d->loop, d->cfg.can.interface, d->cfg.can.profile)) < 0) {
		log_err("CAN %s: %s", d->cfg.can.interface, strerror(-rc));
		return rc;
	}
	if ((rc = start_packs(d)) < 0)
		return rc;
	if ((rc = loop_timer_add(&d->loop, &d->tick, tick, d)) < 0 ||
	    (rc = loop_timer_arm(&d->tick, TICK_MS, TICK_MS)) < 0)
		return rc;
	if (wd && ((rc = loop_timer_add(&d->loop, &d->watchdog, watchdog_tick, d)) < 0 ||
		   (rc = loop_timer_arm(&d->watchdog, wd, wd)) < 0))
		return rc;
	return 0;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: jkbridged [-c FILE] [-n] [-v]\n"
		"  -c FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  -n       check the configuration and exit (0, or 78 with every problem)\n"
		"  -v       with -n: print the effective configuration; otherwise: debug logging\n"
		"  -V       print the version\n");
}

static int check_config(const char *path, struct cfg *c, bool print)
{
	struct cfg_diags diags;

	if (cfg_load(path, c, &diags) < 0) {
		for (unsigned i = 0; i < diags.n && i < CFG_MAX_DIAGS; i++)
			fprintf(stderr, "%s\n", diags.msg[i]);
		if (diags.n > CFG_MAX_DIAGS)
			fprintf(stderr, "(%u more problems not shown)\n", diags.n - CFG_MAX_DIAGS);
		return EXIT_CONFIG;
	}
	if (print)
		cfg_print(c, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon *d = &daemon_state;
	const char *path = DEFAULT_CONFIG;
	bool check = false;
	int verbose = 0, c, rc;

	while ((c = getopt(argc, argv, "c:nvVh")) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': check = true; break;
		case 'v': verbose++; break;
		case 'V': printf("jkbridged %s\n", JKB_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	rc = check_config(path, &d->cfg, check && verbose);
	if (rc || check)
		return rc;

	service_init();
	service_set_verbose(verbose);
	log_notice("jkbridged %s starting: %s, %u packs, CAN %s (%s)", JKB_VERSION, path,
		   d->cfg.npacks, d->cfg.can.interface, canmsg_profile_name(d->cfg.can.profile));
	if (start(d) < 0) {
		log_err("start-up failed");
		return EXIT_FAILURE;
	}
	service_ready();
	rc = loop_run(&d->loop);
	save_charge_state(d);
	stop_packs(d);
	canbus_close(&d->can);
	loop_close(&d->loop);
	log_notice("stopped");
	return rc;
}
