/**
 * profile-tunnel: where a daemon's CPU goes while it relays a TUNNELLED
 * migration, ferryd next to libvirtd 9.0 doing the same job on the same two
 * hosts (the network namespaces of bench/libvirt/hosts.sh: a veth pair,
 * 10.203.0.1 and 10.203.0.2, a libvirtd and a ferryd on each).
 *
 * Each run boots the test guest on host 1 with the tool's own CLI, migrates
 * it to host 2 (`ferry migrate --live --p2p [--tunnelled]` to ferry+tcp, or
 * `virsh migrate --live --p2p [--tunnelled]` to qemu+tcp), and measures for
 * the daemon of each host over the migrate command: user and system CPU
 * (/proc/PID/stat, all threads), read/write syscalls and bytes
 * (/proc/PID/io: read(2)/write(2)-family calls only, recvmsg/sendmsg are
 * not counted), the bytes host 1 sent on the link (veth transmit counter)
 * and the time the stream was on the link (10 ms samples, as in
 * bench/migration.ts), plus the CPU of both QEMUs.
 *
 * With `--profile`, the daemons of the tunnelled runs are also observed:
 * - `cpu-prof` (ferryd only): both ferryds run with the V8 sampling
 *   profiler on (a --require hook: `--cpu-prof` is not allowed in
 *   NODE_OPTIONS); at the end they are stopped with SIGTERM (ferryd exits
 *   through process.exit, when the hook writes the profile) and the samples
 *   that fall inside the migrate commands are summed by function and by
 *   category;
 * - `perf`: `perf record` (cpu-clock) on each daemon during each tunnelled
 *   migrate command (ferryd with --perf-basic-prof so that JIT frames have
 *   names), summed by symbol and by category (kernel: copies, TCP, unix
 *   sockets, pipes, skb memory, scheduler, syscall entry; user: V8/JS,
 *   GC, libuv, libc memcpy, ...);
 * - `strace`: `strace -f` on each daemon during each tunnelled migrate
 *   command, counted per syscall with the bytes each moved (strace slows
 *   the traced daemon a lot: its counts say what it does, not how fast).
 *
 *   npx tsx bench/profile-tunnel.ts [--tools ferry,libvirt] [--modes tunnelled,p2p] [--runs 3] [--rates 0]
 *                                   [--profile none|cpu-prof|perf|strace] [--memory-mib 257] [--out DIR]
 *                                   [--ferryd-env K=V,...] [--tag NAME]
 *
 * Needs root, perf and strace for those profiles; writes
 * bench/results/profile-tunnel[-PROFILE].json and the raw profiles under
 * --out (default bench/results/profile-tunnel/).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { helperCpuInLog } from '../src/migration/tunnel.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import { CLI, RESULTS_DIR, ROOT, argInt, argValue, fmtSummary, machineInfo, markdownTable, onCleanup, rmTree, runMain, sleep, summarize, timedRun, useDistSnapshot, writeResults } from './lib.js';
import { streamWindow } from './wire.js';
import { ADDR, FERRY_URI, LV_URI, NS, serialToFile } from './bench-hosts.js';

const RUNS = argInt('runs', 3);
const RATES = (argValue('rates') ?? '0').split(',').map(Number);
const MEMORY_MIB = argInt('memory-mib', 257);
const WS_MIB = Math.min(200, MEMORY_MIB - 40);
const HB_MS = 250;
type Tool = 'ferry' | 'libvirt';
type Mode = 'tunnelled' | 'p2p';
const TOOLS = (argValue('tools') ?? 'ferry,libvirt').split(',').filter((t): t is Tool => t === 'ferry' || t === 'libvirt');
const MODES_PICKED = (argValue('modes') ?? 'tunnelled,p2p').split(',').filter((m): m is Mode => m === 'tunnelled' || m === 'p2p');
const PROFILE = (argValue('profile') ?? 'none') as 'none' | 'cpu-prof' | 'perf' | 'strace';
if (!['none', 'cpu-prof', 'perf', 'strace'].includes(PROFILE)) {
  process.stderr.write(`--profile expects none, cpu-prof, perf or strace\n`);
  process.exit(2);
}
const OUT = argValue('out') ?? join(RESULTS_DIR, 'profile-tunnel');
/** `--ferryd-env K=V[,K=V]`: extra environment of both ferryds (e.g. GLIBC_TUNABLES=...). */
const FERRYD_ENV = (argValue('ferryd-env') ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const);
/** `--tag NAME`: names the output (results JSON and raw profile directory) of a variant. */
const TAG = argValue('tag') ?? '';
const MODE_ARGS: Record<Mode, string[]> = { tunnelled: ['--live', '--p2p', '--tunnelled'], p2p: ['--live', '--p2p'] };

const now = () => Number(process.hrtime.bigint()) / 1e6;
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

// ------------------------------------------------------------ /proc probes

interface Cpu {
  user: number;
  sys: number;
  /** Minor page faults. */
  minflt: number;
}
/** User and system CPU of a process (all threads), ms; undefined once gone. */
function cpuOf(pid: number): Cpu | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10, minflt: Number(f[7]) };
  } catch {
    return undefined;
  }
}
interface Io {
  rchar: number;
  wchar: number;
  syscr: number;
  syscw: number;
}
function ioOf(pid: number): Io | undefined {
  try {
    const t = readFileSync(`/proc/${pid}/io`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1]);
    return { rchar: get('rchar'), wchar: get('wchar'), syscr: get('syscr'), syscw: get('syscw') };
  } catch {
    return undefined;
  }
}
const ioDelta = (a?: Io, b?: Io): Io | undefined => (a && b ? { rchar: b.rchar - a.rchar, wchar: b.wchar - a.wchar, syscr: b.syscr - a.syscr, syscw: b.syscw - a.syscw } : undefined);
const cpuDelta = (a?: Cpu, b?: Cpu): Cpu | undefined => (a && b ? { user: b.user - a.user, sys: b.sys - a.sys, minflt: b.minflt - a.minflt } : undefined);

