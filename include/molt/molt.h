/*
 * molt/molt.h: the C interface between an application and Molt.
 *
 * Molt updates a running C program to a new version of itself without a restart. An
 * application includes this header and links the Molt runtime. This release carries the
 * version macros only: the runtime (update points, MOLT_LOCAL, molt_wake_fd) and the
 * transformer macros arrive with the live-update runtime. Programs can already be examined
 * with the `molt` tool (`molt schema`, `molt diff`, `molt check`, `molt old-types`), which
 * needs nothing but a build with -g.
 */
#ifndef MOLT_MOLT_H
#define MOLT_MOLT_H

/* The version of Molt this header belongs to. */
#define MOLT_VERSION_MAJOR 0
#define MOLT_VERSION_MINOR 1
#define MOLT_VERSION_PATCH 0

/* True when this header is at least version (major, minor). */
#define MOLT_VERSION_AT_LEAST(major, minor) \
    (MOLT_VERSION_MAJOR > (major) || (MOLT_VERSION_MAJOR == (major) && MOLT_VERSION_MINOR >= (minor)))

#endif /* MOLT_MOLT_H */
