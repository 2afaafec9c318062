/*
 * The exerciser's byte loops, in C so that they stay fast in debug builds too (the test suite
 * runs thousands of operations over megabyte files, and unoptimized Swift loops per byte are
 * dozens of times slower).
 */
#ifndef EXERCISE_BYTES_H
#define EXERCISE_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* DataPattern: byte i is a hash of the file offset and the write's tag (a SplitMix64 round),
 * so no two writes or offsets share a run of bytes by structure. */
static inline void exercise_fill_pattern(uint8_t *bytes, size_t count, uint64_t file_offset, uint32_t tag) {
    uint64_t salt = ((uint64_t)tag << 32 | tag) * 0xD6E8FEB86659FD93ull;
    for (size_t i = 0; i < count; i++) {
        uint64_t x = (file_offset + i) * 0x9E3779B97F4A7C15ull + salt;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        bytes[i] = (uint8_t)(x >> 56);
    }
}

/* Index of the first nonzero byte, or count when all are zero. */
static inline size_t exercise_first_nonzero(const uint8_t *bytes, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        uint64_t word;
        memcpy(&word, bytes + i, 8);
        if (word != 0) break;
    }
    for (; i < count; i++) {
        if (bytes[i] != 0) return i;
    }
    return count;
}

/* Index of the first byte that differs, or count when equal. */
static inline size_t exercise_first_difference(const uint8_t *left, const uint8_t *right, size_t count) {
    if (memcmp(left, right, count) == 0) return count;
    size_t i = 0;
    while (left[i] == right[i]) i++;
    return i;
}

/* Index of the last byte that differs; call only when some byte does. */
static inline size_t exercise_last_difference(const uint8_t *left, const uint8_t *right, size_t count) {
    size_t i = count - 1;
    while (left[i] == right[i]) i--;
    return i;
}

#endif
