/* Guest clock.
 *
 * Preferred source: the ACPI PM timer (3.579545 MHz, 24 bits, at PM base
 * + 8 on both PIIX4 and ICH9). QEMU derives it from its virtual clock at
 * every read, so it needs no calibration, follows host time under TCG,
 * stops while the VM is stopped and continues seamlessly after a live
 * migration (the virtual clock offset is part of the migrated state).
 *
 * Fallback (no ACPI PM device): the TSC, calibrated against PIT channel 2
 * at boot. Calibration can be skewed by host preemption, hence the
 * preference above.
 *
 * Either way timer_now() returns a monotonic "guest clock" in which no
 * single step is negative or longer than MAX_STEP_MS, so a jump (e.g. a
 * different TSC on a migration destination) costs at most that much
 * catch-up. All state lives in RAM and therefore migrates with the guest.
 * The main loop reads the clock at least once per millisecond, well within
 * the PM timer's 4.68 s wrap. */
#include "kernel.h"

#define PIT_HZ       1193182u
#define PMTMR_HZ     3579545u
#define CAL_COUNT    59659u     /* ~50 ms of PIT input clock */
#define MAX_STEP_MS  1000u

u64 clock_hz;
u64 tsc_hz;
u32 timer_jumps;
static u16 pmtmr_port;          /* 0: use the TSC */
static u64 last_raw;
static u64 guest_now;
static u64 max_step;

/* One ~50 ms measurement of the TSC rate against PIT channel 2. */
static u64 tsc_measure_pit(void)
{
    u8 p61 = inb(0x61);
    outb(0x61, (u8)((p61 & ~0x02) | 0x01));   /* gate 2 on, speaker off */
    outb(0x43, 0xB0);                          /* ch2, lo/hi, mode 0, binary */
    outb(0x42, (u8)(CAL_COUNT & 0xff));
    outb(0x42, (u8)(CAL_COUNT >> 8));          /* counting starts here */
    u64 t0 = rdtsc();
    int timed_out = 0;
    while (!(inb(0x61) & 0x20)) {              /* OUT2 goes high at terminal count */
        if (rdtsc() - t0 > 20000000000ull) {   /* several seconds at any sane clock */
            timed_out = 1;
            break;
        }
    }
    u64 t1 = rdtsc();
    outb(0x61, p61);
    if (timed_out)
        return 0;
    u64 hz = (t1 - t0) * PIT_HZ / CAL_COUNT;
    return hz > 10000000ull && hz < 100000000000ull ? hz : 0;
}

/* Median of three measurements, so one that the host preempted at a bad
 * moment does not skew the clock. */
static int tsc_calibrate_pit(void)
{
    u64 v[3];
    u32 n = 0;
    for (int attempt = 0; attempt < 6 && n < 3; attempt++) {
        u64 hz = tsc_measure_pit();
        if (hz)
            v[n++] = hz;
    }
    if (n == 0) {
        tsc_hz = 1000000000ull;                /* a guess; the caller warns */
        return -1;
    }
    for (u32 i = 0; i < n; i++)
        for (u32 j = i + 1; j < n; j++)
            if (v[j] < v[i]) {
                u64 t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    tsc_hz = v[n / 2];
    return 0;
}

static u64 read_raw(void)
{
    if (pmtmr_port)
        return inl(pmtmr_port) & 0xFFFFFFu;
    return rdtsc();
}

int timer_init(u16 pmtmr)
{
    int rc = 0;
    pmtmr_port = pmtmr;
    if (pmtmr) {
        /* Sanity check: the PM timer must move (a few us under TCG). */
        u32 a = inl(pmtmr) & 0xFFFFFFu;
        u32 moved = 0;
        for (u32 i = 0; i < 1000000 && !moved; i++)
            moved = (inl(pmtmr) & 0xFFFFFFu) != a;
        if (!moved)
            pmtmr_port = 0;
    }
    if (pmtmr_port) {
        clock_hz = PMTMR_HZ;
    } else {
        rc = tsc_calibrate_pit();
        clock_hz = tsc_hz;
    }
    max_step = clock_hz / 1000 * MAX_STEP_MS;
    last_raw = read_raw();
    return rc;
}

const char *timer_source(void)
{
    return pmtmr_port ? "acpi-pm" : "tsc";
}

u64 timer_now(void)
{
    u64 raw = read_raw();
    u64 d;
    if (pmtmr_port) {
        d = (raw - last_raw) & 0xFFFFFFu;       /* 24-bit counter */
    } else {
        d = raw - last_raw;
        if ((i64)d < 0) {                       /* TSC went backwards */
            d = 0;
            timer_jumps++;
        }
    }
    last_raw = raw;
    if (d > max_step) {                         /* leapt forward */
        d = max_step;
        timer_jumps++;
    }
    guest_now += d;
    return guest_now;
}

void timer_spin_ms(u32 ms)
{
    u64 end = timer_now() + clock_hz / 1000 * ms;
    while (timer_now() < end)
        cpu_relax();
}
