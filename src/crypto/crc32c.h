/*
** crc32c.h — CRC-32C (Castagnoli), the checksum that frames log records and checkpoint
** files. Standard conventions (reflected, initial value and final xor 0xFFFFFFFF, both
** applied inside), so kd__crc32c(0, "123456789", 9) == 0xE3069283, and checksums chain:
** kd__crc32c(kd__crc32c(0, a, na), b, nb) == kd__crc32c(0, a||b, na + nb).
**
** Thread-safe; nothing to initialise (the lookup tables and the choice of the hardware
** path are set up once, on first use).
*/
#ifndef KD_CRC32C_H
#define KD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes at data, continuing from crc (0 to start). data may be NULL when
** len is 0. Uses the CPU's crc32 instruction when it has one (SSE4.2 on x86-64). */
uint32_t kd__crc32c(uint32_t crc, const void *data, size_t len);

/* The same function computed with tables only, whatever the CPU: for tests. */
uint32_t kd__crc32c_sw(uint32_t crc, const void *data, size_t len);

/* 1 when kd__crc32c uses a hardware instruction, else 0: for tests and diagnostics. */
int kd__crc32c_hw_available(void);

#endif /* KD_CRC32C_H */
