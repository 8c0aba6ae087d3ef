/* Optional disk writer: legacy ATA PIO, primary IDE channel, master drive.
 *
 *   command block 0x1F0..0x1F7, control block 0x3F6 (alt status / device control)
 *   LBA28 WRITE SECTORS (0x30), one sector per command, polled, plus IRQ14
 *   only to wake the main loop out of HLT when a write completes.
 *
 * The writer is a small state machine driven from the main loop
 * (disk_poll), so a write in flight never blocks heartbeats or rewriting:
 * the loop keeps going and looks at the status register again next time.
 * Every wait has a timeout on the guest clock. A drive that stays busy is
 * reported (`disk timeout`, again every timeout period) and waited for,
 * never reset: QEMU's IDE reset cancels the pending request synchronously,
 * which freezes the whole QEMU process (QMP included) until the host I/O
 * finishes. Only a drive that is out of step (DRQ with nothing to
 * transfer, or ignoring a command) is soft-reset; nothing is pending then.
 *
 * With werror=stop QEMU pauses the whole VM on a failed write and retries
 * the request on `cont`; the guest clock stops meanwhile (ACPI PM timer),
 * so from here that looks like a write that took a little longer. With
 * werror=report the drive answers with ERR, which is reported (rate
 * limited) and skipped. All state lives in guest RAM, so it migrates. */
#include "kernel.h"

#define ATA_DATA     0x1F0
#define ATA_ERROR    0x1F1
#define ATA_COUNT    0x1F2
#define ATA_LBA0     0x1F3
#define ATA_LBA1     0x1F4
#define ATA_LBA2     0x1F5
#define ATA_DRIVE    0x1F6
#define ATA_STATUS   0x1F7      /* read: status (acknowledges the IRQ) */
#define ATA_COMMAND  0x1F7      /* write: command */
#define ATA_ALTSTAT  0x3F6      /* read: status without side effects */
#define ATA_DEVCTL   0x3F6      /* write: device control */

#define ST_ERR  0x01
#define ST_DRQ  0x08
#define ST_DF   0x20
#define ST_DRDY 0x40
#define ST_BSY  0x80

#define CTL_NIEN 0x02           /* no interrupts from the drive */
#define CTL_SRST 0x04           /* software reset */

#define CMD_WRITE_SECTORS 0x30
#define CMD_IDENTIFY      0xEC

#define LBA28_LIMIT       0x10000000u
#define TIMEOUT_MS        10000u    /* any single wait (guest clock) */
#define IDENTIFY_TIMEOUT_MS 1000u
#define REPORT_GAP_MS     1000u     /* at most one error/timeout line per second */

enum dstate { D_OFF = 0, D_IDLE, D_DRQ, D_BUSY, D_RESET };

/* ---- set once at boot ----------------------------------------------- */
static u32 d_rate;              /* sectors per second */
static u32 d_start;             /* first LBA of the written range */
static u32 d_span;              /* sectors in the range */
static u64 d_cap;               /* credit cap: 100 ms of writes, at least one */
static u64 d_timeout;           /* TIMEOUT_MS in clock ticks */
static u64 d_report_gap;

/* ---- running state -------------------------------------------------- */
static enum dstate d_state;
static u64 d_since;             /* guest clock when the current wait began */
static u64 d_credit;            /* sector * clock-tick units */
static u64 d_last;
static u32 d_cursor;            /* next sector, 0..d_span-1 */
static u32 d_gen;               /* generation of the current pass, from 1 */
static u32 d_lba;               /* LBA of the command in flight */
static u64 d_last_report;
static u32 d_reported;          /* any error/timeout line printed yet */

u64 disk_written;               /* sectors written successfully */
u32 disk_errors;                /* writes that failed (ERR/DF) or were given up on */
u32 disk_capacity;              /* LBA28 sectors from IDENTIFY */

static u16 sector_buf[256];

static void ata_delay(void)
{
    /* ~400 ns after selecting a drive or issuing a command: four reads of
     * the alternate status register, as the ATA spec suggests. */
    for (int i = 0; i < 4; i++)
        (void)inb(ATA_ALTSTAT);
}

static int enabled(void)
{
    return d_state != D_OFF;
}

int disk_enabled(void)
{
    return enabled();
}

/* Busy-wait until (status & mask) == want or ERR/DF; returns the last
 * status read, or -1 on timeout. Only used at boot (IDENTIFY). */
static int wait_status(u8 mask, u8 want, u32 ms)
{
    u64 end = timer_now() + clock_hz / 1000 * ms;
    for (;;) {
        u8 st = inb(ATA_ALTSTAT);
        if (st != 0xFF && !(st & ST_BSY) && (st & (ST_ERR | ST_DF)))
            return st;
        if ((st & mask) == want)
            return st;
        if (timer_now() >= end)
            return -1;
        cpu_relax();
    }
}

