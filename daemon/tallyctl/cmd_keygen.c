/* cmd_keygen.c — tallyctl keygen: a new emitter credential, as a tokens-file line and NAME:SECRET.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "credential.h"
#include "ctl.h"

static const ctl_opt_t keygen_opts[] = {
    {"ns", 0, CTL_ARG, "NS[,NS...]", "namespaces the emitter may send into, or '*' for all", 1},
    {"json", 0, CTL_FLAG, NULL, "print {\"tokens_line\": ..., \"credential\": ...}", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

/* '*' or namespaces separated by commas, none of them 'system' */
static int
valid_ns_list(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!tally__valid_ns(p, len) || (len == 6 && memcmp(p, "system", 6) == 0))
            return 0;
        p += len;
        if (comma)
            p++;
        if (comma && !*p)
            return 0;
    }
    return p != s;
}

static int
run_keygen(const ctl_args_t *a)
{
    const char *name = a->operands[0], *ns = ctl_opt_str(a, "ns");
    if (!tally__cred_valid_name(name, strlen(name)))
        return ctl_usage_error(a, "bad name '%s' (expected [A-Za-z0-9_.-], 1..%d bytes)", name,
                               TALLY__CRED_MAX_NAME);
    if (!valid_ns_list(ns))
        return ctl_usage_error(a, "--ns: '*' or namespaces [a-z0-9-]{1,64} separated by commas, "
                                  "not 'system'");
    char cred[TALLY__CRED_MAX_NAME + 2 + TALLY__CRED_SECRET_B64 + 1];
    uint8_t key[TALLY__CRED_KEY_LEN];
    char hex[2 * TALLY__CRED_KEY_LEN + 1];
    char line[TALLY__CRED_MAX_NAME + 512 + sizeof hex];
    int status = CTL_EXIT_OK;
    if (tally__cred_generate(name, cred, sizeof cred, key) != 0)
        return ctl_fail(a, "cannot make a credential");
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    snprintf(line, sizeof line, "%s emitter %s mac:%s", name, ns, hex);
    if (ctl_opt_flag(a, "json"))
        status =
            ctl_json_print(a, json_pack("{s:s,s:s}", "tokens_line", line, "credential", cred), 0);
    else
        printf("# add to the tokens file (auth.tokens_file), then: systemctl reload tallyd\n"
               "%s\n"
               "# the emitter's credential (keep it secret: a file of mode 0600, or TALLY_KEY)\n"
               "%s\n",
               line, cred);
    sodium_memzero(cred, sizeof cred);
    sodium_memzero(key, sizeof key);
    return status;
}

const ctl_cmd_t ctl_cmd_keygen = {
    .name = "keygen",
    .summary = "make an emitter credential: a tokens-file line and NAME:SECRET",
    .synopsis = "keygen NAME --ns NS[,NS...] [--json]",
    .description = "  Make a new emitter credential called NAME ([A-Za-z0-9_.-]{1,64}) that may\n"
                   "  send events into the namespaces NS (or '*' for all; never 'system').\n"
                   "  Prints the line to add to tallyd's tokens file (it holds only a key derived\n"
                   "  from the secret) and the credential NAME:SECRET for the emitter: give it to\n"
                   "  the emitter in a file of mode 0600 (tallyctl emit --key-file, libtally's\n"
                   "  tally_client_options_t.credential) or as TALLY_KEY, and as the HTTP door's\n"
                   "  'Authorization: Bearer NAME:SECRET'. tallyd takes the new line on SIGHUP.\n",
    .opts = keygen_opts,
    .min_operands = 1,
    .max_operands = 1,
    .run = run_keygen,
};
