/* ble — being written. */
#ifndef BLE_H
#define BLE_H
#endif
