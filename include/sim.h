/*
 * sim — simulated JK-BMS packs served as a BlueZ look-alike on D-Bus, so
 * the daemon and `jkbms scan|dump` can be run without Bluetooth hardware.
 *
 * It owns the name org.bluez on the bus it is given and exports what
 * bluetoothd exports for a Bluetooth LE peripheral, with the documented
 * names, signatures and error names (bluez doc/org.bluez.Adapter.rst,
 * Device.rst, GattService.rst, GattCharacteristic.rst,
 * GattDescriptor.rst):
 *
 *   /                                   org.freedesktop.DBus.ObjectManager
 *   /org/bluez/hciN                     org.bluez.Adapter1
 *   .../dev_XX_XX_XX_XX_XX_XX           org.bluez.Device1 (after discovery)
 *   .../serviceHHHH                     org.bluez.GattService1 (after Connect)
 *   .../serviceHHHH/charHHHH            org.bluez.GattCharacteristic1
 *   .../serviceHHHH/charHHHH/descHHHH   org.bluez.GattDescriptor1
 *
 * Each pack's BMS is a struct sim_battery; the objects and links are the
 * adapter around it.  Fault injection comes as lines on stdin (drop,
 * refuse, silence, junk, corrupt, stale, set); every event is one line on
 * stderr.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_battery.h"

#define SIM_MAX_PACKS 16
#define SIM_MAX_ADAPTERS 8
#define SIM_MAX_ADAPTER_INDEX 15	/* hci0 .. hci15 */

/* The two BLE module generations of jkbms-ble.md §1.1. */
enum sim_module {
	SIM_MODULE_OLD,	/* C8:47:8C / C8:47:80: one FFE1 (write-without-response, write, notify) */
	SIM_MODULE_NEW,	/* 20:21:11 ...: two FFE1, one (write-without-response, write), one (read, notify) */
};

struct sim_pack_config {
	char address[18];		/* "C8:47:8C:00:00:01", upper case */
	unsigned adapter;		/* N of hciN */
	enum sim_module module;
	uint16_t mtu;			/* the ATT MTU AcquireNotify/AcquireWrite return */
	bool refuse, silence, junk, corrupt, stale;	/* faults in force at start */
	struct sim_battery_config battery;
};

struct sim_config {
	unsigned npacks;
	struct sim_pack_config packs[SIM_MAX_PACKS];
	bool gatt_cache;		/* GATT objects stay after a disconnect, as with BlueZ's Cache = always */
};

/* The module a MAC address suggests: C8:47:8C and C8:47:80 are the old one. */
enum sim_module sim_module_for_address(const char *address);

/*
 * Serve until SIGINT or SIGTERM.  bus_address NULL means the system bus,
 * which sd-bus takes from DBUS_SYSTEM_BUS_ADDRESS when that is set.
 * Returns the exit status: 0 on a signal, 1 when the bus or the name
 * cannot be had.
 */
int sim_run(const struct sim_config *c, const char *bus_address);

#endif
