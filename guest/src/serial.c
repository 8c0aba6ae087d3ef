/* COM1 (0x3f8) polled output, 115200 8N1, plus a tiny line formatter. */
#include "kernel.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

void serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* IER: no interrupts */
    outb(COM1 + 3, 0x80);   /* LCR: DLAB on */
    outb(COM1 + 0, 0x01);   /* divisor 1 -> 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* LCR: 8N1, DLAB off */
    outb(COM1 + 2, 0xC7);   /* FCR: enable + clear FIFOs, 14-byte threshold */
    outb(COM1 + 4, 0x03);   /* MCR: DTR + RTS */
}

static void serial_putc(char c)
{
    u32 spins = 0;
    /* Bounded wait so a wedged UART cannot hang the guest forever. */
    while (!(inb(COM1 + 5) & LSR_THRE) && ++spins < 1000000)
        cpu_relax();
    outb(COM1, (u8)c);
}

void serial_write(const char *s, u32 n)
{
    for (u32 i = 0; i < n; i++)
        serial_putc(s[i]);
}

void ln_str(struct line *l, const char *s)
{
    while (*s && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = *s++;
}

void ln_start(struct line *l, const char *prefix)
{
    l->len = 0;
    ln_str(l, prefix);
}

void ln_u64(struct line *l, u64 v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (u32)(v % 10));
        v /= 10;
    } while (v);
    while (n && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = tmp[--n];
}

void ln_hex32(struct line *l, u32 v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[11];
    tmp[0] = '0';
    tmp[1] = 'x';
    for (int i = 0; i < 8; i++)
        tmp[2 + i] = digits[(v >> (28 - 4 * i)) & 0xf];
    tmp[10] = 0;
    ln_str(l, tmp);
}

void ln_kv_u64(struct line *l, const char *key, u64 v)
{
    ln_str(l, " ");
    ln_str(l, key);
    ln_str(l, "=");
    ln_u64(l, v);
}

void ln_kv_str(struct line *l, const char *key, const char *v)
{
    ln_str(l, " ");
    ln_str(l, key);
    ln_str(l, "=");
    ln_str(l, v);
}

void ln_kv_hex(struct line *l, const char *key, u32 v)
{
    ln_str(l, " ");
    ln_str(l, key);
    ln_str(l, "=");
    ln_hex32(l, v);
}

void ln_emit(struct line *l)
{
    l->buf[l->len++] = '\n';   /* ln_* always leave room for this */
    serial_write(l->buf, l->len);
    l->len = 0;
}

void say(const char *text)
{
    struct line l;
    ln_start(&l, text);
    ln_emit(&l);
}
