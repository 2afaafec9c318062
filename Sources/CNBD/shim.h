// libnbd (the NBD client library) for the engine's NBD backing store. Swift calls it directly:
// the asynchronous commands take a plain struct of C function pointers, nothing variadic.
#ifndef EXTENTFS_CNBD_SHIM_H
#define EXTENTFS_CNBD_SHIM_H

#include <libnbd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#endif
