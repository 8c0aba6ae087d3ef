/* Kernel command line: space-separated key=value, all optional.
 * Tokens without '=' (QEMU puts the kernel path first) are ignored. */
#include "kernel.h"

char cfg_warnings[MAX_WARNINGS][96];
u32 cfg_nwarnings;

void cfg_warn(const char *a, const char *b, const char *c)
{
    if (cfg_nwarnings >= MAX_WARNINGS)
        return;
    char *w = cfg_warnings[cfg_nwarnings++];
    u32 n = 0;
    const char *parts[3] = { a, b, c };
    for (int i = 0; i < 3; i++)
        for (const char *s = parts[i]; s && *s && n < 95; s++)
            w[n++] = *s;
    w[n] = 0;
}

const char *verify_name(enum verify_mode m)
{
    switch (m) {
    case VERIFY_FULL: return "full";
    case VERIFY_OFF:  return "off";
    default:          return "sample";
    }
}

/* Decimal u32; returns 0 on success, -1 if empty, not a number or > max. */
static int parse_u32(const char *s, u32 max, u32 *out)
{
    u64 v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (u32)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = (u32)v;
    return 0;
}

static void apply(struct config *cfg, const char *key, const char *val)
{
    u32 v;
    if (streq(key, "ws")) {
        if (parse_u32(val, 4095, &v) == 0) { cfg->ws_mib = v; return; }
    } else if (streq(key, "rate")) {
        if (parse_u32(val, 40000, &v) == 0) { cfg->rate_pages = v * 256; return; }
    } else if (streq(key, "pages")) {
        if (parse_u32(val, 10240000, &v) == 0) { cfg->rate_pages = v; return; }
    } else if (streq(key, "hb")) {
        if (parse_u32(val, 3600000, &v) == 0 && v >= 10) { cfg->hb_ms = v; return; }
    } else if (streq(key, "full_every")) {
        if (parse_u32(val, 1000000, &v) == 0) { cfg->full_every = v; return; }
    } else if (streq(key, "corrupt_at")) {
        if (parse_u32(val, 0xFFFFFFFFu, &v) == 0) { cfg->corrupt_at = v; return; }
    } else if (streq(key, "disk")) {
        if (parse_u32(val, 1000000, &v) == 0) { cfg->disk_rate = v; return; }
    } else if (streq(key, "disk_start")) {
        if (parse_u32(val, 0x0FFFFFFFu, &v) == 0) { cfg->disk_start = v; return; }
    } else if (streq(key, "disk_sectors")) {
        if (parse_u32(val, 0x10000000u, &v) == 0 && v >= 1) { cfg->disk_sectors = v; return; }
    } else if (streq(key, "verify")) {
        if (streq(val, "full"))   { cfg->verify = VERIFY_FULL;   return; }
        if (streq(val, "sample")) { cfg->verify = VERIFY_SAMPLE; return; }
        if (streq(val, "off"))    { cfg->verify = VERIFY_OFF;    return; }
    } else {
        cfg_warn("unknown-key key=", key, NULL);
        return;
    }
    cfg_warn("bad-value key=", key, NULL);
}

void cmdline_parse(const char *cmdline, struct config *cfg)
{
    cfg->ws_mib = 16;
    cfg->rate_pages = 0;
    cfg->hb_ms = 500;
    cfg->verify = VERIFY_SAMPLE;
    cfg->full_every = 10;
    cfg->corrupt_at = 0;
    cfg->disk_rate = 0;
    cfg->disk_start = 2048;
    cfg->disk_sectors = 65536;
    if (!cmdline)
        return;

    const char *p = cmdline;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        char key[32], val[32];
        u32 kn = 0, vn = 0;
        int has_eq = 0, too_long = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '=') {
            if (kn < sizeof(key) - 1) key[kn++] = *p; else too_long = 1;
            p++;
        }
        if (*p == '=') {
            has_eq = 1;
            p++;
            while (*p && *p != ' ' && *p != '\t') {
                if (vn < sizeof(val) - 1) val[vn++] = *p; else too_long = 1;
                p++;
            }
        }
        key[kn] = 0;
        val[vn] = 0;
        if (!has_eq)
            continue;
        if (too_long) {
            cfg_warn("bad-value key=", key, NULL);
            continue;
        }
        apply(cfg, key, val);
    }
}
