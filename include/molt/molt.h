/*
 * molt/molt.h: the C interface between an application and Molt.
 *
 * Molt updates a running C program to a new version of itself without a restart. A version is
 * an ordinary build of the program with -g: version 1 is usually the executable, linked with the
 * Molt runtime (`pkg-config --cflags --libs molt`); later versions are shared objects built from
 * the new source with `-g -fPIC -shared -Wl,-Bsymbolic`, linked with the same runtime.
 *
 * An update (requested with `molt update PID NEW.so`) waits until every thread of the program
 * is parked at an update point, carries globals, statics, MOLT_LOCALs and thread arguments over
 * to the new version (converted where their types changed), then restarts each thread in the
 * new version: the main thread in the new `main`, every other thread in the new version's start
 * routine of the same name, on a fresh stack of the same OS thread. The new code finds its way
 * back to the update point it needs, skipping initialisation with molt_is_updating():
 *
 *     int main(int argc, char **argv)
 *     {
 *         int listen_fd = -1;
 *         MOLT_LOCAL(listen_fd);               // taken over from the old version's main
 *         if (!molt_is_updating())
 *             listen_fd = listen_on(6380);       // first start only
 *         for (;;) {
 *             molt_update_point("accept");
 *             serve_one(listen_fd);
 *         }
 *     }
 *
 * Threads blocked in a system call are woken for an update by a signal (SIGRTMIN+7 unless the
 * application sets MOLT_SIGNAL) installed without SA_RESTART: accept, read, poll, epoll_wait,
 * nanosleep... return -1 with errno EINTR, and the application's loop reaches its update point.
 * pthread_cond_wait is an update point by itself. Event loops may instead add molt_wake_fd() to
 * their poll set.
 *
 * Every function here is safe to call from any thread. Programs built without the runtime can
 * compile these calls away by defining MOLT_DISABLE before including this header.
 */
#ifndef MOLT_MOLT_H
#define MOLT_MOLT_H

#include <stddef.h>

/* The version of Molt this header belongs to. */
#define MOLT_VERSION_MAJOR 0
#define MOLT_VERSION_MINOR 2
#define MOLT_VERSION_PATCH 0

/* True when this header is at least version (major, minor). */
#define MOLT_VERSION_AT_LEAST(major, minor) \
    (MOLT_VERSION_MAJOR > (major) || (MOLT_VERSION_MAJOR == (major) && MOLT_VERSION_MINOR >= (minor)))

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MOLT_DISABLE

/* Non-zero while an update is pending: the one word an update point reads. Not for writing. */
extern volatile int molt_pending_update;

/* Where an update point does its work when an update is pending (use molt_update_point). */
void molt_update_point_slow(const char *name) __attribute__((cold));

/*
 * A safe place to switch versions: the calling thread holds no lock and no state that the new
 * version could not rebuild, and is not inside a pthread_cleanup_push region (the old version's
 * frames are abandoned when the thread restarts in the new one). `name` (a string literal) names the place in `molt status` and in
 * reports. Costs one relaxed load and a branch when no update is pending. In the new version,
 * the first update point a thread reaches ends its restart: molt_is_updating() is false after.
 */
static inline void molt_update_point(const char *name)
{
    if (__builtin_expect(__atomic_load_n(&molt_pending_update, __ATOMIC_RELAXED), 0))
        molt_update_point_slow(name);
}

/* True in a thread of the new version from its restart until it reaches an update point. */
int molt_is_updating(void);

/* True when molt_is_updating() and the old version of this thread was parked at the update
 * point called `name`. */
int molt_is_updating_from(const char *name);

/*
 * An eventfd that is readable while an update is pending, for event loops to add to their poll
 * set; the loop then reaches an update point. Never closed by Molt; -1 if it cannot be made.
 */
int molt_wake_fd(void);

/*
 * The updates this process went through, for the program to show (kvd's INFO does): one line per
 * attempt, oldest first (the last 100 attempts, or MOLT_HISTORY=N in the environment), "committed NEW pause_ms=P converted_objects=N" or "rolled-back NEW
 * phase=PHASE error=WHY", where NEW is the new version's file name. Writes at most `size` bytes
 * into `buffer`, NUL-terminated, and returns the length of the whole history (as snprintf does).
 */
size_t molt_update_history(char *buffer, size_t size);

/*
 * For the new version's constructors, which run while an update loads it: refuses the update, with
 * `reason` (a sentence) in its report. The update fails before the pause, the new version is
 * unloaded and the old one keeps running. A constructor cannot fail otherwise: exit() or abort()
 * there would end the whole process. Returns 1 when it refused an update in progress, 0 when no
 * update is loading this code (a library the program itself loads, say): then it does nothing.
 */
int molt_refuse_update(const char *reason);

/*
 * The size the program asked for when it allocated the block that starts at `pointer` (with
 * malloc, calloc, realloc, posix_memalign, aligned_alloc, strdup, getline...), or 0 for a pointer
 * that is not the start of a block the runtime tracks. The runtime interposes the malloc family to
 * know this: a typed pointer to a block then tells how many elements it holds.
 */