/** Transmit bytes of `dev` as seen from inside the namespace of `pid`. */
function txOf(pid: number, dev: string): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/net/dev`, 'utf8')
      .split('\n')
      .find((l) => l.trim().startsWith(`${dev}:`));
    if (!line) return undefined;
    return Number(line.slice(line.indexOf(':') + 1).trim().split(/\s+/)[8]);
  } catch {
    return undefined;
  }
}

/** The QEMU whose command line names guest `name` (its `-name guest=NAME`). */
function qemuOf(name: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) {
        if (cmd.includes(`guest=${name}\0`) || cmd.includes(`guest=${name},`)) return Number(d);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

/** All qemu-system pids of guest `name` (source and destination have the same name). */
function qemusOf(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if ((cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) && (cmd.includes(`guest=${name}\0`) || cmd.includes(`guest=${name},`))) out.push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** The network namespace of a pid as `net:[inode]`. */
function netnsOf(pid: number): string {
  try {
    return execFileSync('readlink', [`/proc/${pid}/ns/net`], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/**
 * Samples every 10 ms while a migrate command runs: the link's transmit
 * counter on host 1 and the CPU of both daemons and of the guest's QEMUs;
 * tells when the stream was on the link (first to last > 64 KiB sample).
 */
class Sampler {
  private samples: Array<{ t: number; tx: number; a?: Cpu; b?: Cpu }> = [];
  private timer: NodeJS.Timeout | undefined;
  private qemuCpu = new Map<number, Cpu>();
  private qemuFirst = new Map<number, Cpu>();
  private lastScan = 0;
  constructor(
    private readonly txPid: number,
    private readonly dev: string,
    private readonly daemons: readonly [number, number],
    private readonly guest: string,
  ) {}
  start(): void {
    const sample = () => {
      const t = now();
      const tx = txOf(this.txPid, this.dev);
      if (tx === undefined) return;
      const a = cpuOf(this.daemons[0]);
      const b = cpuOf(this.daemons[1]);
      this.samples.push({ t, tx, ...(a ? { a } : {}), ...(b ? { b } : {}) });
      if (t - this.lastScan > 100) {
        this.lastScan = t;
        for (const q of qemusOf(this.guest)) if (!this.qemuFirst.has(q)) this.qemuFirst.set(q, cpuOf(q) ?? { user: 0, sys: 0, minflt: 0 });
      }
      for (const q of this.qemuFirst.keys()) {
        const c = cpuOf(q);
        if (c) this.qemuCpu.set(q, c);
      }
    };
    sample();
    this.timer = setInterval(sample, 10);
  }
  /** Stops; the stream's window, bytes and daemons' CPU in it; each QEMU's CPU over the command (a QEMU that started during it: all of its CPU). */
  stop(srcQemu: number | undefined): { wireMs?: number; wireBytes?: number; wireCpu?: [Cpu | undefined, Cpu | undefined]; qemuSrc?: Cpu; qemuDst?: Cpu } {
    if (this.timer) clearInterval(this.timer);
    const s = this.samples;
    const w = streamWindow(s.map((x) => x.tx));
    const out: ReturnType<Sampler['stop']> = {};
    if (w) {
      const { first, last } = w;
      out.wireMs = s[last]!.t - s[first]!.t;
      out.wireBytes = s[last]!.tx - s[first]!.tx;
      out.wireCpu = [cpuDelta(s[first]!.a, s[last]!.a), cpuDelta(s[first]!.b, s[last]!.b)];
    }
    for (const [q, c0] of this.qemuFirst) {
      const c1 = this.qemuCpu.get(q);
      if (!c1) continue;
      if (q === srcQemu) out.qemuSrc = cpuDelta(c0, c1);
      else out.qemuDst = c1; // started during the command: all it used
    }
    return out;
  }
}

// ------------------------------------------------------------ profilers attached per run

interface Attached {
  stop(): Promise<void>;
}

function attachPerf(pid: number, file: string): Attached {
  const child = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { stop: () => stopChild(child, 'SIGINT', () => err) };
}

function attachStrace(pid: number, file: string): Attached {
  const child = spawn('strace', ['-f', '-qq', '-s', '0', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { stop: () => stopChild(child, 'SIGINT', () => err) };
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals, err: () => string): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null) {
      if (child.exitCode !== 0) process.stderr.write(`profiler exited ${child.exitCode}: ${err()}\n`);
      res();
      return;
    }
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill(signal);
  });
}

/** Lets the profiler attach before the command starts (perf and strace need a moment). */
const ATTACH_SETTLE_MS = 400;

// ------------------------------------------------------------ analysis: perf

/** Category of a perf sample's symbol (self time). */
function perfCategory(dso: string, sym: string): string {
  const k = dso === '[kernel.kallsyms]' || dso.startsWith('[kernel');
  if (k) {
    if (/copy_user|copy_to_user|copy_from_user|_copy_to_iter|_copy_from_iter|copyout|copyin|memcpy|rep_movs|csum_partial_copy|skb_copy_datagram|copy_page/.test(sym)) return 'kernel: copying bytes (user<->kernel, skb)';
    if (/csum|checksum/.test(sym)) return 'kernel: checksums';
    if (/^tcp_|^__tcp|^tcp4|inet_|^ip_|^__ip|ipv4|^__dev|dev_|^netif|^__netif|veth|^net_rx|napi|^__napi|^sk_|^__sk|^skb_|^__skb|^kfree_skb|^consume_skb|^__kfree_skb|nf_|^__inet|^sock_|^__sock|^release_sock|^lock_sock|^__release_sock|^skb|^__alloc_skb|^alloc_skb|^__build_skb|page_frag|^raw_|^dst_|^eth_|^__napi|^process_backlog|^__netdev|^netdev|^validate_xmit|^sch_|qdisc|^__qdisc|^pfifo|^rps_|^__tcp_|^bictcp|cubictcp|^tcp/.test(sym)) return 'kernel: TCP/IP + veth stack';
    if (/^unix_|^__unix|scm_/.test(sym)) return 'kernel: unix sockets';
    if (/pipe_|^__pipe|splice/.test(sym)) return 'kernel: pipes/splice';
    if (/kmem_cache|kmalloc|kfree|__slab|slab_|slub|___slab|alloc_pages|__alloc_pages|free_pages|__free_pages|get_page_from_freelist|free_unref|rmqueue|memcg|mem_cgroup|__folio|folio_|page_counter|__put_page|put_page|clear_page|__mod_|mod_memcg|refill_stock|obj_cgroup|vmalloc|__vmalloc/.test(sym)) return 'kernel: memory (slab/pages/memcg)';
    if (/epoll|ep_|__fget|fget|fput|__fdget|poll|wake|__wake|try_to_wake|autoremove_wake/.test(sym)) return 'kernel: epoll/wake-ups';
    if (/sched|switch|__schedule|pick_next|update_curr|enqueue|dequeue|finish_task|context_switch|psi_|cpuacct|cgroup_rstat|load_balance|idle|update_load|__update|hrtimer|tick|timer/.test(sym)) return 'kernel: scheduler/timers';
    if (/futex/.test(sym)) return 'kernel: futex';
    if (/entry_SYSCALL|syscall|do_syscall|__x64_sys|__sys_|ksys_|vfs_|rw_verify|security_|fsnotify|__fsnotify|rcu|srso|retbleed|untrain|exit_to_user|syscall_exit|irqentry|__rseq|rseq|lockdep|__check_object|check_heap|__virt_addr|iov_iter|import_iovec|__import_iovec|_raw_spin|raw_spin|native_queued|queued_spin|mutex|__mutex|down_|up_/.test(sym)) return 'kernel: syscall entry/vfs/locks';
    if (/page_fault|handle_mm|do_anonymous|do_user_addr|exc_page|__handle_mm|filemap|do_fault|mmap|munmap|madvise|__do_munmap|unmap|zap_|tlb/.test(sym)) return 'kernel: page faults/mmap';
    return 'kernel: other';
  }
  if (dso.startsWith('perf-') && dso.endsWith('.map')) {
    if (/^(Builtin|BytecodeHandler|Stub|Handler):/.test(sym) || /Builtin:/.test(sym)) return 'V8 builtins/interpreter';
    return 'JS (JIT-compiled functions)';
  }
  if (/libc\.so|libc-/.test(dso)) {
    if (/memcpy|memmove|__memcpy|__memmove/.test(sym)) return 'libc memcpy/memmove';
    if (/malloc|free|_int_|cfree|calloc|realloc|tcache|arena/.test(sym)) return 'libc malloc/free';
    if (/read|write|send|recv|epoll|poll|syscall|__libc_|pthread|futex|lll_/.test(sym)) return 'libc syscall wrappers/locks';
    return 'libc other';
  }
  if (/\bnode$|\/node$/.test(dso)) {
    if (/Heap|Scavenge|Scaveng|MarkCompact|Sweep|Marking|GC|Evacuat|Minor|Mark|Remembered|Slot|Concurrent|Barrier|Page::|MemoryChunk|LargeObject|PagedSpace|NewSpace|Allocat|ArrayBuffer(Sweeper|Extension|Tracker)|BackingStore/.test(sym)) return 'V8 heap/GC';
    if (/^uv_|^uv__/.test(sym)) return 'libuv';
    if (/node::|Builtins_|v8::|Runtime_|v8::internal/.test(sym)) {
      if (/^Builtins_/.test(sym)) return 'V8 builtins/interpreter';
      if (/StreamBase|LibuvStreamWrap|TCPWrap|PipeWrap|StreamReq|WriteWrap|ShutdownWrap|node::Buffer|AllocatedBuffer|EmitToJS|OnUvRead|OnUvAlloc|DoWrite|DoTryWrite|WriteBuffer|Writev|StreamListener|node::(Environment|AsyncWrap|MakeCallback|InternalCallbackScope|CallbackScope)|AsyncWrap|MakeCallback|InternalCallbackScope/.test(sym)) return 'node stream/socket C++ (read/write glue)';
      return 'V8/node runtime other';
    }
    return 'node binary other';
  }
  if (/libvirt/.test(dso)) return 'libvirt (user space)';
  if (/glib|libgio|libgobject/.test(dso)) return 'glib';
  if (/libgnutls|libnettle|libhogweed|libcrypto|libssl/.test(dso)) return 'crypto libraries';
  if (/xdr|libtirpc/.test(dso)) return 'XDR (libtirpc)';
  if (dso === '[unknown]' || dso === '') return 'unknown (no symbol)';
  return `other user: ${dso.replace(/^.*\//, '')}`;
}

/**
 * What a perf sample was doing, from its whole call chain (leaf first):
 * page faults and softirq network processing are told apart wherever they
 * hit (in this VM, samples taken with interrupts off land on the
 * instruction that turns them back on, so the leaf symbol alone hides them),
 * then the syscall (and whether the leaf is the byte copy), then user space.
 */
function chainCategory(frames: ReadonlyArray<{ sym: string; dso: string }>, mainThread: boolean): string {
  const syms = frames.map((f) => f.sym);
  const has = (re: RegExp) => syms.some((x) => re.test(x));
  const idx = (re: RegExp) => syms.findIndex((x) => re.test(x));
  const leaf = syms[0] ?? '';
  const kernelLeaf = frames[0]?.dso.includes('kernel') ?? false;
  const gc = /Heap::|Scavenger|ScavengeJob|MarkCompact|ConcurrentMarking|MarkingVisitor|Sweeper|MinorMarkCompact|Evacuat|IncrementalMarking|GCTracer|ArrayBufferSweeper|MemoryAllocator|Unmapper|CppHeap|cppgc/;
  const pf = idx(/^(asm_)?exc_page_fault$/);
  if (pf >= 0) {
    const trigger = syms.slice(pf + 1).find((x) => !/^(asm_)?exc_page_fault$/.test(x)) ?? '?';
    const rest = syms.slice(pf + 1);
    if (/_copy_to_iter|copy_user|_copy_to_user/.test(trigger)) {
      if (rest.some((x) => /unix_stream_recvmsg|unix_stream_read/.test(x))) return 'page faults: read(unix) copying into a fresh buffer';
      if (rest.some((x) => /tcp_recvmsg/.test(x))) return 'page faults: read(TCP) copying into a fresh buffer';
      if (rest.some((x) => /pipe_read/.test(x))) return 'page faults: read(pipe) copying into a fresh buffer';
      return 'page faults: kernel copy into user memory (other)';
    }
    if (/memset/.test(trigger) && rest.some((x) => /BackingStore|NewBackingStore|ArrayBuffer/.test(x))) return 'page faults: zeroing a new ArrayBuffer backing store';
    if (rest.some((x) => gc.test(x))) return 'page faults: V8 heap/GC';
    if (/malloc|_int_|sysmalloc|memset|memcpy|memmove/.test(trigger)) return `page faults: user ${trigger.replace(/^__|_avx512.*|_evex.*|_erms.*/g, '')}`;
    return 'page faults: other';
  }
  if (has(/^(net_rx_action|handle_softirqs|__do_softirq|do_softirq|__local_bh_enable_ip|process_backlog)$/)) return 'kernel softirq: network receive processing (veth -> TCP of the receiver)';
  if (has(gc)) return mainThread ? 'V8 GC (main thread)' : 'V8 GC (helper threads)';
  if (kernelLeaf || has(/^entry_SYSCALL_64/)) {
    if (has(/^(finish_task_switch.*|__schedule|schedule)$/)) return 'kernel: scheduler (context switches, waits)';
    const copy = /_copy_to_iter|_copy_from_iter|copy_user|_copy_from_user|_copy_to_user|skb_copy_datagram|csum_partial_copy/.test(leaf) ? 'copy' : 'rest';
    if (has(/unix_stream_recvmsg|unix_stream_read_generic/)) return `kernel read(unix): ${copy}`;
    if (has(/tcp_recvmsg/)) return `kernel read(TCP): ${copy}`;
    if (has(/tcp_sendmsg/)) return `kernel write(TCP): ${copy}`;
    if (has(/unix_stream_sendmsg/)) return `kernel write(unix): ${copy}`;
    if (has(/pipe_read/)) return `kernel read(pipe): ${copy}`;
    if (has(/pipe_write/)) return `kernel write(pipe): ${copy}`;
    if (has(/do_epoll_wait|ep_poll|do_sys_poll|do_poll|__x64_sys_poll|__x64_sys_ppoll/)) return 'kernel: epoll/poll';
    if (has(/eventfd/)) return 'kernel: eventfd';
    if (has(/futex/)) return 'kernel: futex';
    if (has(/munmap|mmap|madvise|__x64_sys_brk|do_brk|vm_munmap|mprotect/)) return 'kernel: mmap/munmap/madvise/brk';
    return 'kernel: other';
  }
  if (/^(_int_malloc|_int_free|malloc|free|cfree|sysmalloc|_int_realloc|realloc|calloc|malloc_consolidate|unlink_chunk.*|tcache.*|__libc_malloc|__libc_free|__libc_calloc|_int_memalign|systrim.*|__default_morecore.*)$/.test(leaf)) return 'user: malloc/free';
  if (/memcpy|memmove/.test(leaf)) return 'user: memcpy/memmove';
  if (/memset/.test(leaf)) return 'user: memset';
  if (/^JS:/.test(leaf) || /^Builtins_/.test(leaf) || frames[0]?.dso.includes('perf-') || frames[0]?.dso.startsWith('[JIT]')) return 'user: JS and V8 builtins';
  if (/^uv_|^uv__/.test(leaf)) return 'user: libuv';
  if (/^node::/.test(leaf)) return 'user: node C++ (stream glue, callbacks)';
  if (has(/v8::internal::compiler::|v8::internal::Parser|v8::internal::Compiler|maglev|baseline::/)) return 'user: V8 compiling/parsing';
  if (/v8::/.test(leaf)) return 'user: V8 runtime (not GC)';
  if (/libglib/.test(frames[0]?.dso ?? '')) return 'user: glib';
  if (/libvirt/.test(frames[0]?.dso ?? '')) return 'user: libvirt';
  if (/libc\.so/.test(frames[0]?.dso ?? '')) return 'user: libc other (syscall wrappers)';
  return 'user: other';
}

/** Samples per chain category, and per innermost JS function, of a perf.data file, of process `pid` only. */
function perfChains(file: string, pid: number): { byCat: Map<string, number>; byJs: Map<string, number>; byLeaf: Map<string, number>; byLeafCat: Map<string, number>; total: number } {
  const out = execFileSync('perf', ['script', '-i', file, '-F', 'comm,pid,tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] });
  const byCat = new Map<string, number>();
  const byJs = new Map<string, number>();
  const byLeaf = new Map<string, number>();
  const byLeafCat = new Map<string, number>();
  let total = 0;
  for (const block of out.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim());
    if (lines.length < 2) continue;
    // "node  7979/7981 ": pid/tid. Children the daemon forked (a QEMU) are followed by perf: left out.
    const head = /\s(\d+)\/(\d+)\s*$/.exec(lines[0]!);
    if (!head || Number(head[1]) !== pid) continue;
    const tid = Number(head[2]);
    const frames = lines.slice(1).map((l) => {
      const m = /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(l);
      return m ? { sym: m[1]!.replace(/\+0x[0-9a-f]+$/, ''), dso: m[2]! } : { sym: l.trim(), dso: '' };
    });
    total++;
    const c = chainCategory(frames, tid === pid);
    byCat.set(c, (byCat.get(c) ?? 0) + 1);
    const js = frames.find((f) => /^JS:/.test(f.sym));
    if (js) byJs.set(js.sym, (byJs.get(js.sym) ?? 0) + 1);
    const leaf = frames[0] ?? { sym: '?', dso: '' };
    const lk = `${leaf.sym} [${leaf.dso.replace(/^.*\//, '')}]`;
    byLeaf.set(lk, (byLeaf.get(lk) ?? 0) + 1);
    const lc = perfCategory(leaf.dso, leaf.sym);
    byLeafCat.set(lc, (byLeafCat.get(lc) ?? 0) + 1);
  }
  return { byCat, byJs, byLeaf, byLeafCat, total };
}

// ------------------------------------------------------------ analysis: strace

interface SyscallStat {
  calls: number;
  bytes: number;
  errors: number;
}

/**
 * Per syscall: calls, bytes moved (positive returns of the data-moving
 * calls), error returns. `strace -f` also follows the QEMU a daemon forks:
 * threads that exec (and their descendants) are left out.
 */
function straceCounts(file: string): Record<string, SyscallStat> {
  const stats: Record<string, SyscallStat> = {};
  const moving = /^(read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|pread64|pwrite64|splice|sendfile|recvmmsg|sendmmsg)$/;
  const lines = read(file).split('\n');
  const parent = new Map<string, string>();
  const execd = new Set<string>();
  for (const raw of lines) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const c = /^(?:<\.\.\. )?(?:clone3?|vfork|fork)(?:\(| resumed>).*=\s+(\d+)/.exec(m[2]!);
    if (c) parent.set(c[1]!, m[1]!);
    if (m[2]!.startsWith('execve(')) execd.add(m[1]!);
  }
  const child = (tid: string): boolean => {
    for (let t: string | undefined = tid, n = 0; t !== undefined && n < 64; t = parent.get(t), n++) if (execd.has(t)) return true;
    return false;
  };
  for (const raw of lines) {
    if (!raw.trim()) continue;
    const pidm = /^(\d+)\s+(.*)$/.exec(raw);
    if (pidm && child(pidm[1]!)) continue;
    let line = pidm ? pidm[2]! : raw;
    let name: string | undefined;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (resumed) {
      name = resumed[1];
      line = resumed[2]!;
    } else {
      const m = /^(\w+)\(/.exec(line);
      if (!m) continue;
      name = m[1];
      if (line.endsWith('<unfinished ...>')) continue;
    }
    const ret = /\)\s+=\s+(-?\d+|\?)/.exec(line);
    const s = (stats[name!] ??= { calls: 0, bytes: 0, errors: 0 });
    s.calls++;
    if (!ret) continue;
    const v = Number(ret[1]);
    if (v < 0) s.errors++;
    else if (moving.test(name!)) s.bytes += v;
  }
  return stats;
}

// ------------------------------------------------------------ analysis: cpu-prof

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function cpuProfCategory(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'native outside JS (libuv: syscalls, event loop)';
  if (fn === '(idle)') return 'idle';
  if (/^(writeBuffer|writev|writeUtf8String|writeLatin1String|writeAsciiString|readStart|readStop|shutdown)$/.test(fn) && url === '') return 'native socket calls from JS (write syscalls)';
  if (url === '') return `native: ${fn || '(anonymous)'}`;
  if (/node:buffer|node:internal\/buffer/.test(url)) return 'Buffer (node:buffer)';
  if (/node:internal\/streams|node:stream/.test(url)) return 'stream machinery (node:internal/streams)';
  if (/node:net|node:internal\/stream_base_commons|node:internal\/net/.test(url)) return 'socket JS glue (node:net, stream_base_commons)';
  if (/node:events|node:internal\/event_target/.test(url)) return 'events (emit)';
  if (/node:internal\/process\/task_queues|node:internal\/timers|node:timers|node:internal\/async_hooks/.test(url)) return 'ticks/timers';
  if (/^node:/.test(url)) return `other node internals`;
  if (/\/dist\/|\/src\//.test(url)) return 'Ferry code';
  return 'other JS';
}

/** Self time (ms) per function and per category of the samples inside `windows` ([startMs, endMs] on the monotonic clock). */
function cpuProfSelf(file: string, windows: Array<[number, number]>): { byFn: Map<string, number>; byCat: Map<string, number>; totalMs: number; outsideMs: number } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byFn = new Map<string, number>();
  const byCat = new Map<string, number>();
  let t = p.startTime; // µs
  let totalMs = 0;
  let outsideMs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    // The sample's weight: the interval to the next sample (as Chrome DevTools counts it).
    const w = (p.timeDeltas[i + 1] ?? p.timeDeltas[i]!) / 1000;
    const tMs = t / 1000;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (!windows.some(([a, b]) => tMs >= a && tMs <= b)) {
      if (functionName !== '(idle)') outsideMs += w;
      continue;
    }
    const cat = cpuProfCategory(functionName, url);
    if (cat === 'idle') continue;
    totalMs += w;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|src)\//, '$1/').replace(/^file:\/\//, '')}${url ? `:${lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + w);
    byCat.set(cat, (byCat.get(cat) ?? 0) + w);
  }
  return { byFn, byCat, totalMs, outsideMs };
}

