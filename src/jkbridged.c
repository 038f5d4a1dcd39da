/*
 * jkbridged — the daemon: packs in, one virtual battery out on the
 * inverter's CAN bus.
 *
 *	jkbridged [-c FILE] [-n [-v]] [-v]
 *
 * Start-up ladder: configuration (refused whole, with every problem, exit
 * 78) -> state restored -> CAN link (a missing interface is a state, not an
 * exit) -> MQTT (Home Assistant; an unreachable broker is a state too) ->
 * packs -> timers -> READY.  Once a second the tick merges the packs
 * (bank), runs the charge logic (charge), builds the profile's frames
 * (canmsg) and queues them (canbus), counts energy (energy) and publishes
 * to Home Assistant (mqtt, ha).  SIGHUP reloads the configuration
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
#include "ble.h"
#include "canbus.h"
#include "canmsg.h"
#include "cfg.h"
#include "charge.h"
#include "energy.h"
#include "ha.h"
#include "loop.h"
#include "mqtt.h"
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
#define ENERGY_STATE_FILE "energy.json"
#define CONTROL_STATE_FILE "control.json"
#define ENERGY_SAVE_MS (5 * 60 * 1000)

struct daemon;

struct dpack {
	struct daemon *d;
	const struct cfg_pack *cfg;
	struct pack pack;
	struct replay replay;
	bool replaying;
	struct ble_link *link;	/* a Bluetooth pack's link */
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
	struct ble *ble;	/* opened with the first Bluetooth pack */
	struct dpack packs[CFG_MAX_PACKS];
	uint64_t installed_mah;
	bool transmitting;
	bool inverter_alive;	/* as last logged */
	char status[160];
	uint64_t start_ms;
	struct battery bat;		/* as of the last tick, for Home Assistant */
	struct charge_output out;
	struct energy_book energy;
	uint64_t energy_saved_ms;
	struct mqtt mqtt;
	bool forbid_charge, forbid_discharge;	/* asked from Home Assistant */
	int control_shown;		/* effective forbid bits as last logged; -1 = none */
};

static struct daemon daemon_state;
static struct cfg reload_cfg;	/* big: not on the stack */

/* --------------------------------------------------------------- packs */

/* Bytes from either source, replay or Bluetooth: PACK_EV_* bits. */
static uint32_t dpack_feed(void *ctx, const uint8_t *data, size_t n)
{
	struct dpack *dp = ctx;
	uint32_t ev = pack_feed(&dp->pack, &dp->d->bank, data, n, loop_now_ms());

	if (ev & PACK_EV_PROTOCOL)
		log_info("pack %s: protocol %s%s", dp->cfg->name, jk_protocol_name(dp->pack.learned),
			 dp->pack.have_info ? "" : " (from frame content)");
	if ((ev & PACK_EV_DEVICE_INFO) && dp->pack.have_info)
		log_info("pack %s: %s hw %s fw %s serial %s", dp->cfg->name, dp->pack.info.model,
			 dp->pack.info.hw_version, dp->pack.info.sw_version, dp->pack.info.serial);
	return ev;
}

static bool replay_bytes(void *ctx, const uint8_t *data, size_t n)
{
	return dpack_feed(ctx, data, n) & PACK_EV_CELL_INFO;
}

/* A Bluetooth pack: its link logs its own state changes. */
static int dpack_start_ble(struct daemon *d, struct dpack *dp)
{
	static const struct ble_link_ops ops = { .on_bytes = dpack_feed };
	struct ble_link_config lc = { .name = dp->cfg->name, .address = dp->cfg->address,
				      .adapter = dp->cfg->adapter, .pack = &dp->pack, .ops = &ops, .ctx = dp };

	if (!d->ble && !(d->ble = ble_open(&d->loop)))
		return -ENOMEM;
	dp->link = ble_link_new(d->ble, &lc);
	return dp->link ? 0 : -ENOMEM;
}

