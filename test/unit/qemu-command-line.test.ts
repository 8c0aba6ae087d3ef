import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DiskDef, DomainDef } from '../../src/domain/types.js';
import { buildQemuArgs, buildQemuCommand, type QemuLaunchOptions } from '../../src/qemu/command-line.js';
import { escapeLegacyValue } from '../../src/qemu/option-syntax.js';
import { codeOf } from '../support/refusal.js';

const HOSTILE = `/tmp/a,b=c"d'e ,file.driver=nbd`;

function domain(over: Partial<DomainDef> = {}): DomainDef {
  return {
    type: 'qemu',
    name: 'guest1',
    uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
    memoryKiB: 131072,
    currentMemoryKiB: 131072,
    vcpus: 2,
    os: { type: 'hvm' },
    features: ['acpi'],
    onPoweroff: 'destroy',
    onReboot: 'restart',
    onCrash: 'destroy',
    disks: [],
    serials: [],
    consoles: [],
    interfaces: [],
    ...over,
  };
}

function disk(over: Partial<DiskDef> = {}): DiskDef {
  return {
    device: 'disk',
    type: 'file',
    format: 'qcow2',
    sourcePath: '/var/lib/ferry/images/g.qcow2',
    targetDev: 'vda',
    targetBus: 'virtio',
    readonly: false,
    shareable: false,
    ...over,
  };
}

const OPTS: QemuLaunchOptions = {
  accel: 'tcg',
  qmpSocketPath: '/run/ferry/g/qmp.sock',
  serialLogPath: '/var/log/ferry/g/serial.log',
  runDir: '/run/ferry/g',
};

/** Values of every occurrence of `opt` in argv. */
function values(args: string[], opt: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => {
    if (a === opt && i + 1 < args.length) out.push(args[i + 1] as string);
  });
  return out;
}

function jsonValues(args: string[], opt: string): Array<Record<string, unknown>> {
  return values(args, opt).map((v) => {
    expect(v.startsWith('{')).toBe(true);
    return JSON.parse(v) as Record<string, unknown>;
  });
}

/**
 * QemuOpts' reading of a legacy option: a single comma separates, a doubled
 * comma is a literal one. Returns the leading bare word (if any) and pairs.
 */
function parseLegacy(s: string): { lead: string | undefined; params: Map<string, string> } {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === ',') {
      if (s[i + 1] === ',') {
        cur += ',';
        i++;
      } else {
        parts.push(cur);
        cur = '';
      }
    } else {
      cur += s[i];
    }
  }
  parts.push(cur);
  let lead: string | undefined;
  const params = new Map<string, string>();
  parts.forEach((p, i) => {
    const eq = p.indexOf('=');
    if (eq === -1) {
      expect(i).toBe(0);
      lead = p;
    } else {
      const key = p.slice(0, eq);
      expect(params.has(key), `duplicate key ${key} in ${s}`).toBe(false);
      params.set(key, p.slice(eq + 1));
    }
  });
  return { lead, params };
}

