/* Ferry test guest: fills a working set with a checkable pattern, rewrites
 * it at a configured rate, verifies it, and prints a heartbeat line on COM1
 * at a fixed interval. See guest/README.md for the serial protocol. */
#include "kernel.h"

#define MB_BOOT_MAGIC   0x2BADB002u
#define MBI_MEM         (1u << 0)
#define MBI_CMDLINE     (1u << 2)
#define MBI_MMAP        (1u << 6)

struct mb_info {
    u32 flags;
    u32 mem_lower, mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
} __attribute__((packed));

struct mb_mmap {
    u32 size;
    u64 addr;
    u64 len;
    u32 type;
} __attribute__((packed));

extern char _end[];

#define WS_MIN_BASE     (2u * MIB)
#define WORD_STEP       0x9E3779B9u
#define MAX_CORRUPT_LINES 4     /* per verification sweep */
#define FULL_CHUNK_PAGES   16   /* pages per background verification step */
#define SAMPLE_CHUNK_PAGES 1024
#define REWRITE_BATCH      256  /* pages (1 MiB) per rewrite pass */
#define SHARED_BATCH       16   /* rewrite pass between sweep steps when the sweep lags */

/* ---- configuration and layout (written once at boot) ------------------ */
static char cmdline_buf[512];
static struct config cfg;
static u32 *gen;                /* generation of each page */
static u32 *ws;                 /* working set, npages * 1024 words */
static u32 npages;
static u64 hb_ticks;
static u64 credit_cap;

/* ---- running state: all in RAM, so it migrates with the guest ---------- */
static volatile u32 hb_counter; /* last heartbeat number printed (0 = none yet) */
static u64 rewrites;            /* pages rewritten since the initial fill */
static u32 gen_max;             /* highest generation of any page */
static u32 rw_cursor;           /* next page to rewrite (round robin) */
static u64 rw_credit;           /* pending rewrites, in page * clock-tick units */
static u64 rw_last;             /* guest clock at the previous rewrite pass */
static u64 next_hb;             /* guest clock when the next heartbeat is due */
static u32 corrupt_sticky;      /* set forever once any corruption was seen */

static u32 sw_pos;              /* verification sweep: next page */
static u32 sw_active;           /* sweep in progress */
static u32 sw_full;             /* current sweep checks every word */
static u32 sw_reports;          /* CORRUPT lines printed by this sweep */

static inline u32 mix32(u32 h)
{
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    return h;
}

/* Word w of page p at generation g is page_seed(p, g) + w * WORD_STEP. */
static inline u32 page_seed(u32 p, u32 g)
{
    return mix32(p * 0x9E3779B1u + mix32(g + 0x6A09E667u));
}

static inline u32 *page_ptr(u32 p)
{
    return ws + p * PAGE_WORDS;
}

static void write_page(u32 p, u32 g)
{
    u32 *w = page_ptr(p);
    u32 v = page_seed(p, g);
    for (u32 i = 0; i < PAGE_WORDS; i += 4) {
        w[i] = v;
        w[i + 1] = v + WORD_STEP;
        w[i + 2] = v + 2 * WORD_STEP;
        w[i + 3] = v + 3 * WORD_STEP;
        v += 4 * WORD_STEP;
    }
}

static void report_corrupt(u32 p, u32 w, u32 want, u32 got)
{
    corrupt_sticky = 1;
    if (sw_reports++ >= MAX_CORRUPT_LINES)
        return;
    struct line l;
    ln_start(&l, "CORRUPT");
    ln_kv_u64(&l, "page", p);
    ln_kv_u64(&l, "word", w);
    ln_kv_hex(&l, "want", want);
    ln_kv_hex(&l, "got", got);
    ln_emit(&l);
}

static void check_page_full(u32 p)
{
    const u32 *w = page_ptr(p);
    u32 v = page_seed(p, gen[p]);
    for (u32 i = 0; i < PAGE_WORDS; i++, v += WORD_STEP) {
        if (w[i] != v) {
            report_corrupt(p, i, v, w[i]);
            return;             /* one line per page is enough */
        }
    }
}

