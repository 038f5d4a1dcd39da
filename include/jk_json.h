/*
 * jk_json — decoded JK-BMS frames as JSON objects (jansson).
 *
 * The field names are the ones `jkbms decode` prints and the rest of the
 * project reads: integers in the units their names carry (_mv, _ma, _mah,
 * _dc = 0.1 °C, _s), booleans for switches.  A field the frame's layout does
 * not carry is left out rather than shown as zero.
 */
#ifndef JK_JSON_H
#define JK_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "jk_decode.h"

json_t *jk_json_sample(const struct jk_sample *s);
json_t *jk_json_settings(const struct jk_settings *s);
json_t *jk_json_device_info(const struct jk_device_info *d, enum jk_protocol proto);
json_t *jk_json_logbook(const struct jk_logbook *l);

/* Any frame: decoded with `proto` and turned into JSON; NULL when the frame
 * type does not exist in that protocol (or the protocol is unknown). */
json_t *jk_json_frame(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto);

/* The frame as one JSON Lines record on `to`; false when it cannot be decoded. */
bool jk_json_print_frame(FILE *to, const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto);

#endif
