/* main.c — tallyctl's command table and dispatch: `tallyctl COMMAND [OPTIONS]`. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "http.h"

/* Every command, in the order `tallyctl --help` lists them. A new command
 * is a ctl_cmd_t in its group's file (or a new cmd_*.c) and one line here. */
static const ctl_cmd_t *const commands[] = {
    &ctl_cmd_emit,  &ctl_cmd_keygen, &ctl_cmd_dump,  &ctl_cmd_backup, &ctl_cmd_restore,
    &ctl_cmd_compact, &ctl_cmd_check, &ctl_cmd_usage, &ctl_cmd_stats,  &ctl_cmd_watch,
    &ctl_cmd_plan,  &ctl_cmd_invoice,
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void
usage_main(FILE *fp)
{
    fprintf(fp, "usage: tallyctl COMMAND [OPTIONS]\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(fp, "  %-8s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(fp, "  %-8s %s\n", "version", "print the version");
    fprintf(fp,
            "Run 'tallyctl COMMAND --help' for a command's options.\n"
            "HTTP commands take the API token from --token-file FILE, TALLY_TOKEN or the\n"
            "configuration's [tallyctl] token_file, and the URL from --url or the\n"
            "configuration's [http] listen. The configuration: --config FILE, else\n"
            "%s if it exists, else built-in defaults;\n"
            "TALLY_SECTION_KEY environment overrides apply to it as in tallyd.\n",
            TALLYCTL_DEFAULT_CONFIG);
}

static int
run(const ctl_cmd_t *cmd, int argc, char **argv)
{
    ctl_args_t args;
    int rc = ctl_opt_parse(cmd, argc, argv, &args);
    if (rc == 0)
        rc = cmd->run(&args);
    else if (rc == 1)
        rc = CTL_EXIT_OK; /* --help */
    else if (rc < 0)
        rc = CTL_EXIT_FAIL; /* out of memory, reported */
    ctl_args_fini(&args);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("tallyctl %s\n", TALLY_VERSION);
        return CTL_EXIT_OK;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        /* `tallyctl help CMD` is `tallyctl CMD --help` */
        if (argc > 2 && strcmp(name, "help") == 0) {
            for (size_t i = 0; i < NCOMMANDS; i++) {
                if (strcmp(commands[i]->name, argv[2]) == 0) {
                    ctl_opt_help(commands[i], stdout);
                    return CTL_EXIT_OK;
                }
            }
            fprintf(stderr, "tallyctl: unknown command '%s'\n", argv[2]);
            usage_main(stderr);
            return CTL_EXIT_USAGE;
        }
        usage_main(stdout);
        return CTL_EXIT_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            int rc = run(commands[i], argc - 1, argv + 1);
            ctl_http_cleanup();
            fflush(stdout);
            return rc;
        }
    }
    fprintf(stderr, "tallyctl: unknown command '%s'\n", name);
    usage_main(stderr);
    return CTL_EXIT_USAGE;
}