static void check_page_sample(u32 p)
{
    const u32 *w = page_ptr(p);
    u32 v = page_seed(p, gen[p]);
    if (w[0] != v)
        report_corrupt(p, 0, v, w[0]);
    else if (w[PAGE_WORDS - 1] != v + (PAGE_WORDS - 1) * WORD_STEP)
        report_corrupt(p, PAGE_WORDS - 1, v + (PAGE_WORDS - 1) * WORD_STEP, w[PAGE_WORDS - 1]);
}

/* Is the sweep reported by heartbeat number n a full one? */
static u32 sweep_is_full(u32 n)
{
    if (cfg.verify == VERIFY_FULL)
        return 1;
    return cfg.full_every != 0 && n % cfg.full_every == 0;
}

static void sweep_start(u32 full)
{
    sw_pos = 0;
    sw_full = full;
    sw_reports = 0;
    sw_active = cfg.verify != VERIFY_OFF;
}

static void sweep_step(void)
{
    u32 end = sw_pos + (sw_full ? FULL_CHUNK_PAGES : SAMPLE_CHUNK_PAGES);
    if (end > npages)
        end = npages;
    for (u32 p = sw_pos; p < end; p++) {
        if (sw_full)
            check_page_full(p);
        else
            check_page_sample(p);
    }
    sw_pos = end;
    if (sw_pos >= npages)
        sw_active = 0;
}

/* Rewrite what the elapsed time says is due, at most `max` pages per call
 * (the rest stays as credit). The main loop calls this at least once per
 * millisecond, so rewrites come in small, evenly spaced batches. Returns
 * the number of pages rewritten. */
static u32 rewrite_batch(u64 now, u32 max)
{
    u64 dt = now - rw_last;
    rw_last = now;
    if (!cfg.rate_pages || !npages)
        return 0;
    rw_credit += dt * cfg.rate_pages;
    if (rw_credit > credit_cap)         /* never owe more than 100 ms of work */
        rw_credit = credit_cap;
    u64 due = rw_credit / clock_hz;
    u32 n = due > max ? max : (u32)due;
    rw_credit -= (u64)n * clock_hz;
    for (u32 i = 0; i < n; i++) {
        u32 p = rw_cursor;
        u32 g = gen[p] + 1;
        gen[p] = g;
        write_page(p, g);
        if (g > gen_max)
            gen_max = g;
        rewrites++;
        rw_cursor = p + 1 == npages ? 0 : p + 1;
    }
    return n;
}

/* The sweep reported by the next heartbeat should be done by ~80% of the
 * interval. While it lags that schedule, sweep steps alternate with small
 * rewrite passes (SHARED_BATCH pages), so the heartbeat stays on time if at
 * all possible, an overloaded guest rewrites less than asked, and neither
 * side starves. */
static int sweep_behind(u64 now)
{
    u64 start = next_hb - hb_ticks;
    u64 elapsed = now > start ? now - start : 0;
    u64 frac1024 = elapsed * 1024 / hb_ticks;
    u64 target = (u64)npages * frac1024 * 5 / 4096;
    return sw_pos < target;
}

static void heartbeat(void)
{
    /* Finish the sweep this heartbeat reports on (normally already done). */
    while (sw_active) {
        sweep_step();
        rewrite_batch(timer_now(), SHARED_BATCH);
    }

    u64 now = timer_now();
    next_hb += hb_ticks;
    if (next_hb <= now)                 /* fell behind: skip, never burst */
        next_hb = now + hb_ticks;

    /* The new count is stored in RAM before anything is printed. */
    hb_counter = hb_counter + 1;
    barrier();
    u32 n = hb_counter;

    struct line l;
    ln_start(&l, "HB ");
    ln_u64(&l, n);
    ln_kv_u64(&l, "gen", gen_max);
    ln_kv_u64(&l, "rewrites", rewrites);
    ln_kv_str(&l, "check", cfg.verify == VERIFY_OFF ? "SKIP" : corrupt_sticky ? "CORRUPT" : "OK");
    ln_kv_u64(&l, "full", cfg.verify != VERIFY_OFF && sw_full);
    if (disk_enabled())
        ln_kv_u64(&l, "disk", disk_written);
    ln_emit(&l);

    if (cfg.corrupt_at && n == cfg.corrupt_at && npages) {
        /* Deliberate damage for testing the detection path: flip one bit
         * of the first word of the page furthest from the rewrite cursor,
         * behind the pattern's back. */
        u32 victim = (u32)(((u64)rw_cursor + npages / 2) % npages);
        page_ptr(victim)[0] ^= 1u;
    }

    sweep_start(sweep_is_full(n + 1));
}