static int dpack_start(struct daemon *d, unsigned i)
{
	struct dpack *dp = &d->packs[i];
	char err[512] = "";
	int rc;

	dp->d = d;
	dp->cfg = &d->cfg.packs[i];
	pack_init(&dp->pack, i, dp->cfg->protocol);
	if (!*dp->cfg->replay)
		return dpack_start_ble(d, dp);
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
	ble_link_free(dp->link);
	dp->link = NULL;
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

/* ------------------------------------------------------ Home Assistant */

/* The energy book's key: stable across renames and reordering. */
static const char *energy_key(const struct cfg_pack *p, char *buf, size_t n)
{
	if (*p->address)
		snprintf(buf, n, "%s", p->address);
	else
		snprintf(buf, n, "replay:%s", p->name);
	return buf;
}

static void save_energy(struct daemon *d)
{
	json_t *doc = energy_book_json(&d->energy);
	int rc = doc ? store_save(d->cfg.state_dir, ENERGY_STATE_FILE, doc) : -ENOMEM;

	json_decref(doc);
	if (rc < 0)
		log_warn("state: cannot save %s/%s: %s", d->cfg.state_dir, ENERGY_STATE_FILE, strerror(-rc));
}

static void restore_energy(struct daemon *d)
{
	char err[512];
	json_t *doc = store_load(d->cfg.state_dir, ENERGY_STATE_FILE, err, sizeof(err));

	energy_book_init(&d->energy);
	if (!doc && *err)
		log_warn("state: %s; energy counters start at zero", err);
	else if (doc && energy_book_restore(&d->energy, doc) < 0)
		log_warn("state: %s/%s is not what this version wrote; energy counters start at zero",
			 d->cfg.state_dir, ENERGY_STATE_FILE);
	else if (doc)
		log_info("state: energy counters restored");
	json_decref(doc);
}

/* Each fresh pack's V x I since the last tick; the battery gets their sum.
 * A sample older than ENERGY_MAX_STEP_MS (a pack going quiet) counts nothing. */
static void energy_step(struct daemon *d, uint64_t now)
{
	char key[ENERGY_KEY_MAX];
	struct energy_meter *m;
	int64_t sum_nj = 0;

	for (unsigned i = 0; i < d->cfg.npacks; i++) {
		const struct bank_pack *bp = &d->bank.packs[i];

		m = energy_book_meter(&d->energy, energy_key(&d->cfg.packs[i], key, sizeof(key)));
		if (m && bp->have_sample && (bp->sample.has & JK_HAS_CURRENT) &&
		    now - bp->sample_ms <= ENERGY_MAX_STEP_MS && bank_pack_fresh(&d->bank, i, now))
			sum_nj += energy_update(m, bp->sample.voltage_mv, bp->sample.current_ma, now);
		else if (m)
			energy_pause(m);
	}
	if ((m = energy_book_meter(&d->energy, ENERGY_BATTERY_KEY)))
		energy_add_nj(m, sum_nj);
	if (now - d->energy_saved_ms >= ENERGY_SAVE_MS) {
		save_energy(d);
		d->energy_saved_ms = now;
	}
}

/* The forbid switches act only while control is allowed. */
static void apply_control(struct daemon *d)
{
	bool allow = d->cfg.mqtt.allow_control;
	bool charge = allow && d->forbid_charge, discharge = allow && d->forbid_discharge;
	int bits = charge | discharge << 1;

	d->cfg.charge.user_forbid_charge = d->charge.cfg.user_forbid_charge = charge;
	d->cfg.charge.user_forbid_discharge = d->charge.cfg.user_forbid_discharge = discharge;
	if (bits != d->control_shown && (bits || d->control_shown > 0))
		log_notice("control: charging %s, discharging %s (Home Assistant)", charge ? "forbidden" : "allowed",
			   discharge ? "forbidden" : "allowed");
	d->control_shown = bits;
}

static void save_control(struct daemon *d)
{
	json_t *doc = json_pack("{s:b, s:b}", "forbid_charge", d->forbid_charge, "forbid_discharge",
				d->forbid_discharge);
	int rc = doc ? store_save(d->cfg.state_dir, CONTROL_STATE_FILE, doc) : -ENOMEM;

	json_decref(doc);
	if (rc < 0)
		log_warn("state: cannot save %s/%s: %s", d->cfg.state_dir, CONTROL_STATE_FILE, strerror(-rc));
}

static void restore_control(struct daemon *d)
{
	json_t *doc = d->cfg.mqtt.allow_control ? store_load(d->cfg.state_dir, CONTROL_STATE_FILE, NULL, 0) : NULL;
	int charge = 0, discharge = 0;

	d->control_shown = -1;
	if (doc && json_unpack(doc, "{s:b, s:b}", "forbid_charge", &charge, "forbid_discharge", &discharge) < 0)
		log_warn("state: %s/%s is not what this version wrote; ignored", d->cfg.state_dir, CONTROL_STATE_FILE);
	d->forbid_charge = charge;
	d->forbid_discharge = discharge;
	json_decref(doc);
	apply_control(d);
}

static void pack_link(const struct dpack *dp, struct ha_link *l)
{
	struct ble_link_stats st;

	*l = (struct ha_link){ .frames = dp->pack.stream.stats.frames,
			       .bad_checksums = dp->pack.stream.stats.bad_checksums };
	if (dp->replaying) {
		l->connected = !dp->replay.finished;
	} else if (dp->link) {
		ble_link_stats(dp->link, &st);
		l->connected = st.state == BLE_SUBSCRIBED || st.state == BLE_STREAMING;
		l->have_rssi = st.have_rssi;
		l->rssi_dbm = st.rssi;
		l->reconnects = st.reconnects;
	}
}

/* mqtt.h: what Home Assistant is shown, read from the daemon as it is now. */
void daemon_ha_view(struct ha_view *v)
{
	struct daemon *d = &daemon_state;
	uint64_t now = loop_now_ms();
	char key[ENERGY_KEY_MAX];

	memset(v, 0, sizeof(*v));
	v->bridge = (struct ha_bridge){
		.can_state = canbus_state_name(d->can.state), .can_sent = d->can.stats.sent,
		.can_dropped = d->can.stats.dropped_nobufs + d->can.stats.send_errors,
		.inverter_alive = d->inverter_alive, .uptime_s = (now - d->start_ms) / 1000,
	};
	v->battery = (struct ha_battery){
		.bat = &d->bat, .out = &d->out, .energy = energy_book_meter(&d->energy, ENERGY_BATTERY_KEY),
		.forbid_charge = d->charge.cfg.user_forbid_charge,
		.forbid_discharge = d->charge.cfg.user_forbid_discharge,
	};
	v->npacks = d->cfg.npacks < HA_MAX_PACKS ? d->cfg.npacks : HA_MAX_PACKS;
	for (unsigned i = 0; i < v->npacks; i++) {
		const struct dpack *dp = &d->packs[i];

		v->packs[i] = (struct ha_pack){
			.name = d->cfg.packs[i].name, .address = d->cfg.packs[i].address,
			.fresh = bank_pack_fresh(&d->bank, i, now), .bank = &d->bank.packs[i],
			.info = dp->pack.have_info ? &dp->pack.info : NULL,
			.protocol = dp->pack.learned ? dp->pack.learned : dp->pack.configured,
			.energy = energy_book_meter(&d->energy, energy_key(&d->cfg.packs[i], key, sizeof(key))),
		};
		pack_link(dp, &v->packs[i].link);
	}
}

/* mqtt.h: a switch from Home Assistant; the state shown stays the BMS's. */
int daemon_pack_switch(unsigned pack, enum jk_switch sw, bool on)
{
	struct daemon *d = &daemon_state;

	if (pack >= d->cfg.npacks)
		return -EINVAL;
	if (!d->packs[pack].link)
		return -EOPNOTSUPP;	/* a replay pack: nothing to write to */
	return ble_link_switch(d->packs[pack].link, sw, on);
}

/* mqtt.h: the battery's forbid switches, kept across restarts. */
int daemon_battery_forbid(bool charge, bool on)
{
	struct daemon *d = &daemon_state;

	if (charge)
		d->forbid_charge = on;
	else
		d->forbid_discharge = on;
	apply_control(d);
	save_control(d);
	return 0;
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
	d->bat = bat;
	d->out = out;
	energy_step(d, now);
	mqtt_tick(&d->mqtt, now);
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
	apply_control(d);
	if (strcmp(old_can.interface, d->cfg.can.interface) != 0 || old_can.profile != d->cfg.can.profile) {
		canbus_close(&d->can);
		if (canbus_open(&d->can, &d->loop, d->cfg.can.interface, d->cfg.can.profile) < 0)
			log_err("reload: CAN %s cannot be opened", d->cfg.can.interface);
	}
	if (mqtt_reload(&d->mqtt, &d->cfg) < 0)
		log_err("reload: MQTT could not be restarted");
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
	d->start_ms = d->energy_saved_ms = loop_now_ms();
	charge_init(&d->charge, &d->cfg.charge, loop_now_ms());
	restore_charge_state(d, loop_now_ms());
	restore_control(d);
	restore_energy(d);
	if ((rc = canbus_open(&d->can, &d->loop, d->cfg.can.interface, d->cfg.can.profile)) < 0) {
		log_err("CAN %s: %s", d->cfg.can.interface, strerror(-rc));
		return rc;
	}
	if ((rc = mqtt_open(&d->mqtt, &d->loop, &d->cfg)) < 0) {
		log_err("MQTT: %s", strerror(-rc));
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
		/* At error priority: under systemd this runs as ExecStartPre/ExecReload. */
		for (unsigned i = 0; i < diags.n && i < CFG_MAX_DIAGS; i++)
			log_err("%s", diags.msg[i]);
		if (diags.n > CFG_MAX_DIAGS)
			log_err("(%u more problems not shown)", diags.n - CFG_MAX_DIAGS);
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
	service_init();
	rc = check_config(path, &d->cfg, check && verbose);
	if (rc || check)
		return rc;

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
	save_energy(d);
	mqtt_close(&d->mqtt);
	stop_packs(d);
	ble_close(d->ble);
	canbus_close(&d->can);
	loop_close(&d->loop);
	log_notice("stopped");
	return rc;
}
