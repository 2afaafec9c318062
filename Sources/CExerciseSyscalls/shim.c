/* Header-only target: exercise_syscalls.h. */
