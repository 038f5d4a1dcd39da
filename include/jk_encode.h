/*
 * jk_encode — structs to JK-BMS frames, the inverse of jk_decode: the
 * simulator's packs and the tests' own captures are built with it.  Every
 * field jk_decode reads is written at the same offset (one table,
 * jk_layout.h); bytes of unknown meaning stay zero.  The frame gets the
 * header, the type, the counter and a valid checksum.
 *
 * Pure core.
 */
#ifndef JK_ENCODE_H
#define JK_ENCODE_H

#include "jk_decode.h"

/* s->protocol selects the layout; 0 or -EPROTONOSUPPORT. */
int jk_encode_cell_info(uint8_t frame[JK_FRAME_LEN], const struct jk_sample *s);
int jk_encode_settings(uint8_t frame[JK_FRAME_LEN], const struct jk_settings *s);
void jk_encode_device_info(uint8_t frame[JK_FRAME_LEN], const struct jk_device_info *d, uint8_t counter);

#endif
