#ifndef EXTENTFS_CRC32C_H
#define EXTENTFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (the inverted running value:
/// pass ~seed, invert the result). With the CPU's crc32 instruction where it has one (x86-64
/// with SSE 4.2), otherwise eight table lookups per 8 bytes.
uint32_t extentfs_crc32c_update(uint32_t crc, const void *bytes, size_t length);

/// The table path alone, whatever the CPU (for the tests, which compare the two).
uint32_t extentfs_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length);

#endif
