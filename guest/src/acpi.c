/* ACPI PM1 power button polling and soft-off, via the chipset PM function:
 *   i440fx ("pc"):  PIIX4 PM at PCI 00:01.3 (8086:7113), PMBA  = cfg 0x40 & 0xFFC0
 *   q35:            ICH9 LPC at PCI 00:1f.0 (8086:2918), PMBASE = cfg 0x40 & 0xFF80
 * SeaBIOS normally programs the base (0x600); if it is zero we program it. */
#include "kernel.h"

#define PM1_STS 0               /* PM1a status (write 1 to clear) */
#define PM1_EN  2               /* PM1a enable */
#define PM1_CNT 4               /* PM1a control */
#define PM_TMR  8               /* 24-bit PM timer */
#define PWRBTN  0x0100          /* bit 8 in PM1_STS / PM1_EN */
#define SLP_EN  0x2000          /* bit 13 in PM1_CNT */
#define SLP_TYP_MASK 0x1C00     /* bits 10..12 */
#define DEFAULT_PMBASE 0x600

enum acpi_kind acpi_kind;
u16 acpi_pmbase;

static u32 pci_addr(u32 dev, u32 fn, u32 off)
{
    return 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xFC);  /* bus 0 */
}

static u32 pci_read32(u32 dev, u32 fn, u32 off)
{
    outl(0xCF8, pci_addr(dev, fn, off));
    return inl(0xCFC);
}

static void pci_write32(u32 dev, u32 fn, u32 off, u32 v)
{
    outl(0xCF8, pci_addr(dev, fn, off));
    outl(0xCFC, v);
}

void acpi_init(void)
{
    u32 base = 0;

    if (pci_read32(1, 3, 0x00) == 0x71138086u) {
        acpi_kind = ACPI_PIIX4;
        base = pci_read32(1, 3, 0x40) & 0xFFC0;
        if (!base) {
            base = DEFAULT_PMBASE;
            pci_write32(1, 3, 0x40, base | 1);
        }
        u32 misc = pci_read32(1, 3, 0x80);          /* PMREGMISC bit 0: PM I/O enable */
        if (!(misc & 1))
            pci_write32(1, 3, 0x80, misc | 1);
    } else if (pci_read32(0x1f, 0, 0x00) == 0x29188086u) {
        acpi_kind = ACPI_ICH9;
        base = pci_read32(0x1f, 0, 0x40) & 0xFF80;
        if (!base) {
            base = DEFAULT_PMBASE;
            pci_write32(0x1f, 0, 0x40, base | 1);
        }
        u32 cntl = pci_read32(0x1f, 0, 0x44);       /* ACPI_CNTL bit 7: ACPI_EN */
        if (!(cntl & 0x80))
            pci_write32(0x1f, 0, 0x44, cntl | 0x80);
    } else {
        acpi_kind = ACPI_NONE;
        return;
    }

    acpi_pmbase = (u16)base;
    outw(acpi_pmbase + PM1_STS, PWRBTN);                              /* clear stale status */
    outw(acpi_pmbase + PM1_EN, (u16)(inw(acpi_pmbase + PM1_EN) | PWRBTN));
}

u16 acpi_pmtimer_port(void)
{
    return acpi_kind == ACPI_NONE ? 0 : (u16)(acpi_pmbase + PM_TMR);
}

int acpi_power_button_pressed(void)
{
    if (acpi_kind == ACPI_NONE)
        return 0;
    return (inw(acpi_pmbase + PM1_STS) & PWRBTN) != 0;
}

void acpi_poweroff(void)
{
    /* QEMU (acpi_pm1_cnt_write, shared by PIIX4 and ICH9) treats SLP_TYP 0
     * as soft-off. 5 and 7 are tried afterwards as what real chipsets use. */
    static const u16 types[] = { 0, 5, 7 };

    __asm__ volatile("cli");
    if (acpi_kind != ACPI_NONE) {
        outw(acpi_pmbase + PM1_STS, PWRBTN);
        for (u32 i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            u16 cnt = inw(acpi_pmbase + PM1_CNT);
            cnt = (u16)((cnt & ~SLP_TYP_MASK & ~SLP_EN) | (types[i] << 10));
            outw(acpi_pmbase + PM1_CNT, (u16)(cnt | SLP_EN));
            timer_spin_ms(200);
        }
    }
    say("FERRY-GUEST poweroff-failed");
    for (;;)
        __asm__ volatile("cli; hlt");
}
