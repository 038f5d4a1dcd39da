/*
 * sim_peripheral — one simulated JK-BMS served through the REAL bluetoothd
 * as a BLE peripheral (`jkbms sim -c FILE --peripheral hciN`).
 *
 * Where sim.c plays bluetoothd itself, this registers with it over the
 * system bus as bluetoothd's own applications do (bluez
 * doc/org.bluez.GattManager.rst, GattCharacteristic.rst server role,
 * LEAdvertisingManager.rst, LEAdvertisement.rst):
 *
 *   /com/jkbridged/sim                  org.freedesktop.DBus.ObjectManager
 *   /com/jkbridged/sim/service0         org.bluez.GattService1 (FFE0)
 *   /com/jkbridged/sim/service0/char0   org.bluez.GattCharacteristic1 (FFE1,
 *                                       write-without-response, write, notify)
 *   /com/jkbridged/adv0                 org.bluez.LEAdvertisement1 (peripheral,
 *                                       FFE0, the name, 0x0B65: 88 A0 + MAC)
 *
 * The first pack of the configuration is the BMS (a struct sim_battery);
 * its address is ignored: the controller's own is the one on the air.
 * Every event is one line on stderr.
 */
#ifndef SIM_PERIPHERAL_H
#define SIM_PERIPHERAL_H

#include "sim.h"

/*
 * Serve c->packs[0] on adapter ("hci1") until SIGINT or SIGTERM.
 * bus_address NULL means the system bus.  Returns the exit status: 0 on a
 * signal, 1 when the bus, the adapter or a registration fails.
 */
int sim_peripheral_run(const struct sim_config *c, const char *bus_address, const char *adapter);

#endif