/**
 * Loaded into ferryd with NODE_OPTIONS=--require: samples the main thread
 * every 250 µs with the inspector's profiler (what --cpu-prof does) and
 * writes FERRY_CPUPROF_DIR/ferryd-PID.cpuprofile at exit (ferryd exits
 * through process.exit on SIGTERM; the in-thread session answers at once).
 */
const CPUPROF_HOOK = `'use strict';
const { Session } = require('node:inspector');
const { mkdirSync, writeFileSync } = require('node:fs');
const dir = process.env.FERRY_CPUPROF_DIR;
if (dir && !process.env.FERRY_CPUPROF_STARTED) {
  process.env.FERRY_CPUPROF_STARTED = '1';
  const s = new Session();
  s.connect();
  s.post('Profiler.enable');
  s.post('Profiler.setSamplingInterval', { interval: 250 });
  s.post('Profiler.start');
  process.on('exit', () => {
    s.post('Profiler.stop', (err, r) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(dir + '/ferryd-' + process.pid + '.cpuprofile', JSON.stringify(r.profile));
    });
  });
}
`;

// ------------------------------------------------------------ the runs

interface Run {
  tool: Tool;
  mode: Mode;
  rate: number;
  run: number;
  ok: boolean;
  problems: string[];
  wallMs?: number;
  /** Bytes host 1 sent on the link over the command (veth tx). */
  linkBytes?: number;
  wireMs?: number;
  wireBytes?: number;
  /** Daemon of host 1 and host 2: CPU over the whole command, and while the stream was on the link. */
  cpu?: { a?: Cpu; b?: Cpu };
  wireCpu?: { a?: Cpu; b?: Cpu };
  io?: { a?: Io; b?: Io };
  qemuSrc?: Cpu;
  qemuDst?: Cpu;
  /** Monotonic ms of the command (for cutting the cpu-prof samples). */
  window?: [number, number];
}

