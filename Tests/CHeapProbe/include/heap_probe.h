/*
 * The heap bytes in use (glibc's mallinfo2), for tests that measure what metadata costs in
 * memory. In C because Swift's Glibc module does not bring in <malloc.h>.
 */
#ifndef EXTENTFS_HEAP_PROBE_H
#define EXTENTFS_HEAP_PROBE_H

#include <stddef.h>

size_t extentfs_test_heap_bytes(void);

#endif
