/* error.c — one table of tally error codes and their descriptions. */
#include <string.h>

#include "tally/tally.h"

const char *
tally_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define TALLY__ERR_CASE(name, code, text)                                                          \
    case code:                                                                                     \
        return text;
        TALLY_ERRNO_MAP(TALLY__ERR_CASE)
#undef TALLY__ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *
tally_version(void)
{
#ifdef TALLY_VERSION
    return TALLY_VERSION;
#else
    return "unknown";
#endif
}