const MB = 1e6;

runMain(async () => {
  await useDistSnapshot();
  execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'start'], { stdio: 'inherit' });
  onCleanup('libvirt hosts', () => execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'stop'], { stdio: 'ignore' }));
  const work = mkdtempSync(join(tmpdir(), 'ferry-proftun-'));
  onCleanup('temp dir', () => rmTree(work));
  mkdirSync(join(work, 'serial'), { recursive: true });
  const outDir = join(OUT, `${PROFILE}${TAG ? `-${TAG}` : ''}`);
  rmTree(outDir);
  mkdirSync(outDir, { recursive: true });

  // ferryd with the profiler's node options (the bench's own CLI calls must not get them).
  // (`--cpu-prof` is not allowed in NODE_OPTIONS and bench/ferryd.ts passes no node flags: a --require
  // hook starts the inspector's profiler instead and writes the profile when ferryd exits.)
  const hook = join(outDir, 'cpuprof-hook.cjs');
  if (PROFILE === 'cpu-prof') writeFileSync(hook, CPUPROF_HOOK);
  const nodeEnv = (side: string): Array<readonly [string, string]> =>
    PROFILE === 'cpu-prof'
      ? [
          ['NODE_OPTIONS', `--require ${hook}`],
          ['FERRY_CPUPROF_DIR', join(outDir, `cpuprof-${side}`)],
        ]
      : PROFILE === 'perf'
        ? [['NODE_OPTIONS', '--perf-basic-prof']]
        : [];
  const startOne = async (i: 0 | 1): Promise<Ferryd> => {
    const extra: Array<readonly [string, string]> = [...nodeEnv(i === 0 ? 'a' : 'b'), ...FERRYD_ENV];
    const saved = extra.map(([k]) => [k, process.env[k]] as const);
    for (const [k, v] of extra) process.env[k] = v;
    try {
      return await startFerryd({ dir: join(work, `ferry-${i ? 'b' : 'a'}`), hostName: `prof-${i ? 'b' : 'a'}`, netns: NS[i], listenTcp: `${ADDR[i]}:16609` });
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  };
  const fd = [await startOne(0), await startOne(1)] as const;
  let ferrydsStopped = false;
  onCleanup('ferryds', () => {
    if (!ferrydsStopped) fd.forEach((f) => f.stop());
  });

  // libvirtd of each host: the one whose network namespace is the host's.
  const lvPids = execFileSync('ps', ['-eo', 'pid=,comm='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, c]) => c === 'libvirtd')
    .map(([p]) => Number(p));
  const nsA = netnsOf(fd[0].pid);
  const nsB = netnsOf(fd[1].pid);
  const lvA = lvPids.find((p) => netnsOf(p) === nsA);
  const lvB = lvPids.find((p) => netnsOf(p) === nsB);
  if (TOOLS.includes('libvirt') && (!lvA || !lvB)) throw new Error(`cannot tell the libvirtds of the two hosts apart (${lvPids.join(', ')})`);
  process.stderr.write(`ferryd a ${fd[0].pid}, b ${fd[1].pid}; libvirtd a ${lvA}, b ${lvB}; profile ${PROFILE} -> ${outDir}\n`);

  const virsh = (h: 0 | 1, args: string[], timeoutMs = 180_000) => {
    const c = inNetns(NS[h], ['virsh', '-q', '-c', LV_URI[h]!, ...args]);
    return timedRun(c.file, c.args, { timeoutMs });
  };
  const ferry = (h: 0 | 1, args: string[], timeoutMs = 180_000) => {
    const c = inNetns(NS[h], [process.execPath, CLI, '-c', fd[h].unixUri, ...args]);
    return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
  };
  const waitBeats = async (path: string, n: number) => void (await waitForSerialFile(path, heartbeatCount(n)));

  const results: Run[] = [];
  const perfFiles: Record<string, string[]> = {};
  const perfPids: Record<string, number> = {};
  const straceFiles: Record<string, string[]> = {};

  const one = async (tool: Tool, mode: Mode, rate: number, run: number): Promise<Run> => {
    const r: Run = { tool, mode, rate, run, ok: false, problems: [] };
    const name = `pt-${tool}-${mode}-${rate}-${run}`;
    const uuid = randomUUID();
    const daemons: [number, number] = tool === 'ferry' ? [fd[0].pid, fd[1].pid] : [lvA!, lvB!];
    let srcLog: string;
    let dstLog: string;
    let xmlB: string | undefined;
    try {
      if (tool === 'ferry') {
        const xml = join(work, `${name}.xml`);
        writeFileSync(xml, testGuestXml({ name, uuid, memoryKiB: MEMORY_MIB * 1024, cmdline: `ws=${WS_MIB} rate=${rate} hb=${HB_MS}` }));
        srcLog = join(fd[0].stateDir, 'logs', `${name}.serial.log`);
        dstLog = join(fd[1].stateDir, 'logs', `${name}.serial.log`);
        const c = await ferry(0, ['create', xml]);
        if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      } else {
        srcLog = join(work, 'serial', `${name}.a.log`);
        dstLog = join(work, 'serial', `${name}.b.log`);
        const mk = (serial: string) => serialToFile(testGuestXml({ name, uuid, memoryKiB: MEMORY_MIB * 1024, cmdline: `ws=${WS_MIB} rate=${rate} hb=${HB_MS}` }), serial);
        const xmlA = join(work, `${name}.a.xml`);
        xmlB = join(work, `${name}.b.xml`);
        writeFileSync(xmlA, mk(srcLog));
        writeFileSync(xmlB, mk(dstLog));
        const c = await virsh(0, ['create', xmlA]);
        if (c.code !== 0) throw new Error(`virsh create: ${c.stderr.trim()}`);
      }
      await waitBeats(srcLog, 4);
      const srcQemu = qemuOf(name);
      const profiled = mode === 'tunnelled' && (PROFILE === 'perf' || PROFILE === 'strace');
      const attached: Attached[] = [];
      if (profiled) {
        for (const [side, pid] of [['a', daemons[0]], ['b', daemons[1]]] as const) {
          const file = join(outDir, `${tool}-${side}-${rate}-${run}.${PROFILE === 'perf' ? 'perf.data' : 'strace'}`);
          attached.push(PROFILE === 'perf' ? attachPerf(pid, file) : attachStrace(pid, file));
          const key = `${tool}/${side}`;
          perfPids[key] = pid;
          (PROFILE === 'perf' ? perfFiles : straceFiles)[key] = [...((PROFILE === 'perf' ? perfFiles : straceFiles)[key] ?? []), file];
        }
        await sleep(ATTACH_SETTLE_MS);
      }
      const sampler = new Sampler(daemons[0], 'lvb1', daemons, name);
      const cpu0 = [cpuOf(daemons[0]), cpuOf(daemons[1])];
      const logAt = tool === 'ferry' ? [read(fd[0].logPath).length, read(fd[1].logPath).length] : undefined;
      const io0 = [ioOf(daemons[0]), ioOf(daemons[1])];
      const tx0 = txOf(daemons[0], 'lvb1');
      sampler.start();
      const t0 = now();
      const m =
        tool === 'ferry'
          ? await ferry(0, ['--json', 'migrate', ...MODE_ARGS[mode], name, FERRY_URI[1]!])
          : await virsh(0, ['migrate', ...MODE_ARGS[mode], '--xml', xmlB!, name, LV_URI[1]!]);
      const t1 = now();
      const w = sampler.stop(srcQemu);
      r.window = [t0, t1];
      r.wallMs = m.ms;
      r.cpu = { a: cpuDelta(cpu0[0], cpuOf(daemons[0])), b: cpuDelta(cpu0[1], cpuOf(daemons[1])) };
      r.io = { a: ioDelta(io0[0], ioOf(daemons[0])), b: ioDelta(io0[1], ioOf(daemons[1])) };
      const tx1 = txOf(daemons[0], 'lvb1');
      if (tx0 !== undefined && tx1 !== undefined) r.linkBytes = tx1 - tx0;
      if (w.wireMs !== undefined) {
        r.wireMs = w.wireMs;
        r.wireBytes = w.wireBytes!;
        r.wireCpu = { a: w.wireCpu![0], b: w.wireCpu![1] };
      }
      if (w.qemuSrc) r.qemuSrc = w.qemuSrc;
      if (w.qemuDst) r.qemuDst = w.qemuDst;
      await Promise.all(attached.map((a) => a.stop()));
      if (m.code !== 0) throw new Error(`${tool} migrate: ${m.stderr.trim() || m.stdout.trim()}`);
      await sleep(1500);
      // ferryd's relay helper is a process of its own: its CPU (from its exit line in ferryd's log) is the daemon's.
      if (logAt) {
        for (const [i, side] of [[0, 'a'], [1, 'b']] as const) {
          const h = helperCpuInLog(read(fd[i].logPath).slice(logAt[i]));
          const cpu = r.cpu[side];
          if (cpu && h) r.cpu[side] = { ...cpu, user: cpu.user + h.user, sys: cpu.sys + h.sys };
        }
      }
      const c = checkMigrationContinuity(read(srcLog), read(dstLog));
      if (!c.ok) r.problems.push(...c.problems.map((p) => `guest check: ${p}`));
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      if (tool === 'ferry') {
        await ferry(1, ['destroy', name]).catch(() => null);
        await ferry(0, ['destroy', name]).catch(() => null);
      } else {
        await virsh(1, ['destroy', name]).catch(() => null);
        await virsh(0, ['destroy', name]).catch(() => null);
      }
    }
    // The rate-100 guest check is known to disagree by one heartbeat for both tools; only a failed migration fails the run.
    r.ok = !r.problems.some((p) => !p.startsWith('guest check:'));
    return r;
  };

  const order: Array<[Tool, Mode]> = [];
  for (const mode of MODES_PICKED) for (const tool of TOOLS) order.push([tool, mode]);
  for (const rate of RATES) {
    for (let run = 1; run <= RUNS; run++) {
      for (let k = 0; k < order.length; k++) {
        const [tool, mode] = order[(k + run) % order.length]!;
        const r = await one(tool, mode, rate, run);
        results.push(r);
        const per100 = (c?: Cpu) => (c && r.linkBytes ? ((c.user + c.sys) / (r.linkBytes / MB / 100)).toFixed(0) : '-');
        process.stderr.write(
          `rate ${rate} run ${run} ${tool.padEnd(7)} ${mode.padEnd(9)}: ${r.ok ? 'OK' : 'FAILED'} wall ${r.wallMs?.toFixed(0)} ms, ` +
            `link ${((r.linkBytes ?? 0) / MB).toFixed(0)} MB, wire ${r.wireMs?.toFixed(0)} ms ${r.wireMs ? ((r.wireBytes ?? 0) / MB / (r.wireMs / 1000)).toFixed(0) : '-'} MB/s, ` +
            `daemon CPU a ${r.cpu?.a ? r.cpu.a.user + r.cpu.a.sys : '-'} (${per100(r.cpu?.a)}/100MB) b ${r.cpu?.b ? r.cpu.b.user + r.cpu.b.sys : '-'} (${per100(r.cpu?.b)}/100MB)` +
            `${r.problems.length ? ` [${r.problems.join('; ').slice(0, 200)}]` : ''}\n`,
        );
      }
    }
  }

  // ---------------- tables
  const lines: string[] = [];
  const ok = results.filter((r) => r.ok);
  const groups = [...new Set(ok.map((r) => `${r.tool}|${r.mode}|${r.rate}`))];
  const s = (xs: Array<number | undefined>, d = 0) => fmtSummary(summarize(xs.filter((x): x is number => x !== undefined && Number.isFinite(x))), d);
  const per100 = (r: Run, c?: Cpu, part?: 'user' | 'sys') => (c && r.linkBytes ? (part ? c[part] : c.user + c.sys) / (r.linkBytes / MB / 100) : undefined);
  const rows = groups.map((g) => {
    const [tool, mode, rate] = g.split('|');
    const rs = ok.filter((r) => `${r.tool}|${r.mode}|${r.rate}` === g);
    const direct = (r: Run) => ok.find((d) => d.tool === r.tool && d.mode === 'p2p' && d.rate === r.rate && d.run === r.run);
    const tput = (r: Run) => (r.wireMs && r.wireBytes ? r.wireBytes / MB / (r.wireMs / 1000) : undefined);
    const io = (r: Run, side: 'a' | 'b') => r.io?.[side];
    const mbOf = (r: Run) => (r.linkBytes ?? 0) / MB;
    return [
      `${tool} ${mode}`,
      rate === '0' ? 'idle' : `${rate} MiB/s`,
      `${rs.length}`,
      s(rs.map((r) => r.wallMs)),
      s(rs.map((r) => mbOf(r))),
      s(rs.map(tput)),
      s(rs.map((r) => (mode === 'p2p' ? undefined : tput(r)! / (tput(direct(r) ?? r) ?? Number.NaN))), 2),
      s(rs.map((r) => per100(r, r.cpu?.a))) + ` (usr ${s(rs.map((r) => per100(r, r.cpu?.a, 'user')))} / sys ${s(rs.map((r) => per100(r, r.cpu?.a, 'sys')))})`,
      s(rs.map((r) => per100(r, r.cpu?.b))) + ` (usr ${s(rs.map((r) => per100(r, r.cpu?.b, 'user')))} / sys ${s(rs.map((r) => per100(r, r.cpu?.b, 'sys')))})`,
      s(rs.map((r) => (r.wireCpu?.a && r.wireMs ? (100 * (r.wireCpu.a.user + r.wireCpu.a.sys)) / r.wireMs : undefined))) + ' / ' + s(rs.map((r) => (r.wireCpu?.b && r.wireMs ? (100 * (r.wireCpu.b.user + r.wireCpu.b.sys)) / r.wireMs : undefined))),
      s(rs.map((r) => per100(r, r.qemuSrc))) + ' / ' + s(rs.map((r) => per100(r, r.qemuDst))),
      s(rs.map((r) => (r.cpu?.a && r.linkBytes ? r.cpu.a.minflt / mbOf(r) : undefined))) + ' / ' + s(rs.map((r) => (r.cpu?.b && r.linkBytes ? r.cpu.b.minflt / mbOf(r) : undefined))),
      ...(['a', 'b'] as const).map(
        (side) =>
          `${s(rs.map((r) => (io(r, side) ? io(r, side)!.syscr / mbOf(r) : undefined)))} r + ${s(rs.map((r) => (io(r, side) ? io(r, side)!.syscw / mbOf(r) : undefined)))} w; ` +
          `${s(rs.map((r) => (io(r, side)?.syscr ? io(r, side)!.rchar / io(r, side)!.syscr / 1024 : undefined)), 1)} / ${s(rs.map((r) => (io(r, side)?.syscw ? io(r, side)!.wchar / io(r, side)!.syscw / 1024 : undefined)), 1)} KiB`,
      ),
    ];
  });
  lines.push(
    `## Tunnelled relay: daemon CPU and syscalls (${RUNS} runs, guest ${MEMORY_MIB} MiB ws=${WS_MIB}, hosts lvb-h1/lvb-h2; profile: ${PROFILE}${TAG ? `; ${TAG}` : ''}${FERRYD_ENV.length ? `; ferryd env ${FERRYD_ENV.map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}; medians (min-max))`,
    '',
    markdownTable(
      [
        'contender',
        'workload',
        'OK',
        'wall ms',
        'MB on the link (whole command)',
        'MB/s on the link',
        'tunnelled / direct p2p of the same tool and round',
        'daemon A CPU ms per 100 MB',
        'daemon B CPU ms per 100 MB',
        'daemon A / B % of a core while streaming',
        'QEMU src / dst CPU ms per 100 MB',
        'daemon A / B minor page faults per MB',
        'daemon A: read + write syscalls per MB; KiB per read / write',
        'daemon B: same',
      ],
      rows,
    ),
  );

  // ---------------- profiles
  const profiles: Record<string, unknown> = {};
  const topTable = (title: string, m: Map<string, number>, total: number, n: number, unit: string) => {
    const sorted = [...m.entries()].sort((x, y) => y[1] - x[1]).slice(0, n);
    lines.push('', `### ${title}`, '', markdownTable(['', unit, '%'], sorted.map(([k, v]) => [k.replace(/\|/g, '\\|'), v.toFixed(unit === 'samples' ? 0 : 1), ((100 * v) / total).toFixed(1)])));
    return Object.fromEntries(sorted);
  };
  if (PROFILE === 'perf') {
    for (const [key, files] of Object.entries(perfFiles)) {
      const sum = { byCat: new Map<string, number>(), byJs: new Map<string, number>(), byLeaf: new Map<string, number>(), byLeafCat: new Map<string, number>(), total: 0 };
      for (const f of files) {
        if (!existsSync(f)) continue;
        const c = perfChains(f, perfPids[key]!);
        sum.total += c.total;
        for (const k of ['byCat', 'byJs', 'byLeaf', 'byLeafCat'] as const) for (const [n, v] of c[k]) sum[k].set(n, (sum[k].get(n) ?? 0) + v);
      }
      const bytes = results.filter((r) => r.ok && r.mode === 'tunnelled' && r.tool === key.split('/')[0]).reduce((a, r) => a + (r.linkBytes ?? 0), 0);
      const per100 = (n: number) => (n / 2 / (bytes / MB / 100)).toFixed(0);
      lines.push('', `## perf: ${key} (${files.length} tunnelled runs; ${sum.total} samples of the daemon's own threads at 2 kHz = ${(sum.total / 2).toFixed(0)} ms CPU = ${per100(sum.total)} ms per 100 MB on the link)`);
      const withMs = (m: Map<string, number>) => new Map([...m].map(([k, v]) => [`${k} (${per100(v)} ms/100 MB)`, v]));
      profiles[key] = {
        totalSamples: sum.total,
        bytes,
        byChainCategory: topTable(`${key}: what the samples were doing (whole call chain)`, withMs(sum.byCat), sum.total, 40, 'samples'),
        byLeafCategory: topTable(`${key}: self time by category of the leaf symbol`, sum.byLeafCat, sum.total, 30, 'samples'),
        byLeafSymbol: topTable(`${key}: top self symbols`, sum.byLeaf, sum.total, 30, 'samples'),
        byJsFunction: topTable(`${key}: innermost JS function on the stack (samples that have one)`, sum.byJs, sum.total, 25, 'samples'),
      };
    }
  }
  if (PROFILE === 'strace') {
    for (const [key, files] of Object.entries(straceFiles)) {
      const tot: Record<string, SyscallStat> = {};
      for (const f of files) {
        for (const [name, st] of Object.entries(straceCounts(f))) {
          const t = (tot[name] ??= { calls: 0, bytes: 0, errors: 0 });
          t.calls += st.calls;
          t.bytes += st.bytes;
          t.errors += st.errors;
        }
      }
      const bytes = results.filter((r) => r.ok && r.mode === 'tunnelled' && r.tool === key.split('/')[0]).reduce((a, r) => a + (r.linkBytes ?? 0), 0);
      const mb = bytes / MB;
      const sorted = Object.entries(tot).sort((x, y) => y[1].calls - x[1].calls);
      const all = sorted.reduce((a, [, st]) => a + st.calls, 0);
      lines.push(
        '',
        `## strace: ${key} (${files.length} tunnelled runs, ${mb.toFixed(0)} MB on the link; ${(all / mb).toFixed(0)} syscalls per MB)`,
        '',
        markdownTable(
          ['syscall', 'calls', 'per MB', 'errors (EAGAIN...)', 'bytes moved', 'KiB per successful call'],
          sorted.slice(0, 25).map(([n, st]) => [n, `${st.calls}`, (st.calls / mb).toFixed(1), `${st.errors}`, st.bytes ? `${(st.bytes / MB).toFixed(0)} MB` : '', st.bytes ? (st.bytes / Math.max(1, st.calls - st.errors) / 1024).toFixed(1) : '']),
        ),
      );
      profiles[key] = { bytes, syscalls: tot };
    }
  }
  if (PROFILE === 'cpu-prof') {
    // ferryd writes its profile when it exits (SIGTERM -> process.exit).
    fd.forEach((f) => f.stop());
    ferrydsStopped = true;
    for (const side of ['a', 'b'] as const) {
      const dir = join(outDir, `cpuprof-${side}`);
      const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
      if (files.length === 0) {
        lines.push('', `## cpu-prof: ferryd ${side}: no profile written (did it exit cleanly?)`);
        continue;
      }
      const tunnelled = results.filter((r) => r.ok && r.tool === 'ferry' && r.mode === 'tunnelled');
      const windows = tunnelled.map((r) => r.window!);
      const bytes = tunnelled.reduce((a, r) => a + (r.linkBytes ?? 0), 0);
      const p = cpuProfSelf(join(dir, files[0]!), windows);
      lines.push('', `## cpu-prof: ferryd ${side} (${tunnelled.length} tunnelled runs; ${p.totalMs.toFixed(0)} ms of non-idle samples inside the commands = ${(p.totalMs / (bytes / MB / 100)).toFixed(0)} ms per 100 MB; ${p.outsideMs.toFixed(0)} ms outside them)`);
      profiles[`ferry/${side}`] = {
        file: join(dir, files[0]!),
        totalMs: p.totalMs,
        bytes,
        byCategory: topTable(`ferryd ${side}: self time by category`, p.byCat, p.totalMs, 20, 'ms'),
        byFunction: topTable(`ferryd ${side}: top self functions`, p.byFn, p.totalMs, 30, 'ms'),
      };
    }
  }
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  writeFileSync(join(outDir, 'report.md'), `${text}\n`);
  const file = writeResults(`profile-tunnel-${PROFILE}${TAG ? `-${TAG}` : ''}`, { machine: machineInfo(), runs: RUNS, rates: RATES, tools: TOOLS, modes: MODES_PICKED, profile: PROFILE, results, profiles });
  process.stdout.write(`\nresults: ${file}; raw profiles: ${outDir}\n`);
});