size_t molt_block_size(const void *pointer);

/* Registers a local of the current function (see MOLT_LOCAL). Returns non-zero when the value
 * was taken over from the old version. */
int molt_local(const char *function, const char *name, void *address, size_t size);

/*
 * MOLT_LOCAL(var): `var`, a local of the current function, is carried over by an update. In the
 * old version it records where `var` lives; in the new version, during an update, it sets `var`
 * to the value the old version's same-named local of the same function had when its thread
 * parked (converted if its type changed). Use it in functions that are on the stack at the
 * update point (main loops), after the variable's declaration and before its first use.
 */
#define MOLT_LOCAL(var) molt_local(__func__, #var, &(var), sizeof(var))

/*
 * Transformers: C functions in the NEW version that finish what the default conversion cannot do.
 * Each takes the new object (already converted by default rules: members matched by name,
 * members that could not be converted left zero) and the old one, and returns NULL on success or
 * a message that fails the update (the old version then keeps running, untouched). Read old
 * objects through the header `molt old-types OLD -o old_types.h` writes:
 *
 *     #include "old_types.h"
 *     static const char *entry_value(void *to, const void *from)
 *     {
 *         struct entry *new_entry = to;
 *         const struct molt_old_entry *old_entry = from;
 *         new_entry->value = number_to_string(old_entry->value);
 *         return NULL;
 *     }
 *     MOLT_TYPE_TRANSFORMER("struct entry", entry_value);
 *     MOLT_VARIABLE_TRANSFORMER("counter", counter_from_int);
 *
 * A type transformer runs on every object of that type the update converts (globals, statics,
 * heap objects); a variable transformer runs on that variable (qualified name, as `molt schema`
 * prints it). Both run only where something changed: an object whose type is the same in both
 * versions is copied, not converted, so updating a version to itself (a redeploy) transforms
 * nothing a second time. A change of meaning alone (a count now in microseconds) is marked by
 * a new name: MOLT_RENAME_MEMBER or MOLT_RENAME_VARIABLE (`timeout_ms` -> `timeout_us`), and the
 * transformer then runs. A transformer must return: one call that runs longer than the update's
 * --timeout (a loop, a blocking read) is abandoned and the update fails, as when one crashes (a
 * lock it held stays held). They are registered in the ELF section molt_transformers, so that
 * `molt check OLD NEW` sees them without running anything and reports the changes they cover.
 */
typedef const char *(*molt_transformer_function)(void *to, const void *from);

struct molt_transformer_record {
    unsigned int magic;  /* MOLT_TRANSFORMER_MAGIC */
    unsigned int kind;   /* 1: type, 2: variable transformer; 3, 4, 5: variable, type, member rename;
                            6: type transformer that may run on several threads; 7 to 11:
                            annotations (points-to of a member, of a variable, length, union
                            case, opaque) */
    char name[112];      /* "struct entry", "point_t", "counter", "kvd.c/store"; renames and
                            annotations: parts split by NUL */
    molt_transformer_function function;
};

/*
 * Renames, in the new version: a renamed variable, type or member carries its value over instead
 * of being dropped and added anew. Names as `molt schema` prints them:
 *     MOLT_RENAME_VARIABLE("total", "sum");
 *     MOLT_RENAME_TYPE("struct entry", "struct item");
 *     MOLT_RENAME_MEMBER("struct item", "count", "hits");   (the type by its new name)
 */
#define MOLT_RENAME_VARIABLE(old_name, new_name) \
    MOLT_RENAME_RECORD(3, old_name "\0" new_name, __LINE__)
#define MOLT_RENAME_TYPE(old_name, new_name) MOLT_RENAME_RECORD(4, old_name "\0" new_name, __LINE__)
#define MOLT_RENAME_MEMBER(type_name, old_member, new_member) \
    MOLT_RENAME_RECORD(5, type_name "\0" old_member "\0" new_member, __LINE__)
#define MOLT_RENAME_RECORD(kind, text, line) MOLT_RENAME_RECORD_AT(kind, text, line)
#define MOLT_RENAME_RECORD_AT(kind, text, line)                                                     \
    __attribute__((section("molt_transformers"), used, aligned(8))) static const struct molt_transformer_record \
        molt_rename_record_##line = {MOLT_TRANSFORMER_MAGIC, kind, text, 0}

#define MOLT_TRANSFORMER_MAGIC 0x544c4f4du
#define MOLT_TRANSFORMER_RECORD(kind, text, function)                                                  \
    __attribute__((section("molt_transformers"), used, aligned(8))) static const struct molt_transformer_record \
        molt_transformer_record_##function = {MOLT_TRANSFORMER_MAGIC, kind, text, function}
#define MOLT_TYPE_TRANSFORMER(type_name, function) MOLT_TRANSFORMER_RECORD(1, type_name, function)
#define MOLT_VARIABLE_TRANSFORMER(variable_name, function) MOLT_TRANSFORMER_RECORD(2, variable_name, function)
/* A type transformer that may run on several threads at once: the update then converts the
 * objects of that type on every idle core (the program's threads are parked). Only for a
 * function that keeps no state of its own (no static counters, no unsynchronised globals); it
 * may call malloc and read the old objects and the new ones it is given. */