static u32 read_memory_end(const struct mb_info *mbi, u32 base, u32 *mem_upper_kib)
{
    u64 end = 0;
    *mem_upper_kib = 0;
    if (mbi && (mbi->flags & MBI_MEM)) {
        *mem_upper_kib = mbi->mem_upper;
        end = 0x100000ull + (u64)mbi->mem_upper * 1024;
    }
    if (mbi && (mbi->flags & MBI_MMAP)) {
        /* Prefer the BIOS map: it knows what the firmware reserved at the top. */
        u32 off = 0;
        while (off + 4 <= mbi->mmap_length) {
            const struct mb_mmap *e = (const struct mb_mmap *)(uptr)(mbi->mmap_addr + off);
            if (e->type == 1 && e->addr <= base && base < e->addr + e->len) {
                u64 e_end = e->addr + e->len;
                if (!end || e_end < end)
                    end = e_end;
                break;
            }
            off += e->size + 4;
        }
    }
    if (end > 0xFFFFF000ull)
        end = 0xFFFFF000ull;
    return (u32)end;
}

void kmain(u32 magic, struct mb_info *mbi)
{
    serial_init();

    if (magic != MB_BOOT_MAGIC) {
        cfg_warn("no-multiboot-info", NULL, NULL);
        mbi = NULL;
    }
    if (mbi && (mbi->flags & MBI_CMDLINE) && mbi->cmdline) {
        const char *s = (const char *)(uptr)mbi->cmdline;
        u32 i = 0;
        while (s[i] && i < sizeof(cmdline_buf) - 1) {
            cmdline_buf[i] = s[i];
            i++;
        }
        cmdline_buf[i] = 0;
    }
    cmdline_parse(cmdline_buf, &cfg);

    /* Layout: [region_start: generation table][working set] ... mem_end */
    u32 region = (u32)(uptr)_end;
    if (region < WS_MIN_BASE)
        region = WS_MIN_BASE;
    region = (region + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    u32 mem_upper_kib;
    u32 mem_end = read_memory_end(mbi, region, &mem_upper_kib);
    u32 max_pages = 0;
    if (mem_end > region + 2 * PAGE_SIZE)
        max_pages = (mem_end - region - PAGE_SIZE) / (PAGE_SIZE + 4);
    u32 want_pages = cfg.ws_mib * 256;
    if (want_pages > max_pages) {
        u32 mib = max_pages / 256;
        struct line l;
        ln_start(&l, "ws-clamped");
        ln_kv_u64(&l, "requested_mib", cfg.ws_mib);
        ln_kv_u64(&l, "ws_mib", mib);
        l.buf[l.len] = 0;
        cfg_warn(l.buf, NULL, NULL);
        cfg.ws_mib = mib;
        want_pages = mib * 256;
    }
    npages = want_pages;
    gen = (u32 *)(uptr)region;
    u32 gen_bytes = (npages * 4 + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    ws = (u32 *)(uptr)(region + gen_bytes);

    struct line l;
    /* Leading newline: firmware output (SeaBIOS "Booting from ROM..") does
     * not end its line, and the boot line must start one. */
    ln_start(&l, "\nFERRY-GUEST boot");
    ln_kv_u64(&l, "ws_mib", cfg.ws_mib);
    ln_kv_u64(&l, "rate_pages", cfg.rate_pages);
    ln_kv_u64(&l, "hb_ms", cfg.hb_ms);
    ln_kv_str(&l, "verify", verify_name(cfg.verify));
    ln_emit(&l);

    acpi_init();
    if (timer_init(acpi_pmtimer_port()) != 0)
        cfg_warn("tsc-calibration-failed", NULL, NULL);

    /* Disk writer: look for the IDE disk now, so that a clamped range is
     * reported with the other warnings. */
    u32 disk_cap = 0, disk_span = 0;
    if (cfg.disk_rate) {
        disk_cap = disk_init(cfg.disk_rate, cfg.disk_start, cfg.disk_sectors, &disk_span);
        if (disk_cap && disk_span != cfg.disk_sectors) {
            ln_start(&l, "disk-clamped");
            ln_kv_u64(&l, "disk_start", cfg.disk_start);
            ln_kv_u64(&l, "requested_sectors", cfg.disk_sectors);
            ln_kv_u64(&l, "disk_sectors", disk_span);
            ln_kv_u64(&l, "capacity", disk_cap);
            l.buf[l.len] = 0;
            cfg_warn(l.buf, NULL, NULL);
        }
    }

    for (u32 i = 0; i < cfg_nwarnings; i++) {
        ln_start(&l, "FERRY-GUEST warn ");
        ln_str(&l, cfg_warnings[i]);
        ln_emit(&l);
    }

    static const char *const acpi_names[] = { "none", "piix4", "ich9" };
    ln_start(&l, "FERRY-GUEST info");
    ln_kv_str(&l, "clock", timer_source());
    ln_kv_u64(&l, "clock_hz", clock_hz);
    ln_kv_u64(&l, "mem_upper_kib", mem_upper_kib);
    ln_kv_hex(&l, "mem_end", mem_end);
    ln_kv_hex(&l, "ws_base", (u32)(uptr)ws);
    ln_kv_u64(&l, "full_every", cfg.full_every);
    ln_kv_str(&l, "acpi", acpi_names[acpi_kind]);
    ln_kv_hex(&l, "pmbase", acpi_pmbase);
    ln_emit(&l);
    if (acpi_kind == ACPI_NONE)
        say("FERRY-GUEST no-acpi");
    if (cfg.disk_rate) {
        if (disk_span) {
            ln_start(&l, "FERRY-GUEST disk ready");
            ln_kv_u64(&l, "sectors", disk_cap);
            ln_kv_u64(&l, "rate", cfg.disk_rate);
            ln_kv_u64(&l, "disk_start", cfg.disk_start);
            ln_kv_u64(&l, "disk_sectors", disk_span);
            ln_emit(&l);
        } else {
            say("FERRY-GUEST disk none");
        }
    }

    /* Initial fill: every page at generation 0. */
    for (u32 p = 0; p < npages; p++) {
        gen[p] = 0;
        write_page(p, 0);
    }

    hb_ticks = clock_hz * cfg.hb_ms / 1000;
    credit_cap = clock_hz * cfg.rate_pages / 10;
    cpu_init_interrupts();
    rw_last = timer_now();
    disk_begin(rw_last);
    next_hb = rw_last + hb_ticks;
    sweep_start(sweep_is_full(1));

    ln_start(&l, "FERRY-GUEST ready");
    ln_kv_u64(&l, "pages", npages);
    ln_emit(&l);

    u32 last_irqs = timer_irqs;
    for (;;) {
        /* Power button: polled once per PIT tick (1 ms). */
        if (timer_irqs != last_irqs) {
            last_irqs = timer_irqs;
            if (acpi_power_button_pressed()) {
                say("FERRY-GUEST poweroff");
                acpi_poweroff();
            }
        }
        u64 now = timer_now();
        int disk_more = disk_poll(now);
        if (now >= next_hb)
            heartbeat();
        else if (sw_active && sweep_behind(now)) {
            sweep_step();
            rewrite_batch(timer_now(), SHARED_BATCH);
        } else if (rewrite_batch(now, REWRITE_BATCH))
            ;
        else if (sw_active)
            sweep_step();
        else if (!disk_more)
            idle_wait();    /* a disk write completing wakes it too (IRQ14) */
    }
}
