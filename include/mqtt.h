/* mqtt — being written. */
#ifndef MQTT_H
#define MQTT_H
#endif
