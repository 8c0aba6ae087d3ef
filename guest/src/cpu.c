/* IDT, 8259 PIC and PIT channel 0. The only enabled interrupt is IRQ0 at
 * 1 kHz; it exists so the idle loop can HLT instead of spinning. */
#include "kernel.h"

struct idt_gate {
    u16 off_lo;
    u16 sel;
    u8  zero;
    u8  type;
    u16 off_hi;
} __attribute__((packed));

struct idt_ptr {
    u16 limit;
    u32 base;
} __attribute__((packed));

extern char exc_stubs[];
extern void irq0_stub(void);
extern void irq14_stub(void);
extern void ignore_stub(void);

static struct idt_gate idt[256] __attribute__((aligned(8)));

static void set_gate(u32 vec, void *handler)
{
    u32 a = (u32)(uptr)handler;
    idt[vec].off_lo = (u16)(a & 0xffff);
    idt[vec].sel = 0x08;
    idt[vec].zero = 0;
    idt[vec].type = 0x8E;       /* present, ring 0, 32-bit interrupt gate */
    idt[vec].off_hi = (u16)(a >> 16);
}

#define PIC1_CMD 0x20
#define PIC1_DAT 0x21
#define PIC2_CMD 0xA0
#define PIC2_DAT 0xA1
#define PIT_HZ   1193182u

void cpu_init_interrupts(void)
{
    for (u32 v = 0; v < 256; v++)
        set_gate(v, v < 32 ? (void *)(exc_stubs + 16 * v) : (void *)ignore_stub);
    set_gate(0x20, (void *)irq0_stub);
    set_gate(0x2E, (void *)irq14_stub);

    struct idt_ptr p = { sizeof(idt) - 1, (u32)(uptr)idt };
    __asm__ volatile("lidt %0" : : "m"(p));

    /* Remap the PICs to vectors 0x20..0x2f; mask everything but IRQ0. */
    outb(PIC1_CMD, 0x11);
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DAT, 0x20);
    outb(PIC2_DAT, 0x28);
    outb(PIC1_DAT, 0x04);
    outb(PIC2_DAT, 0x02);
    outb(PIC1_DAT, 0x01);
    outb(PIC2_DAT, 0x01);
    outb(PIC1_DAT, 0xFE);
    outb(PIC2_DAT, 0xFF);

    /* PIT channel 0, mode 2 (rate generator), ~1 kHz. */
    u32 div = (PIT_HZ + 500) / 1000;
    outb(0x43, 0x34);
    outb(0x40, (u8)(div & 0xff));
    outb(0x40, (u8)(div >> 8));

    __asm__ volatile("sti");
}

/* IRQ14 (primary IDE) is slave PIC line 6, through the cascade on IRQ2. It
 * only wakes the main loop out of HLT when a disk write completes. */
void cpu_enable_irq14(void)
{
    outb(PIC2_DAT, (u8)(inb(PIC2_DAT) & ~0x40));
    outb(PIC1_DAT, (u8)(inb(PIC1_DAT) & ~0x04));
}

void exception_handler(u32 vector)
{
    struct line l;
    ln_start(&l, "FERRY-GUEST fault");
    ln_kv_u64(&l, "vec", vector);
    ln_emit(&l);
}