describe('buildQemuArgs basics', () => {
  it('builds a minimal machine with no defaults and no display', () => {
    const args = buildQemuArgs(domain(), OPTS);
    expect(args).toContain('-nodefaults');
    expect(args).toContain('-no-user-config');
    expect(values(args, '-display')).toEqual(['none']);
    expect(values(args, '-machine')).toEqual(['pc,acpi=on']);
    expect(values(args, '-accel')).toEqual(['tcg']);
    expect(values(args, '-cpu')).toEqual(['qemu64']);
    expect(values(args, '-m')).toEqual(['131072k']);
    expect(values(args, '-smp')).toEqual(['2']);
    expect(values(args, '-rtc')).toEqual(['base=utc']);
    expect(values(args, '-uuid')).toEqual(['4dea22b3-1d52-d8f3-2516-782e98ab3fa0']);
    expect(args).not.toContain('-S');
    expect(args).not.toContain('-daemonize');
    expect(args).not.toContain('-no-shutdown');
  });

  it('keeps a memory size that is not a MiB multiple exactly', () => {
    expect(values(buildQemuArgs(domain({ memoryKiB: 1001 }), OPTS), '-m')).toEqual(['1001k']);
  });

  it('adds -S, -incoming and -pidfile from the launch options', () => {
    const args = buildQemuArgs(domain(), { ...OPTS, paused: true, incoming: 'defer', pidFilePath: '/run/p,x.pid' });
    expect(args).toContain('-S');
    expect(values(args, '-incoming')).toEqual(['defer']);
    expect(values(args, '-pidfile')).toEqual(['/run/p,x.pid']);
  });

  it('maps the machine, acpi feature, clock and accel', () => {
    const args = buildQemuArgs(domain({ os: { type: 'hvm', machine: 'q35' }, features: [], clockOffset: 'localtime' }), {
      ...OPTS,
      accel: 'kvm',
    });
    expect(values(args, '-machine')).toEqual(['q35,acpi=off']);
    expect(values(args, '-accel')).toEqual(['kvm']);
    expect(values(args, '-rtc')).toEqual(['base=localtime']);
  });

  it('refuses a machine type that is not a plain identifier', () => {
    expect(codeOf(() => buildQemuArgs(domain({ os: { type: 'hvm', machine: 'pc,accel=kvm' } }), OPTS))).toBe('config_unsupported');
  });

  it('chooses the CPU model per accelerator', () => {
    const cpu = (mode: DomainDef['cpuMode'], accel: 'kvm' | 'tcg'): string | undefined =>
      values(buildQemuArgs(domain({ cpuMode: mode }), { ...OPTS, accel }), '-cpu')[0];
    expect(cpu('host-passthrough', 'kvm')).toBe('host');
    expect(cpu('host-passthrough', 'tcg')).toBe('max');
    expect(cpu('host-model', 'tcg')).toBe('max');
    expect(cpu('maximum', 'kvm')).toBe('max');
    expect(cpu(undefined, 'kvm')).toBe('qemu64');
    expect(cpu('custom', 'tcg')).toBe('qemu64');
  });

  it('maps lifecycle actions', () => {
    expect(buildQemuArgs(domain({ onReboot: 'destroy' }), OPTS).join(' ')).toContain('-action reboot=shutdown');
    const pres = buildQemuArgs(domain({ onReboot: 'preserve' }), OPTS);
    expect(pres).toContain('-no-shutdown');
    expect(pres.join(' ')).toContain('-action reboot=shutdown');
    expect(codeOf(() => buildQemuArgs(domain({ onReboot: 'coredump-restart' }), OPTS))).toBe('config_unsupported');
  });

  it('refuses the power-off and crash actions it cannot carry out rather than ignore them', () => {
    for (const onPoweroff of ['restart', 'preserve', 'rename-restart'] as const) {
      expect(codeOf(() => buildQemuArgs(domain({ onPoweroff }), OPTS)), onPoweroff).toBe('config_unsupported');
    }
    for (const onCrash of ['restart', 'preserve', 'rename-restart', 'coredump-destroy', 'coredump-restart'] as const) {
      expect(codeOf(() => buildQemuArgs(domain({ onCrash }), OPTS)), onCrash).toBe('config_unsupported');
    }
  });

  it('passes kernel, initrd and cmdline as whole argv elements', () => {
    const args = buildQemuArgs(
      domain({ os: { type: 'hvm', kernel: HOSTILE, initrd: `${HOSTILE}.img`, cmdline: 'ws=16 rate=0 hb=500,x=y' } }),
      OPTS,
    );
    expect(values(args, '-kernel')).toEqual([HOSTILE]);
    expect(values(args, '-initrd')).toEqual([`${HOSTILE}.img`]);
    expect(values(args, '-append')).toEqual(['ws=16 rate=0 hb=500,x=y']);
  });

  it('refuses a kernel command line with a newline', () => {
    expect(codeOf(() => buildQemuArgs(domain({ os: { type: 'hvm', cmdline: 'a\nb' } }), OPTS))).toBe('config_unsupported');
  });

  it('refuses bad uuids, sizes and architectures', () => {
    expect(codeOf(() => buildQemuArgs(domain({ uuid: 'x,y' }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ memoryKiB: 0 }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ vcpus: 1.5 }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ os: { type: 'hvm', arch: 'aarch64' } }), OPTS))).toBe('config_unsupported');
  });
});

