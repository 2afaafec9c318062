/* Header-only target: extentfs_ioctl.h. */
