/* fuzz_http.c — libFuzzer harness: raw bytes → http-parser → router (auth, access, limits) → handlers → response, no sockets. */
#include <stdint.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_http_feed(fuzz_ctx(), data, size);
    return 0;
}
