// The checksum of every tree node, log record and superblock: on every read of a node, so in C
// where the CPU's crc32 instruction is reachable. Both paths give the same values (the tests
// compare them with the bitwise definition).
#include "crc32c.h"

#include <string.h>

static uint32_t table[8][256];

__attribute__((constructor)) static void build_tables(void) {
    for (uint32_t index = 0; index < 256; index++) {
        uint32_t crc = index;
        for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        table[0][index] = crc;
    }
    for (uint32_t index = 0; index < 256; index++) {
        for (int slice = 1; slice < 8; slice++) {
            uint32_t previous = table[slice - 1][index];
            table[slice][index] = (previous >> 8) ^ table[0][previous & 0xFF];
        }
    }
}

static uint32_t update_tables(uint32_t crc, const unsigned char *bytes, size_t length) {
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        word ^= crc;
        crc = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^ table[5][(word >> 16) & 0xFF] ^
              table[4][(word >> 24) & 0xFF] ^ table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
              table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
        bytes += 8;
        length -= 8;
    }
    while (length--) crc = table[0][(crc ^ *bytes++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t update_instruction(uint32_t crc, const unsigned char *bytes, size_t length) {
    uint64_t wide = crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        bytes += 8;
        length -= 8;
    }
    crc = (uint32_t)wide;
    while (length--) crc = __builtin_ia32_crc32qi(crc, *bytes++);
    return crc;
}

static int has_instruction = -1;
#endif

uint32_t extentfs_crc32c_update(uint32_t crc, const void *bytes, size_t length) {
#if defined(__x86_64__)
    if (has_instruction < 0) {
        __builtin_cpu_init();
        has_instruction = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    if (has_instruction) return update_instruction(crc, bytes, length);
#endif
    return update_tables(crc, bytes, length);
}

/// For the tests: the table path alone, whatever the CPU.
uint32_t extentfs_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length) {
    return update_tables(crc, bytes, length);
}