describe('injection safety', () => {
  it('keeps a hostile disk path inside a JSON string, exactly', () => {
    const args = buildQemuArgs(domain({ disks: [disk({ sourcePath: HOSTILE })] }), OPTS);
    const nodes = jsonValues(args, '-blockdev');
    expect(nodes).toHaveLength(2);
    const proto = nodes.find((n) => n.driver === 'file');
    expect(proto?.filename).toBe(HOSTILE);
    expect(proto?.['node-name']).toBe('drive-vda');
    // Nothing from the path leaked into other keys (no file.driver etc.).
    expect(Object.keys(proto ?? {}).sort()).toEqual(['cache', 'driver', 'filename', 'node-name', 'read-only']);
    const fmt = nodes.find((n) => n.driver === 'qcow2');
    expect(fmt?.file).toBe('drive-vda');
    // And no argv element outside JSON mentions any part of it.
    for (const a of args) {
      if (a.startsWith('{')) continue;
      expect(a).not.toContain('file.driver');
      expect(a).not.toContain('b=c');
    }
  });

  it('escapes every comma of user strings in legacy options', () => {
    const def = domain({
      name: 'we,ird=name',
      serials: [
        { element: 'serial', type: 'file', path: HOSTILE, targetPort: 0 },
        { element: 'serial', type: 'unix', path: `${HOSTILE}.sock`, mode: 'bind', targetPort: 1 },
        { element: 'serial', type: 'unix', path: `${HOSTILE}.c`, mode: 'connect', targetPort: 2 },
      ],
    });
    const args = buildQemuArgs(def, { ...OPTS, qmpSocketPath: `${HOSTILE}.qmp`, serialLogPath: `${HOSTILE}.log` });

    const name = parseLegacy(values(args, '-name')[0] as string);
    expect(name.lead).toBeUndefined();
    expect([...name.params]).toEqual([['guest', 'we,ird=name']]);

    const chardevs = values(args, '-chardev').map(parseLegacy);
    const byId = new Map(chardevs.map((c) => [c.params.get('id'), c]));
    const qmp = byId.get('charmonitor');
    expect(qmp?.lead).toBe('socket');
    expect(Object.fromEntries(qmp?.params ?? [])).toEqual({
      id: 'charmonitor',
      path: `${HOSTILE}.qmp`,
      server: 'on',
      wait: 'off',
    });
    const s0 = byId.get('charserial0');
    expect(s0?.lead).toBe('file');
    expect(Object.fromEntries(s0?.params ?? [])).toEqual({
      id: 'charserial0',
      path: HOSTILE,
      append: 'off',
      logfile: `${HOSTILE}.log`,
      logappend: 'on',
    });
    const s1 = byId.get('charserial1');
    expect(Object.fromEntries(s1?.params ?? [])).toEqual({
      id: 'charserial1',
      path: `${HOSTILE}.sock`,
      server: 'on',
      wait: 'off',
    });
    const s2 = byId.get('charserial2');
    expect(s2?.params.get('path')).toBe(`${HOSTILE}.c`);
    expect(s2?.params.get('server')).toBe('off');

    // Every non-JSON argv element that carries a comma carries only doubled
    // ones where the user's text is: no user comma is left single.
    for (const a of args) {
      if (a.startsWith('{')) continue;
      expect(a.replace(/,,/g, '')).not.toMatch(/,(file\.driver|b=c| file)/);
    }
  });

  it('refuses NUL and newlines in legacy values', () => {
    for (const bad of ['/tmp/a\nb', '/tmp/a\0b', '/tmp/a\rb']) {
      expect(
        codeOf(() => buildQemuArgs(domain({ serials: [{ element: 'serial', type: 'file', path: bad, targetPort: 0 }] }), OPTS)),
      ).toBe('config_unsupported');
    }
    expect(codeOf(() => buildQemuArgs(domain({ name: 'a\nb' }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain(), { ...OPTS, qmpSocketPath: '/x\n' }))).toBe('config_unsupported');
    expect(codeOf(() => escapeLegacyValue('a\0', 'x'))).toBe('config_unsupported');
  });

  it('refuses NUL in a JSON value', () => {
    expect(codeOf(() => buildQemuArgs(domain({ disks: [disk({ sourcePath: '/a\0b' })] }), OPTS))).toBe('config_unsupported');
  });

  it('refuses target names that would make odd node names', () => {
    for (const t of ['vda,x', 'VDA', 'v"a', 'a'.repeat(13), '']) {
      expect(codeOf(() => buildQemuArgs(domain({ disks: [disk({ targetDev: t })] }), OPTS))).toBe('config_unsupported');
    }
  });

  it('escapeLegacyValue doubles commas and nothing else', () => {
    expect(escapeLegacyValue('a,b,,c=d', 'x')).toBe('a,,b,,,,c=d');
  });
});

describe('disks', () => {
  const cacheOf = (cache: DiskDef['cache']): { node: unknown; wc: unknown } => {
    const args = buildQemuArgs(domain({ disks: [disk({ cache })] }), OPTS);
    const [proto] = jsonValues(args, '-blockdev');
    const dev = jsonValues(args, '-device').find((d) => d.driver === 'virtio-blk-pci');
    return { node: proto?.cache, wc: dev?.['write-cache'] };
  };

  it('maps cache modes to cache.direct, cache.no-flush and write-cache', () => {
    expect(cacheOf(undefined)).toEqual({ node: { direct: false, 'no-flush': false }, wc: undefined });
    expect(cacheOf('none')).toEqual({ node: { direct: true, 'no-flush': false }, wc: 'on' });
    expect(cacheOf('writeback')).toEqual({ node: { direct: false, 'no-flush': false }, wc: 'on' });
    expect(cacheOf('writethrough')).toEqual({ node: { direct: false, 'no-flush': false }, wc: 'off' });
    expect(cacheOf('directsync')).toEqual({ node: { direct: true, 'no-flush': false }, wc: 'off' });
    expect(cacheOf('unsafe')).toEqual({ node: { direct: false, 'no-flush': true }, wc: 'on' });
  });

  it('maps io and requires O_DIRECT for native', () => {
    const args = buildQemuArgs(domain({ disks: [disk({ cache: 'none', io: 'native' })] }), OPTS);
    expect(jsonValues(args, '-blockdev')[0]?.aio).toBe('native');
    expect(codeOf(() => buildQemuArgs(domain({ disks: [disk({ io: 'native' })] }), OPTS))).toBe('config_unsupported');
  });

  it('builds an explicit backing chain deepest first, backing layers read-only', () => {
    const d = disk({
      sourcePath: '/img/top.qcow2',
      backingStore: {
        type: 'file',
        format: 'qcow2',
        sourcePath: '/img/mid.qcow2',
        backingStore: { type: 'block', format: 'raw', sourcePath: '/dev/vg/base' },
      },
    });
    const nodes = jsonValues(buildQemuArgs(domain({ disks: [d] }), OPTS), '-blockdev');
    expect(nodes.map((n) => n['node-name'])).toEqual(['drive-vda-2', 'fmt-vda-2', 'drive-vda-1', 'fmt-vda-1', 'drive-vda', 'fmt-vda']);
    expect(nodes[0]).toMatchObject({ driver: 'host_device', filename: '/dev/vg/base', 'read-only': true });
    expect(nodes[1]).toMatchObject({ driver: 'raw', file: 'drive-vda-2', 'read-only': true });
    expect(nodes[1]).not.toHaveProperty('backing');
    expect(nodes[3]).toMatchObject({ driver: 'qcow2', backing: 'fmt-vda-2', 'read-only': true });
    expect(nodes[5]).toMatchObject({ driver: 'qcow2', backing: 'fmt-vda-1', 'read-only': false });
  });

  it('lets qcow2 open its own backing file when none is given', () => {
    const nodes = jsonValues(buildQemuArgs(domain({ disks: [disk()] }), OPTS), '-blockdev');
    expect(nodes[1]).not.toHaveProperty('backing');
  });

  it('refuses a backing store under a raw image', () => {
    const d = disk({ format: 'raw', backingStore: { type: 'file', format: 'raw', sourcePath: '/x' } });
    expect(codeOf(() => buildQemuArgs(domain({ disks: [d] }), OPTS))).toBe('config_unsupported');
  });

  it('puts error policies and share-rw on the device', () => {
    const args = buildQemuArgs(
      domain({
        disks: [
          disk({ targetDev: 'vda', errorPolicy: 'stop', shareable: true }),
          disk({ targetDev: 'vdb', errorPolicy: 'enospace' }),
          disk({ targetDev: 'vdc', errorPolicy: 'report', rerrorPolicy: 'ignore' }),
        ],
      }),
      OPTS,
    );
    const devs = jsonValues(args, '-device');
    expect(devs[0]).toMatchObject({ driver: 'virtio-blk-pci', drive: 'fmt-vda', id: 'disk-vda', werror: 'stop', rerror: 'stop', 'share-rw': true });
    expect(devs[1]).toMatchObject({ werror: 'enospc' });
    expect(devs[1]).not.toHaveProperty('rerror');
    expect(devs[2]).toMatchObject({ werror: 'report', rerror: 'ignore' });
    expect(devs[2]).not.toHaveProperty('share-rw');
  });

  it('marks read-only disks read-only on both nodes', () => {
    const nodes = jsonValues(buildQemuArgs(domain({ disks: [disk({ readonly: true })] }), OPTS), '-blockdev');
    expect(nodes.every((n) => n['read-only'] === true)).toBe(true);
  });

  it('places IDE, SATA, SCSI disks and cdroms', () => {
    const args = buildQemuArgs(
      domain({
        disks: [
          disk({ targetDev: 'hdb', targetBus: 'ide', format: 'raw' }),
          disk({ targetDev: 'hdc', targetBus: 'ide', device: 'cdrom', format: 'raw', sourcePath: undefined }),
          disk({ targetDev: 'sdc', targetBus: 'scsi' }),
          disk({ targetDev: 'sdb', targetBus: 'sata' }),
          disk({ targetDev: 'sdd', targetBus: 'scsi', device: 'cdrom', format: 'raw', sourcePath: '/iso/x.iso' }),
        ],
      }),
      OPTS,
    );
    const devs = jsonValues(args, '-device');
    expect(devs.map((d) => d.driver)).toEqual(['ich9-ahci', 'virtio-scsi-pci', 'ide-hd', 'ide-cd', 'scsi-hd', 'ide-hd', 'scsi-cd']);
    expect(devs[2]).toMatchObject({ bus: 'ide.0', unit: 1, drive: 'fmt-hdb' });
    expect(devs[3]).toMatchObject({ bus: 'ide.1', unit: 0, id: 'disk-hdc' });
    expect(devs[3]).not.toHaveProperty('drive');
    expect(devs[4]).toMatchObject({ bus: 'scsi0.0', 'scsi-id': 2, lun: 0, drive: 'fmt-sdc' });
    expect(devs[5]).toMatchObject({ bus: 'sata0.1', drive: 'fmt-sdb' });
    const cdNodes = jsonValues(args, '-blockdev').filter((n) => String(n['node-name']).endsWith('sdd'));
    expect(cdNodes.every((n) => n['read-only'] === true)).toBe(true);
  });

  it('uses AHCI ports for IDE on q35', () => {
    const args = buildQemuArgs(
      domain({ os: { type: 'hvm', machine: 'pc-q35-7.2' }, disks: [disk({ targetDev: 'hdc', targetBus: 'ide', format: 'raw' })] }),
      OPTS,
    );
    expect(jsonValues(args, '-device')[0]).toMatchObject({ driver: 'ide-hd', bus: 'ide.2', unit: 0 });
  });

  it('refuses impossible disk set-ups', () => {
    const bad: Array<Partial<DiskDef>> = [
      { targetDev: 'hde', targetBus: 'ide' },
      { targetDev: 'sdg', targetBus: 'sata' },
      { targetDev: 'xda', targetBus: 'ide' },
      { device: 'cdrom', targetBus: 'virtio' },
      { sourcePath: undefined },
      { targetDev: 'hda', targetBus: 'ide', readonly: true },
    ];
    for (const b of bad) expect(codeOf(() => buildQemuArgs(domain({ disks: [disk(b)] }), OPTS)), JSON.stringify(b)).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ disks: [disk(), disk()] }), OPTS))).toBe('config_unsupported');
  });
});

