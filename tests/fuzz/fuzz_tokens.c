/* fuzz_tokens.c — libFuzzer harness: the API tokens-file parser, then authentication against the set. */
#include <stdint.h>
#include <stdlib.h>

#include "auth.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file("tokens", data, size);
    char err[512];
    tally__tokens_t *t = NULL;
    if (tally__tokens_load(path, &t, err, sizeof err) == 0) {
        size_t n = tally__tokens_count(t);
        for (size_t i = 0; i < n; i++) {
            const tally__token_t *tok = tally__tokens_get(t, i);
            if (!tok || tally__tokens_find(t, tally__token_name(tok)) != tok)
                abort(); /* names are unique: find gives back the same token */
            tally__token_allows(tok, "demo", TALLY_ACCESS_READ);
            tally__token_allows(tok, "system", TALLY_ACCESS_ADMIN);
        }
        tally__tokens_authenticate(t, "APIToken dev-admin-token");
        tally__tokens_authenticate(t, "APIToken ");
        tally__tokens_authenticate(t, "Bearer x");
        tally__tokens_destroy(t);
    }
    return 0;
}