/* IDENTIFY DEVICE on the primary master. Returns the LBA28 sector count,
 * 0 if there is no ATA disk there. */
static u32 ata_identify(void)
{
    if (inb(ATA_STATUS) == 0xFF)                /* floating bus: no controller */
        return 0;
    outb(ATA_DEVCTL, CTL_NIEN);
    outb(ATA_DRIVE, 0xA0);                      /* master */
    ata_delay();
    if (wait_status(ST_BSY, 0, IDENTIFY_TIMEOUT_MS) < 0)
        return 0;
    outb(ATA_COUNT, 0);
    outb(ATA_LBA0, 0);
    outb(ATA_LBA1, 0);
    outb(ATA_LBA2, 0);
    outb(ATA_COMMAND, CMD_IDENTIFY);
    ata_delay();
    u8 st = inb(ATA_ALTSTAT);
    if (st == 0 || st == 0xFF)                  /* no drive on this position */
        return 0;
    int r = wait_status(ST_BSY, 0, IDENTIFY_TIMEOUT_MS);
    if (r < 0)
        return 0;
    if (inb(ATA_LBA1) != 0 || inb(ATA_LBA2) != 0)   /* ATAPI/SATA signature */
        return 0;
    r = wait_status(ST_BSY | ST_DRQ, ST_DRQ, IDENTIFY_TIMEOUT_MS);
    if (r < 0 || (r & (ST_ERR | ST_DF)))
        return 0;
    u16 id[256];
    u16 *p = id;
    u32 n = 256;
    __asm__ volatile("rep insw" : "+D"(p), "+c"(n) : "d"((u16)ATA_DATA) : "memory");
    (void)inb(ATA_STATUS);
    if (!(id[49] & (1u << 9)))                  /* no LBA support */
        return 0;
    u32 sectors = (u32)id[60] | ((u32)id[61] << 16);
    if (sectors > LBA28_LIMIT)
        sectors = LBA28_LIMIT;
    return sectors;
}

/* Looks for the disk and sets the writer up. Returns the drive's LBA28
 * capacity (0: no ATA disk answered) and stores in *span_out the number of
 * sectors that will be written, `span` clamped to the end of the disk (0
 * when `start` lies beyond it; the writer then stays off). */
u32 disk_init(u32 rate, u32 start, u32 span, u32 *span_out)
{
    d_state = D_OFF;
    *span_out = 0;
    if (!rate)
        return 0;
    disk_capacity = ata_identify();
    if (!disk_capacity || start >= disk_capacity)
        return disk_capacity;
    if (span > disk_capacity - start)
        span = disk_capacity - start;
    *span_out = span;

    d_rate = rate;
    d_start = start;
    d_span = span;
    d_cap = clock_hz * rate / 10;
    if (d_cap < clock_hz)
        d_cap = clock_hz;
    d_timeout = clock_hz / 1000 * TIMEOUT_MS;
    d_report_gap = clock_hz / 1000 * REPORT_GAP_MS;
    d_cursor = 0;
    d_gen = 1;
    d_credit = 0;
    return disk_capacity;
}

/* Starts writing (call once interrupts are set up). */
void disk_begin(u64 now)
{
    if (!d_span || !d_rate)
        return;
    cpu_enable_irq14();
    /* Let the drive interrupt (IRQ14): its completion interrupt wakes the
     * main loop out of HLT. Reading ATA_STATUS acknowledges it. */
    outb(ATA_DEVCTL, 0);
    d_state = D_IDLE;
    d_last = now;
    d_since = now;
}

/* Sector contents: "FERRYDSK", then 63 pairs of little-endian u32
 * (lba, generation). */
static void fill_sector(u32 lba, u32 g)
{
    static const char magic[8] = { 'F', 'E', 'R', 'R', 'Y', 'D', 'S', 'K' };
    u8 *b = (u8 *)sector_buf;
    for (int i = 0; i < 8; i++)
        b[i] = (u8)magic[i];
    u32 *w = (u32 *)(b + 8);
    for (int i = 0; i < 126; i += 2) {
        w[i] = lba;
        w[i + 1] = g;
    }
}

static void advance(void)
{
    if (++d_cursor >= d_span) {
        d_cursor = 0;
        d_gen++;
    }
}

static void report(const char *what, u32 lba, u8 st, u64 now)
{
    if (d_reported && now - d_last_report < d_report_gap)
        return;
    d_reported = 1;
    d_last_report = now;
    struct line l;
    ln_start(&l, "FERRY-GUEST disk ");
    ln_str(&l, what);
    ln_kv_u64(&l, "lba", lba);
    ln_kv_hex(&l, "status", st);
    ln_kv_u64(&l, "errors", disk_errors);
    ln_emit(&l);
}

