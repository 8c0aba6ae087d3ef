/*
 * Multiboot v1 entry point, GDT and interrupt stubs.
 *
 * The loader (QEMU's -kernel multiboot support) enters _start in 32-bit
 * protected mode with paging off, EAX = 0x2BADB002 and EBX = the physical
 * address of the multiboot information structure.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003     /* bit 0: page-align modules, bit 1: memory info */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .text
        .global _start
        .type _start, @function
_start:
        cli
        cld
        movl %eax, %esi                 /* keep magic and info pointer */
        movl %ebx, %ebp

        /* Zero .bss (the stack lives there, so do it before using it). */
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        xorl %eax, %eax
        rep stosb

        lgdt gdt_desc
        ljmp $0x08, $1f
1:      movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
        movl $stack_top, %esp
        xorl %eax, %eax
        pushl %eax                      /* keep the stack 16-byte aligned */
        pushl %eax
        pushl %ebp                      /* kmain(magic, info) */
        pushl %esi
        call kmain
2:      cli
        hlt
        jmp 2b
        .size _start, . - _start

/* IRQ0 (PIT, 1 kHz): only wakes the CPU out of HLT; acknowledge and return. */
        .global irq0_stub
        .type irq0_stub, @function
irq0_stub:
        pushl %eax
        incl timer_irqs
        movb $0x20, %al
        outb %al, $0x20
        popl %eax
        iret

/* IRQ14 (primary IDE, via the slave PIC): only wakes the CPU out of HLT.
 * Reads the drive's status register (which lowers its interrupt line, so
 * this is safe even if the line were level-triggered), acknowledges both
 * PICs and returns. The driver itself polls the drive. */
        .global irq14_stub
        .type irq14_stub, @function
irq14_stub:
        pushl %eax
        pushl %edx
        movw $0x1F7, %dx
        inb %dx, %al
        movb $0x20, %al
        outb %al, $0xA0
        outb %al, $0x20
        popl %edx
        popl %eax
        iret

/* Anything else that is not an exception (spurious IRQ7/15 and so on). */
        .global ignore_stub
        .type ignore_stub, @function
ignore_stub:
        iret

/* CPU exceptions 0..31: one 16-byte stub each; report and stop. */
        .global exc_stubs
        .align 16
exc_stubs:
        .set vec, 0
        .rept 32
        .align 16
        pushl $vec
        jmp exc_common
        .set vec, vec + 1
        .endr

exc_common:
        cli
        cld
        movl (%esp), %eax
        movl $stack_top, %esp
        pushl %eax
        pushl %eax
        pushl %eax
        pushl %eax                      /* exception_handler(vector) */
        call exception_handler
3:      cli
        hlt
        jmp 3b

        .section .rodata
        .align 8
gdt:
        .quad 0x0000000000000000        /* null */
        .quad 0x00CF9A000000FFFF        /* 0x08: flat 4 GiB code, ring 0 */
        .quad 0x00CF92000000FFFF        /* 0x10: flat 4 GiB data, ring 0 */
gdt_end:
        .align 4
        .word 0
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        .section .bss
        .align 16
        .global timer_irqs
timer_irqs:
        .long 0
        .align 16
stack_bottom:
        .skip 32768
stack_top:

        .section .note.GNU-stack, "", @progbits
