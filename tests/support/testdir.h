/* testdir.h — temporary directories and files for the Criterion unit tests (asserting helpers). */
#ifndef TALLY_TESTDIR_H
#define TALLY_TESTDIR_H

#include <stddef.h>

/** @brief Create /tmp/tally-test-WHAT-XXXXXX into buf (asserts). */
void testdir_make(char *buf, size_t cap, const char *what);

/** @brief Remove dir and everything below it (best effort). */
void testdir_remove(const char *dir);

/** @brief Write text to path, replacing it (asserts). */
void testdir_write(const char *path, const char *text);

#endif