/* The drive has been busy for another timeout period: say so and keep
 * waiting (see the top of the file for why there is no reset). */
static void still_busy(u64 now, u32 lba)
{
    u8 st = inb(ATA_ALTSTAT);
    report("timeout", lba, st, now);
    d_since = now;
}

/* The drive is out of step (not busy, but not doing what the protocol
 * says either) for a timeout period: report, soft-reset the channel and,
 * if that sector's write was under way, give up on it and go on with the
 * next one. Nothing is pending in QEMU then, so the reset is quick. */
static void desync(u64 now, int in_flight)
{
    u8 st = inb(ATA_ALTSTAT);
    disk_errors++;
    report("timeout", in_flight ? d_lba : d_start + d_cursor, st, now);
    outb(ATA_DEVCTL, CTL_SRST);
    for (int i = 0; i < 20; i++)                /* >= 5 us */
        (void)inb(ATA_ALTSTAT);
    outb(ATA_DEVCTL, 0);
    if (in_flight)
        advance();
    d_state = D_RESET;
    d_since = now;
}

static void issue(u64 now)
{
    d_lba = d_start + d_cursor;
    outb(ATA_DRIVE, (u8)(0xE0 | ((d_lba >> 24) & 0x0F)));   /* LBA, master */
    outb(ATA_COUNT, 1);
    outb(ATA_LBA0, (u8)d_lba);
    outb(ATA_LBA1, (u8)(d_lba >> 8));
    outb(ATA_LBA2, (u8)(d_lba >> 16));
    outb(ATA_COMMAND, CMD_WRITE_SECTORS);
    ata_delay();
    d_credit -= clock_hz;
    d_state = D_DRQ;
    d_since = now;
}

int disk_poll(u64 now)
{
    if (!enabled())
        return 0;
    u64 dt = now - d_last;
    d_last = now;
    d_credit += dt * d_rate;
    if (d_credit > d_cap)                       /* never owe more than 100 ms */
        d_credit = d_cap;

    u8 st;
    switch (d_state) {
    case D_RESET:
        st = inb(ATA_ALTSTAT);
        if (st & ST_BSY) {
            if (now - d_since > d_timeout)
                still_busy(now, d_start + d_cursor);
            return 0;
        }
        (void)inb(ATA_STATUS);
        d_state = D_IDLE;
        __attribute__((fallthrough));
    case D_IDLE:
        if (d_credit < clock_hz)
            return 0;
        st = inb(ATA_ALTSTAT);
        if (st & ST_BSY) {                      /* should not happen: wait */
            if (now - d_since > d_timeout)
                still_busy(now, d_start + d_cursor);
            return 0;
        }
        if (st & ST_DRQ) {                      /* out of step: reset it */
            if (now - d_since > d_timeout)
                desync(now, 0);
            return 0;
        }
        issue(now);
        /* QEMU raises DRQ at once: go on to the data phase. */
        __attribute__((fallthrough));
    case D_DRQ:
        st = inb(ATA_ALTSTAT);
        if (!(st & ST_BSY) && (st & (ST_ERR | ST_DF))) {
            (void)inb(ATA_STATUS);
            disk_errors++;
            report("error", d_lba, st, now);
            advance();
            d_state = D_IDLE;
            d_since = now;
            return 1;
        }
        if (st & ST_BSY) {
            if (now - d_since > d_timeout)
                still_busy(now, d_lba);
            return 0;
        }
        if (!(st & ST_DRQ)) {                   /* command ignored */
            if (now - d_since > d_timeout)
                desync(now, 1);
            return 0;
        }
        fill_sector(d_lba, d_gen);
        {
            u16 *p = sector_buf;
            u32 n = 256;
            __asm__ volatile("rep outsw" : "+S"(p), "+c"(n) : "d"((u16)ATA_DATA) : "memory");
        }
        d_state = D_BUSY;
        d_since = now;
        /* A fast write may already be done. */
        __attribute__((fallthrough));
    case D_BUSY:
        st = inb(ATA_ALTSTAT);
        if (st & ST_BSY) {
            if (now - d_since > d_timeout)
                still_busy(now, d_lba);
            return 0;
        }
        st = inb(ATA_STATUS);                   /* acknowledges the IRQ */
        if (st & (ST_ERR | ST_DF | ST_DRQ)) {
            disk_errors++;
            report("error", d_lba, st, now);
        } else {
            disk_written++;
        }
        advance();
        d_state = D_IDLE;
        d_since = now;
        return 1;
    default:
        return 0;
    }
}
