/** Hostile domain XML: malformed, enormous, entity tricks, awkward names and paths, absurd sizes. */
import { Rng } from './rng.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

function domain(o: { name?: string; memory?: string; vcpu?: string; disk?: string; extra?: string; prolog?: string }): string {
  return `${o.prolog ?? ''}<domain type='qemu'><name>${o.name ?? 'fuzz-guest'}</name><memory unit='KiB'>${o.memory ?? '262148'}</memory><vcpu>${o.vcpu ?? '1'}</vcpu>` +
    `<os><type arch='x86_64' machine='pc'>hvm</type><kernel>/nonexistent/fuzz.elf</kernel></os><devices>${o.disk ?? ''}${o.extra ?? ''}</devices></domain>`;
}

export interface XmlCase {
  kind: string;
  xml: string;
}

/** The XML fuzz case number `i` of seed `seed`. */
export function xmlCase(seed: number, i: number): XmlCase {
  const rng = new Rng(seed * 7_000_003 + i);
  switch (rng.int(0, 11)) {
    case 0: {
      const whole = domain({});
      return { kind: 'truncated', xml: whole.slice(0, rng.int(0, whole.length - 1)) };
    }
    case 1: return { kind: 'random bytes', xml: rng.bytes(rng.int(0, 512)).toString('latin1') };
    case 2: return { kind: 'enormous', xml: domain({ extra: `<!-- ${'x'.repeat(rng.int(1, 3) * 1024 * 1024)} -->` }) };
    case 3: {
      const ents = Array.from({ length: 10 }, (_, k) => `<!ENTITY l${k} "${k === 0 ? 'lol' : `&l${k - 1};`.repeat(10)}">`).join('');
      return { kind: 'entity expansion', xml: domain({ prolog: `<?xml version="1.0"?><!DOCTYPE domain [${ents}]>`, name: '&l9;' }) };
    }
    case 4: return { kind: 'external entity', xml: domain({ prolog: `<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>`, name: '&x;' }) };
    case 5: return { kind: 'awkward name', xml: domain({ name: esc(rng.nasty(300)) }) };
    case 6: return { kind: 'NUL or control character reference in name', xml: domain({ name: `a&#${rng.pick([0, 1, 8, 27, 0xfffe])};b` }) };
    case 7: {
      const path = rng.pick(['/tmp/a,b', "/tmp/it's", '/tmp/"q"', '../../etc/passwd', 'relative.img', '/tmp/x\nfile=/etc/shadow', 'json:{"driver":"file"}', `/tmp/${rng.nasty(30)}`]);
      return { kind: 'awkward disk path', xml: domain({ disk: `<disk type='file' device='disk'><driver name='qemu' type='${rng.pick(['raw', 'raw', 'raw', 'qcow2', 'vmdk', "raw,x=y"])}'/><source file='${esc(path)}'/><target dev='${esc(rng.pick(['vda', 'vda', 'vdb', '../vdb', 'vd,a', 'sd']))}' bus='virtio'/></disk>` }) };
    }
    case 8: return { kind: 'absurd sizes', xml: domain({ memory: rng.pick(['1e30', '-1', '0', '99999999999999999999999', 'NaN', '4', '18446744073709551616']), vcpu: rng.pick(['0', '-3', '1000000000', '1.5', 'x']) }) };
    case 9: {
      const n = rng.int(100, 20000);
      return { kind: 'deep nesting', xml: domain({ extra: '<a>'.repeat(n) + '</a>'.repeat(n) }) };
    }
    case 10: return { kind: 'many elements', xml: domain({ extra: `<serial type='pty'><target port='0'/></serial>`.repeat(rng.int(100, 5000)) }) };
    default: return { kind: 'awkward attribute values', xml: domain({ extra: `<interface type='${esc(rng.nasty(20))}'><mac address='${esc(rng.nasty(20))}'/><model type='${esc(rng.nasty(10))}'/></interface>` }) };
  }
}