#define MOLT_TYPE_TRANSFORMER_PARALLEL(type_name, function) MOLT_TRANSFORMER_RECORD(6, type_name, function)

/*
 * Annotations, in the new version: what the types cannot say. Names as `molt schema` prints them
 * (the new version's); like transformers, they are read from the file by `molt check`.
 *
 *     MOLT_POINTS_TO("struct list_node", "data", "struct item");
 *         the void * member `data` points to a struct item (or is NULL): the update follows it,
 *         converts the items when their type changed, and redirects the pointer, as if the
 *         member were a struct item *. For a generic container holding one type of object.
 *     MOLT_VARIABLE_POINTS_TO("registry", "struct item");
 *         the same for a void * variable (a global or a static).
 *     MOLT_LENGTH_IN("struct vec", "items", "count");
 *         the pointer member `items` points to `count` elements (an integer member of the same
 *         struct), not to as many as its block holds: the elements past `count` (a capacity
 *         not in use yet, garbage) are not converted but left zero in the new block, which
 *         keeps the old block's capacity.
 *     MOLT_UNION_CASE("struct shape", "u", "kind", SHAPE_CIRCLE, "circle");
 *         in a struct shape whose member `kind` holds SHAPE_CIRCLE (an enumerator of the old
 *         version, or a number), the union member `u` holds its member `circle`: the update
 *         converts that member, as for a struct. One line per case; a union without a case for
 *         an object's discriminant fails the update (naming the value), unless the union's
 *         bytes are all zero (a slot never used, a variant without payload): it stays zero.
 *     MOLT_OPAQUE("struct md5_state");
 *         objects of this type are bytes to copy as they are (the first bytes of the new size;
 *         a bigger new type is zero-filled): no member is matched, no pointer in it followed.
 *         For bytes whose meaning stayed (four words read as sixteen bytes): molt check and the
 *         update warn when a member that kept its name moved, or the type shrank, and refuse a
 *         type that holds a pointer to objects the update converts (they move; the copy would
 *         lead to the old one, freed after the commit).
 */
#define MOLT_POINTS_TO(type_name, member, pointee_type) \
    MOLT_RENAME_RECORD(7, type_name "\0" member "\0" pointee_type, __LINE__)
#define MOLT_VARIABLE_POINTS_TO(variable_name, pointee_type) \
    MOLT_RENAME_RECORD(8, variable_name "\0" pointee_type, __LINE__)
#define MOLT_LENGTH_IN(type_name, pointer_member, length_member) \
    MOLT_RENAME_RECORD(9, type_name "\0" pointer_member "\0" length_member, __LINE__)
#define MOLT_UNION_CASE(type_name, union_member, discriminant_member, value, case_member) \
    MOLT_RENAME_RECORD(10, type_name "\0" union_member "\0" discriminant_member "\0" #value "\0" case_member, __LINE__)
#define MOLT_OPAQUE(type_name) MOLT_RENAME_RECORD(11, type_name, __LINE__)

#else /* MOLT_DISABLE: the same program, without Molt and without cost */

static inline void molt_update_point(const char *name) { (void)name; }
static inline int molt_is_updating(void) { return 0; }
static inline int molt_is_updating_from(const char *name) { (void)name; return 0; }
static inline int molt_wake_fd(void) { return -1; }
static inline int molt_refuse_update(const char *reason) { (void)reason; return 0; }
static inline size_t molt_block_size(const void *pointer) { (void)pointer; return 0; }
static inline size_t molt_update_history(char *buffer, size_t size)
{
    if (buffer && size > 0)
        buffer[0] = '\0';
    return 0;
}
#define MOLT_LOCAL(var) ((void)0)
#define MOLT_TYPE_TRANSFORMER(type_name, function) typedef int molt_unused_##function
#define MOLT_VARIABLE_TRANSFORMER(variable_name, function) typedef int molt_unused_##function
#define MOLT_TYPE_TRANSFORMER_PARALLEL(type_name, function) typedef int molt_unused_##function
#define MOLT_RENAME_VARIABLE(old_name, new_name) struct molt_unused_rename
#define MOLT_RENAME_TYPE(old_name, new_name) struct molt_unused_rename
#define MOLT_RENAME_MEMBER(type_name, old_member, new_member) struct molt_unused_rename
#define MOLT_POINTS_TO(type_name, member, pointee_type) struct molt_unused_rename
#define MOLT_VARIABLE_POINTS_TO(variable_name, pointee_type) struct molt_unused_rename
#define MOLT_LENGTH_IN(type_name, pointer_member, length_member) struct molt_unused_rename
#define MOLT_UNION_CASE(type_name, union_member, discriminant_member, value, case_member) struct molt_unused_rename
#define MOLT_OPAQUE(type_name) struct molt_unused_rename

#endif /* MOLT_DISABLE */

#ifdef __cplusplus
}
#endif

#endif /* MOLT_MOLT_H */
