/* test_libtally_needed.c — the public libtally.so stays a client library: its ELF
 * dynamic section names only nanomsg, msgpack-c, libsodium and libc, and it exports
 * only the documented tally_* API (no engine symbol, no tally__ internal). Read
 * from the ELF file itself, so the test needs no binutils. */
#include <criterion/criterion.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the client may need, by soname prefix: libc includes its dynamic
 * loader (ld-linux, named once thread-local storage is used). Anything else
 * is an engine dependency leaking into emitters (LMDB, libuv, jansson,
 * libharu...). */
static const char *const allowed[] = {"libnanomsg.so", "libmsgpackc.so", "libmsgpack-c.so",
                                      "libsodium.so",  "libc.so",        "ld-linux"};

typedef struct {
    const unsigned char *base;
    size_t size;
    const Elf64_Shdr *sh;
    unsigned nsh;
} elf_t;

static void
elf_open(elf_t *e, const char *path)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s: cannot open (build tally_shared first)", path);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    e->size = (size_t)st.st_size;
    e->base = mmap(NULL, e->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    cr_assert(e->base != MAP_FAILED);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->base;
    cr_assert(e->size >= sizeof *eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                  eh->e_ident[EI_CLASS] == ELFCLASS64,
              "%s is not a 64-bit ELF file", path);
    cr_assert(eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) <= e->size);
    e->sh = (const Elf64_Shdr *)(e->base + eh->e_shoff);
    e->nsh = eh->e_shnum;
}

static const Elf64_Shdr *
elf_section(const elf_t *e, uint32_t type)
{
    for (unsigned i = 0; i < e->nsh; i++)
        if (e->sh[i].sh_type == type)
            return &e->sh[i];
    return NULL;
}

static const char *
lib_path(void)
{
    static char path[4096];
    const char *bin = getenv("TALLY_BIN_DIR");
    cr_assert(bin, "TALLY_BIN_DIR is not set (run through ctest)");
    snprintf(path, sizeof path, "%s/../lib/libtally.so", bin);
    return path;
}

Test(libtally, needs_only_client_dependencies)
{
    elf_t e;
    elf_open(&e, lib_path());
    const Elf64_Shdr *dyn = elf_section(&e, SHT_DYNAMIC);
    cr_assert(dyn && dyn->sh_link < e.nsh, "no dynamic section");
    const char *str = (const char *)e.base + e.sh[dyn->sh_link].sh_offset;
    const Elf64_Dyn *d = (const Elf64_Dyn *)(e.base + dyn->sh_offset);
    int needed = 0, sodium = 0, nanomsg = 0;
    for (size_t i = 0; i < dyn->sh_size / sizeof *d && d[i].d_tag != DT_NULL; i++) {
        if (d[i].d_tag != DT_NEEDED)
            continue;
        const char *name = str + d[i].d_un.d_val;
        int ok = 0;
        for (size_t j = 0; j < sizeof allowed / sizeof allowed[0]; j++)
            ok |= strncmp(name, allowed[j], strlen(allowed[j])) == 0;
#ifdef TALLY_SANITIZED
        /* a sanitizer build links its runtimes into every object */
        ok |= strncmp(name, "libasan.so", 10) == 0 || strncmp(name, "libubsan.so", 11) == 0 ||
              strncmp(name, "libtsan.so", 10) == 0;
#endif
        cr_expect(ok, "libtally.so needs %s, which is not a client dependency", name);
        sodium |= strncmp(name, "libsodium.so", 12) == 0;
        nanomsg |= strncmp(name, "libnanomsg.so", 13) == 0;
        needed++;
    }
    /* The MAC and the transport are the client's: their absence would mean the
     * parse above read the wrong table. */
    cr_expect(needed >= 2 && sodium && nanomsg, "NEEDED list not found or incomplete (%d)",
              needed);
    munmap((void *)e.base, e.size);
}

Test(libtally, exports_only_the_public_api)
{
    elf_t e;
    elf_open(&e, lib_path());
    const Elf64_Shdr *sym = elf_section(&e, SHT_DYNSYM);
    cr_assert(sym && sym->sh_link < e.nsh, "no dynamic symbol table");
    const char *str = (const char *)e.base + e.sh[sym->sh_link].sh_offset;
    const Elf64_Sym *s = (const Elf64_Sym *)(e.base + sym->sh_offset);
    int exported = 0, has_emit = 0;
    for (size_t i = 0; i < sym->sh_size / sizeof *s; i++) {
        if (s[i].st_shndx == SHN_UNDEF || ELF64_ST_BIND(s[i].st_info) == STB_LOCAL)
            continue;
        const char *name = str + s[i].st_name;
        if (!*name)
            continue;
        cr_expect(strncmp(name, "tally_", 6) == 0 && strncmp(name, "tally__", 7) != 0,
                  "libtally.so exports %s, which is not public API", name);
        has_emit |= strcmp(name, "tally_emit") == 0;
        exported++;
    }
    cr_expect(exported > 0 && has_emit, "tally_emit is not exported (%d symbols)", exported);
    munmap((void *)e.base, e.size);
}
