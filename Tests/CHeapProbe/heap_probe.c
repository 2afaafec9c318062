#include "heap_probe.h"

#include <malloc.h>

size_t extentfs_test_heap_bytes(void) {
    struct mallinfo2 info = mallinfo2();
    /* Small blocks and large (mmap'd) ones: both are memory the process holds for the caller. */
    return info.uordblks + info.hblkhd;
}