describe('serial ports and network', () => {
  it('logs only the lowest serial port and maps each to its COM index', () => {
    const args = buildQemuArgs(
      domain({
        serials: [
          { element: 'serial', type: 'null', targetPort: 1 },
          { element: 'serial', type: 'pty', targetPort: 0 },
        ],
      }),
      OPTS,
    );
    const chardevs = values(args, '-chardev').map(parseLegacy);
    const s0 = chardevs.find((c) => c.params.get('id') === 'charserial0');
    const s1 = chardevs.find((c) => c.params.get('id') === 'charserial1');
    expect(s0?.lead).toBe('pty');
    expect(s0?.params.get('logfile')).toBe(OPTS.serialLogPath);
    expect(s1?.lead).toBe('null');
    expect(s1?.params.has('logfile')).toBe(false);
    const devs = jsonValues(args, '-device');
    expect(devs).toEqual([
      { driver: 'isa-serial', chardev: 'charserial0', id: 'serial0', index: 0 },
      { driver: 'isa-serial', chardev: 'charserial1', id: 'serial1', index: 1 },
    ]);
  });

  it('uses a lone console as serial port 0', () => {
    const args = buildQemuArgs(domain({ consoles: [{ element: 'console', type: 'pty', targetPort: 0 }] }), OPTS);
    expect(jsonValues(args, '-device')).toEqual([{ driver: 'isa-serial', chardev: 'charserial0', id: 'serial0', index: 0 }]);
  });

  it('refuses out-of-range or duplicate serial ports', () => {
    expect(codeOf(() => buildQemuArgs(domain({ serials: [{ element: 'serial', type: 'null', targetPort: 4 }] }), OPTS))).toBe(
      'config_unsupported',
    );
    const dup = { element: 'serial' as const, type: 'null' as const, targetPort: 0 };
    expect(codeOf(() => buildQemuArgs(domain({ serials: [dup, dup] }), OPTS))).toBe('config_unsupported');
  });

  it('builds user networking with JSON netdev and device', () => {
    const args = buildQemuArgs(
      domain({ interfaces: [{ type: 'user', mac: '52:54:00:AB:cd:01', model: 'virtio' }, { type: 'user' }] }),
      OPTS,
    );
    expect(jsonValues(args, '-netdev')).toEqual([
      { type: 'user', id: 'hostnet0' },
      { type: 'user', id: 'hostnet1' },
    ]);
    expect(jsonValues(args, '-device')).toEqual([
      { driver: 'virtio-net-pci', netdev: 'hostnet0', id: 'net0', mac: '52:54:00:ab:cd:01' },
      { driver: 'rtl8139', netdev: 'hostnet1', id: 'net1' },
    ]);
  });

  it('attaches bridge and ethernet NICs to their named taps by JSON netdev, with no scripts', () => {
    const args = buildQemuArgs(
      domain({
        interfaces: [
          { type: 'bridge', bridge: 'brguest', targetDev: 'vnet0', mac: '52:54:00:ab:cd:01', model: 'virtio' },
          { type: 'ethernet', targetDev: 't,vhost=on', model: 'e1000' },
        ],
      }),
      OPTS,
    );
    expect(jsonValues(args, '-netdev')).toEqual([
      { type: 'tap', id: 'hostnet0', ifname: 'vnet0', script: 'no', downscript: 'no' },
      // A comma in a tap name is a character of a JSON string, not an option separator.
      { type: 'tap', id: 'hostnet1', ifname: 't,vhost=on', script: 'no', downscript: 'no' },
    ]);
    expect(jsonValues(args, '-device')).toEqual([
      { driver: 'virtio-net-pci', netdev: 'hostnet0', id: 'net0', mac: '52:54:00:ab:cd:01' },
      { driver: 'e1000', netdev: 'hostnet1', id: 'net1' },
    ]);
    // Every -netdev is one JSON object: QEMU never splits it at the comma.
    for (const [i, a] of args.entries()) if (args[i - 1] === '-netdev') expect(a.startsWith('{') && a.endsWith('}')).toBe(true);
    // The bridge is ferryd's business (ip link set TAP master BRIDGE), never QEMU's.
    expect(args.join(' ')).not.toContain('brguest');
  });

  it('refuses a tap NIC without a tap name or with a name Linux would refuse', () => {
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'bridge', bridge: 'br0' }] }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'ethernet', targetDev: 'a/b' }] }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'ethernet', targetDev: 'x'.repeat(16) }] }), OPTS))).toBe('config_unsupported');
  });

  it('refuses bad MACs and unknown models', () => {
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'user', mac: '52:54:00:ab:cd' }] }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'user', mac: '01:00:5e:00:00:01' }] }), OPTS))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuArgs(domain({ interfaces: [{ type: 'user', model: 'virtio,x=y' }] }), OPTS))).toBe('config_unsupported');
  });

  it('QMP goes through an escaped chardev and a control monitor', () => {
    const args = buildQemuArgs(domain(), OPTS);
    expect(values(args, '-mon')).toEqual(['chardev=charmonitor,id=monitor,mode=control']);
    expect(args).not.toContain('-qmp');
  });
});

describe('buildQemuCommand binary resolution', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-qemu-bin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds qemu-system-x86_64 on PATH', () => {
    const bin = join(dir, 'qemu-system-x86_64');
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    expect(buildQemuCommand(domain(), OPTS, `relative/dir::${dir}`).binary).toBe(bin);
  });

  it('uses <emulator> when set', () => {
    const bin = join(dir, 'my-qemu');
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    expect(buildQemuCommand(domain({ emulator: bin }), OPTS, '').binary).toBe(bin);
    expect(codeOf(() => buildQemuCommand(domain({ emulator: 'qemu' }), OPTS, ''))).toBe('config_unsupported');
    expect(codeOf(() => buildQemuCommand(domain({ emulator: join(dir, 'nope') }), OPTS, ''))).toBe('config_unsupported');
  });

  it('reports a missing QEMU clearly', () => {
    expect(codeOf(() => buildQemuCommand(domain(), OPTS, join(dir, 'empty')))).toBe('operation_failed');
  });
});
