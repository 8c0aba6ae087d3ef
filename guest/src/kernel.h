/* Ferry test guest: shared declarations. */
#ifndef FERRY_KERNEL_H
#define FERRY_KERNEL_H

typedef unsigned char      u8;
typedef unsigned short     u16;
typedef unsigned int       u32;
typedef unsigned long long u64;
typedef int                i32;
typedef long long          i64;
typedef unsigned int       uptr;

#define NULL ((void *)0)
#define PAGE_SIZE  4096u
#define PAGE_WORDS (PAGE_SIZE / 4u)
#define MIB        (1024u * 1024u)

/* ---- port I/O and TSC -------------------------------------------------- */
static inline void outb(u16 port, u8 v)  { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8  inb(u16 port) { u8 v;  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cpu_relax(void) { __asm__ volatile("pause"); }
/* Enable interrupts and halt until the next one (the 1 kHz PIT tick). */
static inline void idle_wait(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- lib.c -------------------------------------------------------------- */
void *memset(void *d, int c, u32 n);
void *memcpy(void *d, const void *s, u32 n);
u32 strlen(const char *s);
int streq(const char *a, const char *b);

/* ---- serial.c: COM1 and line formatting ------------------------------- */
void serial_init(void);
void serial_write(const char *s, u32 n);

/* A line is built in a buffer and then written in one go. */
struct line {
    char buf[200];
    u32 len;
};
void ln_start(struct line *l, const char *prefix);
void ln_str(struct line *l, const char *s);
void ln_u64(struct line *l, u64 v);
void ln_hex32(struct line *l, u32 v);        /* 0x%08x */
void ln_kv_u64(struct line *l, const char *key, u64 v);   /* " key=<dec>" */
void ln_kv_str(struct line *l, const char *key, const char *v);
void ln_kv_hex(struct line *l, const char *key, u32 v);
void ln_emit(struct line *l);                /* append '\n' and write */
void say(const char *text);                  /* write text + '\n' */

/* ---- cpu.c: GDT is set in boot.S; IDT, PIC and PIT here --------------- */
void cpu_init_interrupts(void);              /* IDT + PIC; PIT ch0 at 1 kHz; STI */
void exception_handler(u32 vector);
void cpu_enable_irq14(void);                 /* unmask the primary IDE channel's IRQ */
extern volatile u32 timer_irqs;             /* bumped by the IRQ0 stub (boot.S) */

/* ---- timer.c ------------------------------------------------------------ */
extern u64 clock_hz;                         /* guest clock ticks per second */
extern u64 tsc_hz;                           /* only set when the TSC is the source */
extern u32 timer_jumps;                      /* number of clamped steps */
int  timer_init(u16 pmtmr_port);             /* 0 = no PM timer; returns 0 on success */
const char *timer_source(void);              /* "acpi-pm" or "tsc" */
u64  timer_now(void);                        /* monotonic guest clock, jumps clamped */
void timer_spin_ms(u32 ms);

/* ---- acpi.c ------------------------------------------------------------- */
enum acpi_kind { ACPI_NONE = 0, ACPI_PIIX4, ACPI_ICH9 };
extern enum acpi_kind acpi_kind;
extern u16 acpi_pmbase;
void acpi_init(void);
int  acpi_power_button_pressed(void);
u16  acpi_pmtimer_port(void);                /* 0 if no ACPI PM device */
void acpi_poweroff(void);                    /* does not return */

/* ---- cmdline.c ---------------------------------------------------------- */
enum verify_mode { VERIFY_OFF = 0, VERIFY_SAMPLE, VERIFY_FULL };
struct config {
    u32 ws_mib;
    u32 rate_pages;        /* pages per second, 0 = idle */
    u32 hb_ms;
    enum verify_mode verify;
    u32 full_every;
    u32 corrupt_at;        /* test aid: damage one page after heartbeat N (0 = never) */
    u32 disk_rate;         /* sectors per second written to the IDE disk, 0 = off */
    u32 disk_start;        /* first LBA written */
    u32 disk_sectors;      /* sectors in the written range (wraps) */
};
#define MAX_WARNINGS 8
extern char cfg_warnings[MAX_WARNINGS][96];
extern u32 cfg_nwarnings;
void cmdline_parse(const char *cmdline, struct config *cfg);
void cfg_warn(const char *a, const char *b, const char *c);
const char *verify_name(enum verify_mode m);

/* ---- disk.c: ATA PIO writer on the primary IDE master ----------------- */
extern u64 disk_written;                     /* sectors written successfully */
extern u32 disk_errors;                      /* failed writes (ERR/DF), given-up ones */
u32  disk_init(u32 rate, u32 start, u32 span, u32 *span_out);  /* -> capacity, 0 = none */
void disk_begin(u64 now);                    /* after cpu_init_interrupts */
int  disk_enabled(void);
int  disk_poll(u64 now);                     /* 1 if it made progress */

#endif
