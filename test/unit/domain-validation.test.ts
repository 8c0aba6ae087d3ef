import { DOMParser } from '@xmldom/xmldom';
import { afterEach, describe, it, expect, vi } from 'vitest';
import { DomainDocument, MAX_XML_BYTES, domainNameProblem, validateDomainName } from '../../src/domain/index.js';
import { FerryError, type ErrorCode } from '../../src/errors/index.js';
import { expectRefused as expectRefusedBy, refusal as refusalOf } from '../support/refusal.js';

/** Parts of a small domain; each is a complete element string, '' to leave it out. */
interface Parts {
  head?: string;
  name?: string;
  uuid?: string;
  memory?: string;
  vcpu?: string;
  os?: string;
  extra?: string;
  devices?: string;
}

function domain(p: Parts = {}): string {
  return [
    p.head ?? "<domain type='kvm'>",
    p.name ?? '<name>guest</name>',
    p.uuid ?? '<uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>',
    p.memory ?? "<memory unit='MiB'>256</memory>",
    p.vcpu ?? '',
    p.os ?? "<os><type arch='x86_64' machine='pc'>hvm</type></os>",
    p.extra ?? '',
    p.devices === undefined ? '' : `<devices>${p.devices}</devices>`,
    '</domain>',
  ].join('\n');
}

/** The refusal of document `xml`. */
const refusal = (xml: string): FerryError => refusalOf(() => DomainDocument.parse(xml));

/** Asserts `xml` is refused with `code` and a message containing every fragment. */
function expectRefused(xml: string, code: ErrorCode, ...fragments: string[]): void {
  expectRefusedBy(() => DomainDocument.parse(xml), code, ...fragments);
}

type Case = [title: string, xml: string, code: ErrorCode, ...fragments: string[]];

function table(cases: Case[]): void {
  it.each(cases)('%s', (_title, xml, code, ...fragments) => expectRefused(xml, code, ...fragments));
}

describe('well-formedness', () => {
  table([
    ['mismatched end tag', '<domain><name>x</domain>', 'xml_error', 'malformed XML', 'line 1'],
    ['plain junk text', 'this is not xml', 'xml_error', 'malformed XML'],
    ['junk after the root', `${domain()}junk`, 'xml_error', 'malformed XML'],
    ['junk before the root', `junk${domain()}`, 'xml_error', 'malformed XML'],
    ['empty input', '', 'xml_error', 'malformed XML'],
    ['two roots', `${domain()}${domain()}`, 'xml_error', 'malformed XML'],
    ['unterminated document', '<domain type="kvm"><name>x</name>', 'xml_error', 'malformed XML'],
    ['unquoted attribute', domain({ head: '<domain type=kvm>' }), 'xml_error', 'malformed XML'],
    ['bare ampersand', domain({ extra: '<description>a & b</description>' }), 'xml_error', '&amp;'],
    ['undefined entity', domain({ extra: '<description>&nbsp;</description>' }), 'xml_error', '&nbsp;'],
    ['NUL character', domain({ extra: '<description>a\u0000b</description>' }), 'xml_error', 'NUL'],
    ['other control character', domain({ extra: '<description>a\u0007b</description>' }), 'xml_error', 'U+0007'],
    ['NUL by reference', domain({ extra: '<description>a&#0;b</description>' }), 'xml_error', '&#0;'],
    ['control character by reference', domain({ extra: "<metadata><x:a xmlns:x='urn:x' v='&#x1b;'/></metadata>" }), 'xml_error', '&#x1b;'],
    ['unbound namespace prefix', domain({ extra: '<metadata><x:a/></metadata>' }), 'xml_error', 'malformed XML'],
    ['duplicate attribute', domain({ head: "<domain type='kvm' type='qemu'>" }), 'xml_error', 'malformed XML'],
    ['wrong root element', "<vm type='kvm'><name>x</name></vm>", 'xml_error', '<domain>', '<vm>'],
    ['root in a namespace', "<domain xmlns='urn:other' type='kvm'><name>x</name></domain>", 'xml_error', 'namespace', "'urn:other'"],
    ['stray text in <domain>', domain({ extra: 'oops' }), 'xml_error', "'oops'", '<domain>'],
    ['stray text in <devices>', domain({ devices: 'x' }), 'xml_error', '<devices>'],
    ['duplicate <name>', domain({ extra: '<name>again</name>' }), 'xml_error', 'more than one <name>'],
    ['duplicate <devices>', domain({ devices: '', extra: '<devices/>' }), 'xml_error', 'more than one <devices>'],
  ]);
});

describe('safety limits', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Watches the XML parser: a document the prescan refuses never reaches it, so nothing in it is expanded or built. */
  const parserCalls = () => vi.spyOn(DOMParser.prototype, 'parseFromString');

  it('refuses billion laughs before the parser expands anything', () => {
    const entities = ['<!ENTITY lol0 "lol">'];
    for (let i = 1; i <= 9; i++) entities.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
    const xml = `<?xml version="1.0"?>\n<!DOCTYPE domain [\n${entities.join('\n')}\n]>\n${domain({ extra: '<description>&lol9;</description>' })}`;
    const parsed = parserCalls();
    expectRefused(xml, 'xml_error', 'DOCTYPE');
    expect(parsed).not.toHaveBeenCalled();
  });

  it('refuses any DOCTYPE, including external entities', () => {
    expectRefused(`<!DOCTYPE domain>\n${domain()}`, 'xml_error', 'DOCTYPE');
    expectRefused(
      `<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${domain({ extra: '<description>&xxe;</description>' })}`,
      'xml_error',
      'DOCTYPE',
    );
  });

  it(`refuses input over ${MAX_XML_BYTES} bytes and accepts input just under`, () => {
    const base = domain({ extra: '<description></description>' });
    const fill = MAX_XML_BYTES - Buffer.byteLength(base);
    const fits = domain({ extra: `<description>${'x'.repeat(fill)}</description>` });
    expect(Buffer.byteLength(fits)).toBe(MAX_XML_BYTES);
    expect(DomainDocument.parse(fits).def.description).toHaveLength(fill);
    expectRefused(domain({ extra: `<description>${'x'.repeat(fill + 1)}</description>` }), 'xml_error', 'larger than');
  });

  it('counts bytes, not characters', () => {
    // 'é' is two bytes in UTF-8: fewer than MAX_XML_BYTES characters, more bytes.
    const xml = domain({ extra: `<description>${'é'.repeat(MAX_XML_BYTES / 2)}</description>` });
    expect(xml.length).toBeLessThan(MAX_XML_BYTES);
    expectRefused(xml, 'xml_error', 'larger than');
  });

  it('refuses nesting deeper than 64 levels before the parser builds it, and accepts 64', () => {
    // <domain> and <metadata> are levels 1 and 2.
    const nest = (levels: number) => `${'<x:n>'.repeat(levels)}${'</x:n>'.repeat(levels)}`;
    const ok = domain({ extra: `<metadata xmlns:x='urn:x'>${nest(62)}</metadata>` });
    expect(() => DomainDocument.parse(ok)).not.toThrow();
    expectRefused(domain({ extra: `<metadata xmlns:x='urn:x'>${nest(63)}</metadata>` }), 'xml_error', 'deeper than', '64');
    const parsed = parserCalls();
    expectRefused(`<domain>${'<a>'.repeat(140_000)}${'</a>'.repeat(140_000)}</domain>`, 'xml_error', 'deeper than');
    expect(parsed).not.toHaveBeenCalled();
  });

  it('is not fooled by markup-like text in comments, CDATA and attribute values', () => {
    const xml = domain({
      extra:
        "<!-- <!DOCTYPE x> & <a> --><description><![CDATA[<!DOCTYPE y> & <b>]]></description>" +
        "<metadata><x:a xmlns:x='urn:x' v='<&amp;>'/></metadata>",
    });
    expect(xml).toContain("v='<&amp;>'");
    expectRefused(xml, 'xml_error', 'malformed XML');
    const fine = xml.replace("v='<&amp;>'", "v='a>b/'");
    expect(DomainDocument.parse(fine).def.description).toBe('<!DOCTYPE y> & <b>');
  });
});

describe('<domain type>', () => {
  table([
    ['missing type', domain({ head: '<domain>' }), 'xml_error', "'type'", '<domain>'],
    ['xen', domain({ head: "<domain type='xen'>" }), 'config_unsupported', "'xen'", '<domain type>'],
    ['unknown type', domain({ head: "<domain type='bogus'>" }), 'xml_error', "'bogus'", '<domain type>'],
  ]);
});

describe('<name>', () => {
  const named = (name: string) => domain({ name: `<name>${name}</name>` });
  table([
    ['missing', domain({ name: '' }), 'xml_error', 'missing <name>'],
    ['empty', named(''), 'xml_error', '<name>', 'empty'],
    ['too long', named('a'.repeat(201)), 'xml_error', '<name>', '201 characters'],
    ['slash', named('a/b'), 'xml_error', '<name>', "'/'"],
    ['backslash', named('a\\b'), 'xml_error', '<name>', "'\\'"],
    ['comma', named('a,b'), 'xml_error', '<name>', "','"],
    ['DEL', named('a&#x7f;b'), 'xml_error', '<name>', 'U+007F'],
    ['C1 control character', named('a\u0085b'), 'xml_error', '<name>', 'U+0085'],
    ['character XML forbids', named('a&#7;b'), 'xml_error', '&#7;'],
    ['tab', named('a&#9;b'), 'xml_error', '<name>', 'U+0009'],
    ['newline inside', named('a&#10;b'), 'xml_error', '<name>', 'U+000A'],
    ['leading dot', named('.hidden'), 'xml_error', '<name>', "'.'"],
    ['dot dot', named('..'), 'xml_error', '<name>', "'.'"],
    ['leading dash', named('-rf'), 'xml_error', '<name>', "'-'"],
    ['leading space', named(' pad'), 'xml_error', '<name>', 'whitespace'],
    ['trailing newline', named('pad\n'), 'xml_error', '<name>', 'whitespace'],
    ['element inside', named('a<b/>'), 'xml_error', '<name>', 'only text'],
  ]);

  it('accepts 200 characters, inner spaces and non-ASCII', () => {
    expect(DomainDocument.parse(named('a'.repeat(200))).def.name).toHaveLength(200);
    expect(DomainDocument.parse(named('gäst 1_x.y-z')).def.name).toBe('gäst 1_x.y-z');
    expect(DomainDocument.parse(named('日本語'.repeat(22))).def.name).toHaveLength(66);
  });

  it('limits names to 200 UTF-8 bytes, since names become file names', () => {
    expect(DomainDocument.parse(named('é'.repeat(100))).def.name).toHaveLength(100);
    expect(domainNameProblem('é'.repeat(101))).toContain('202 bytes');
    expect(() => DomainDocument.parse(named('日本語'.repeat(66)))).toThrow(/bytes/);
  });

  it('exposes the rules for other layers', () => {
    expect(domainNameProblem('ok-name')).toBeUndefined();
    expect(domainNameProblem('a\u0000b')).toContain('NUL');
    expect(domainNameProblem('\ud800')).toContain('Unicode');
    expect(() => validateDomainName('a,b')).toThrow(FerryError);
    try {
      validateDomainName('a,b');
    } catch (err) {
      expect((err as FerryError).code).toBe('invalid_arg');
      expect((err as FerryError).message).toContain("','");
    }
  });
});

describe('<uuid>', () => {
  table([
    ['not hex', domain({ uuid: '<uuid>abc</uuid>' }), 'xml_error', "'abc'", '<uuid>'],
    ['too short', domain({ uuid: '<uuid>0f8fad5b-d9cb-469f-a165-70867728950</uuid>' }), 'xml_error', '<uuid>'],
    ['braces', domain({ uuid: '<uuid>{0f8fad5b-d9cb-469f-a165-70867728950e}</uuid>' }), 'xml_error', '<uuid>'],
    ['duplicate', domain({ extra: '<uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>' }), 'xml_error', 'more than one <uuid>'],
  ]);
});

describe('memory', () => {
  const mem = (xml: string) => domain({ memory: xml });
  table([
    ['missing <memory>', mem(''), 'xml_error', 'missing <memory>'],
    ['not a number', mem("<memory unit='KiB'>abc</memory>"), 'xml_error', "invalid value 'abc' for <memory unit='KiB'>: expected a non-negative integer"],
    ['negative', mem('<memory>-1</memory>'), 'xml_error', "invalid value '-1' for <memory>"],
    ['fraction', mem("<memory unit='GiB'>1.5</memory>"), 'xml_error', "<memory unit='GiB'>", 'non-negative integer'],
    ['hex', mem('<memory>0x100000</memory>'), 'xml_error', '<memory>'],
    ['empty', mem('<memory unit="KiB"></memory>'), 'xml_error', '<memory'],
    ['unknown unit', mem("<memory unit='KiBB'>1024</memory>"), 'xml_error', "unknown unit 'KiBB'"],
    ['empty unit', mem("<memory unit=''>1024</memory>"), 'xml_error', 'unknown unit'],
    ['under 1 MiB', mem("<memory unit='KiB'>1023</memory>"), 'xml_error', 'at least 1024 KiB'],
    ['zero', mem('<memory>0</memory>'), 'xml_error', 'at least 1024 KiB'],
    ['16 TiB', mem("<memory unit='TiB'>16</memory>"), 'xml_error', 'less than 16 TiB'],
    ['absurd', mem("<memory unit='EiB'>99999999999</memory>"), 'xml_error', '<memory'],
    [
      'currentMemory above memory',
      mem("<memory unit='MiB'>256</memory><currentMemory unit='MiB'>512</currentMemory>"),
      'xml_error',
      '<currentMemory>',
      'more than <memory>',
    ],
    [
      'maxMemory below memory',
      mem("<memory unit='MiB'>256</memory><maxMemory slots='16' unit='MiB'>128</maxMemory>"),
      'xml_error',
      '<maxMemory>',
    ],
    ['bad hard_limit', domain({ extra: "<memtune><hard_limit unit='G'>lots</hard_limit></memtune>" }), 'xml_error', "<hard_limit unit='G'>"],
    ['element inside <memory>', mem('<memory><x/>1024</memory>'), 'xml_error', '<memory>', 'only text'],
  ]);

  it('keeps an odd KiB size exactly (no rounding to MiB)', () => {
    const doc = DomainDocument.parse(mem("<memory unit='KiB'>262148</memory>"));
    expect(doc.def.memoryKiB).toBe(262148);
    expect(doc.def.currentMemoryKiB).toBe(262148);
    expect(doc.toXml()).toContain("<memory unit='KiB'>262148</memory>\n<currentMemory unit='KiB'>262148</currentMemory>");
  });

  it('accepts just under 16 TiB and rounds bytes up to whole KiB', () => {
    expect(DomainDocument.parse(mem(`<memory>${16 * 1024 ** 3 - 1}</memory>`)).def.memoryKiB).toBe(16 * 1024 ** 3 - 1);
    const doc = DomainDocument.parse(mem("<memory unit='b'>1048577</memory>"));
    expect(doc.def.memoryKiB).toBe(1025);
    expect(doc.toXml()).toContain("<memory unit='KiB'>1025</memory>");
  });

  it('normalises <maxMemory> and <hard_limit>, keeping their other attributes', () => {
    const doc = DomainDocument.parse(
      mem("<memory unit='GiB'>1</memory><maxMemory slots='16' unit='GiB'>4</maxMemory>") +
        '',
    );
    expect(doc.toXml()).toContain("<maxMemory slots='16' unit='KiB'>4194304</maxMemory>");
    const limited = DomainDocument.parse(domain({ extra: "<memtune><hard_limit unit='G'>2</hard_limit></memtune>" }));
    expect(limited.def.hardLimitKiB).toBe(2097152);
    expect(limited.toXml()).toContain("<hard_limit unit='KiB'>2097152</hard_limit>");
  });
});

describe('<vcpu>', () => {
  table([
    ['zero', domain({ vcpu: '<vcpu>0</vcpu>' }), 'xml_error', "'0'", '<vcpu>', '1 to 255'],
    ['too many', domain({ vcpu: '<vcpu>256</vcpu>' }), 'xml_error', '<vcpu>'],
    ['not a number', domain({ vcpu: '<vcpu>two</vcpu>' }), 'xml_error', '<vcpu>'],
    ['current above count', domain({ vcpu: "<vcpu current='5'>4</vcpu>" }), 'xml_error', '<vcpu current>'],
    ['bad placement', domain({ vcpu: "<vcpu placement='random'>4</vcpu>" }), 'xml_error', '<vcpu placement>'],
  ]);

  it('accepts 255 and keeps placement and current', () => {
    const doc = DomainDocument.parse(domain({ vcpu: "<vcpu placement='static' current='1'>255</vcpu>" }));
    expect(doc.def.vcpus).toBe(255);
    expect(doc.toXml()).toContain("<vcpu placement='static' current='1'>255</vcpu>");
  });
});

describe('<os>', () => {
  const os = (inner: string, attrs = '') => domain({ os: `<os${attrs}>${inner}</os>` });
  const hvm = "<type arch='x86_64' machine='pc'>hvm</type>";
  table([
    ['missing <os>', domain({ os: '' }), 'xml_error', 'missing <os>'],
    ['missing <type>', os('<boot dev="hd"/>'), 'xml_error', 'missing <type>'],
    ['type xen', os('<type>xen</type>'), 'config_unsupported', "'xen'", '<os><type>'],
    ['type bogus', os('<type>bogus</type>'), 'xml_error', '<os><type>'],
    ['arch aarch64', os("<type arch='aarch64'>hvm</type>"), 'config_unsupported', "'aarch64'", '<os><type arch>'],
    ['machine with a comma', os("<type machine='pc,accel=tcg'>hvm</type>"), 'xml_error', '<os><type machine>'],
    ['relative kernel', os(`${hvm}<kernel>vmlinuz</kernel>`), 'xml_error', '<kernel>', 'absolute'],
    ['kernel with newline', os(`${hvm}<kernel>/boot/vmlinuz\n</kernel>`), 'xml_error', '<kernel>', 'line break'],
    ['initrd without kernel', os(`${hvm}<initrd>/boot/initrd</initrd>`), 'xml_error', '<initrd>', '<kernel>'],
    ['cmdline without kernel', os(`${hvm}<cmdline>console=ttyS0</cmdline>`), 'xml_error', '<cmdline>', '<kernel>'],
    ['UEFI loader', os(`${hvm}<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>`), 'config_unsupported', '<loader>'],
    ['nvram', os(`${hvm}<nvram>/var/lib/nvram.fd</nvram>`), 'config_unsupported', '<nvram>'],
    ['firmware efi', os(hvm, " firmware='efi'"), 'config_unsupported', "'efi'", '<os firmware>'],
    ['bad boot device', os(`${hvm}<boot dev='usb'/>`), 'xml_error', "'usb'", '<os><boot dev>'],
    [
      'os boot together with per-device boot',
      domain({ os: `<os>${hvm}<boot dev='hd'/></os>`, devices: "<disk><source file='/a'/><target dev='vda'/><boot order='1'/></disk>" }),
      'xml_error',
      '<boot',
      '<disk>',
    ],
  ]);

  it('reads direct kernel boot', () => {
    const doc = DomainDocument.parse(
      os(`${hvm}<kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd><cmdline>console=ttyS0 root=/dev/vda1 quiet</cmdline><boot dev='network'/>`),
    );
    expect(doc.def.os).toEqual({
      type: 'hvm',
      arch: 'x86_64',
      machine: 'pc',
      kernel: '/boot/vmlinuz',
      initrd: '/boot/initrd.img',
      cmdline: 'console=ttyS0 root=/dev/vda1 quiet',
      boot: ['network'],
    });
    expect(DomainDocument.parse(os("<type arch='i686'>hvm</type>")).def.os.arch).toBe('i686');
  });
});

describe('features, cpu, clock, lifecycle', () => {
  table([
    ['duplicate feature', domain({ extra: '<features><acpi/><acpi/></features>' }), 'xml_error', '<acpi>'],
    ['bad cpu mode', domain({ extra: "<cpu mode='fast'/>" }), 'xml_error', "'fast'", '<cpu mode>'],
    ['clock variable', domain({ extra: "<clock offset='variable' adjustment='0'/>" }), 'config_unsupported', '<clock offset>'],
    ['clock bogus', domain({ extra: "<clock offset='mars'/>" }), 'xml_error', '<clock offset>'],
    ['coredump on reboot', domain({ extra: '<on_reboot>coredump-destroy</on_reboot>' }), 'xml_error', '<on_reboot>'],
    ['unknown crash action', domain({ extra: '<on_crash>explode</on_crash>' }), 'xml_error', "'explode'", '<on_crash>'],
    // Accepted and then ignored before: refused now, naming the element and the value.
    ['poweroff restart', domain({ extra: '<on_poweroff>restart</on_poweroff>' }), 'config_unsupported', "'restart'", '<on_poweroff>'],
    ['poweroff preserve', domain({ extra: '<on_poweroff>preserve</on_poweroff>' }), 'config_unsupported', "'preserve'", '<on_poweroff>'],
    ['poweroff rename-restart', domain({ extra: '<on_poweroff>rename-restart</on_poweroff>' }), 'config_unsupported', "'rename-restart'", '<on_poweroff>'],
    ['crash restart', domain({ extra: '<on_crash>restart</on_crash>' }), 'config_unsupported', "'restart'", '<on_crash>'],
    ['crash preserve', domain({ extra: '<on_crash>preserve</on_crash>' }), 'config_unsupported', "'preserve'", '<on_crash>'],
    ['crash rename-restart', domain({ extra: '<on_crash>rename-restart</on_crash>' }), 'config_unsupported', "'rename-restart'", '<on_crash>'],
    ['crash coredump-destroy', domain({ extra: '<on_crash>coredump-destroy</on_crash>' }), 'config_unsupported', "'coredump-destroy'", '<on_crash>'],
    ['crash coredump-restart', domain({ extra: '<on_crash>coredump-restart</on_crash>' }), 'config_unsupported', "'coredump-restart'", '<on_crash>'],
    // Refused when the guest started before; now when it is defined.
    ['reboot rename-restart', domain({ extra: '<on_reboot>rename-restart</on_reboot>' }), 'config_unsupported', "'rename-restart'", '<on_reboot>'],
    ['title with newline', domain({ extra: '<title>a\nb</title>' }), 'xml_error', '<title>'],
  ]);

  it('reads them', () => {
    const def = DomainDocument.parse(
      domain({
        extra:
          "<features><acpi/><apic/><pae/><x:y xmlns:x='urn:x'/></features><cpu mode='maximum'/><clock offset='localtime'/>" +
          '<on_poweroff> destroy </on_poweroff><on_reboot>preserve</on_reboot><on_crash>destroy</on_crash>',
      }),
    ).def;
    expect(def).toMatchObject({
      features: ['acpi', 'apic', 'pae'],
      cpuMode: 'maximum',
      clockOffset: 'localtime',
      onPoweroff: 'destroy',
      onReboot: 'preserve',
      onCrash: 'destroy',
    });
  });
});

describe('<disk>', () => {
  const disk = (xml: string) => domain({ devices: xml });
  table([
    ['network disk', disk("<disk type='network'><source protocol='nbd' name='x'/><target dev='vda'/></disk>"), 'config_unsupported', "'network'", "disk 'vda'"],
    ['volume disk', disk("<disk type='volume'><source pool='p' volume='v'/><target dev='vda'/></disk>"), 'config_unsupported', "'volume'"],
    ['unknown disk type', disk("<disk type='cloud'><target dev='vda'/></disk>"), 'xml_error', "'cloud'", '<disk type>'],
    ['floppy', disk("<disk device='floppy'><source file='/f.img'/><target dev='vda'/></disk>"), 'config_unsupported', "'floppy'"],
    ['driver tap', disk("<disk><driver name='tap'/><source file='/a'/><target dev='vda'/></disk>"), 'config_unsupported', '<driver name>'],
    ['vmdk', disk("<disk><driver name='qemu' type='vmdk'/><source file='/a'/><target dev='vda'/></disk>"), 'config_unsupported', "'vmdk'", '<driver type>'],
    ['bad cache', disk("<disk><driver cache='fast'/><source file='/a'/><target dev='vda'/></disk>"), 'xml_error', "'fast'", '<driver cache>', "disk 'vda'"],
    ['bad io', disk("<disk><driver io='default'/><source file='/a'/><target dev='vda'/></disk>"), 'xml_error', '<driver io>'],
    ['bad error_policy', disk("<disk><driver error_policy='panic'/><source file='/a'/><target dev='vda'/></disk>"), 'xml_error', '<driver error_policy>'],
    ['rerror enospace', disk("<disk><driver rerror_policy='enospace'/><source file='/a'/><target dev='vda'/></disk>"), 'xml_error', '<driver rerror_policy>'],
    ['missing source', disk("<disk type='file' device='disk'><target dev='vda'/></disk>"), 'xml_error', 'missing <source>', "disk 'vda'"],
    ['relative source', disk("<disk><source file='images/a.qcow2'/><target dev='vda'/></disk>"), 'xml_error', '<source file>', 'absolute'],
    ['newline in source', disk("<disk><source file='/a&#10;b'/><target dev='vda'/></disk>"), 'xml_error', '<source file>', 'line break'],
    ['block with file=', disk("<disk type='block'><source file='/dev/sda'/><target dev='vda'/></disk>"), 'xml_error', "'dev'", '<source>'],
    ['missing target', disk("<disk><source file='/a'/></disk>"), 'xml_error', 'missing <target>', 'disk #1'],
    ['xen target name', disk("<disk><source file='/a'/><target dev='xvda'/></disk>"), 'xml_error', "'xvda'", '<target dev>'],
    ['partition target name', disk("<disk><source file='/a'/><target dev='vda1'/></disk>"), 'xml_error', "'vda1'"],
    [
      'duplicate target',
      disk("<disk><source file='/a'/><target dev='vda'/></disk><disk><source file='/b'/><target dev='vda'/></disk>"),
      'xml_error',
      "two disks use <target dev='vda'>",
    ],
    ['usb bus', disk("<disk><source file='/a'/><target dev='sda' bus='usb'/></disk>"), 'config_unsupported', "'usb'", '<target bus>'],
    ['bogus bus', disk("<disk><source file='/a'/><target dev='sda' bus='pcie'/></disk>"), 'xml_error', '<target bus>'],
    [
      'backing store without format',
      disk("<disk><driver type='qcow2'/><source file='/a'/><backingStore type='file'><source file='/b'/></backingStore><target dev='vda'/></disk>"),
      'xml_error',
      'missing <format>',
      "backing layer 1 of disk 'vda'",
    ],
    [
      'backing store in vmdk',
      disk(
        "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='file'><format type='vmdk'/><source file='/b'/></backingStore><target dev='vda'/></disk>",
      ),
      'config_unsupported',
      "'vmdk'",
    ],
    [
      'network backing store',
      disk(
        "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='network'><format type='raw'/><source protocol='nbd'/></backingStore><target dev='vda'/></disk>",
      ),
      'config_unsupported',
      "'network'",
      '<backingStore type>',
    ],
    [
      'raw image with a backing file',
      disk("<disk><source file='/a'/><backingStore type='file'><format type='raw'/><source file='/b'/></backingStore><target dev='vda'/></disk>"),
      'xml_error',
      'raw image cannot have a backing file',
    ],
    [
      'relative backing path',
      disk(
        "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='file'><format type='raw'/><source file='b.raw'/></backingStore><target dev='vda'/></disk>",
      ),
      'xml_error',
      '<source file>',
      'backing layer 1',
    ],
  ]);

  it('accepts an empty cdrom, with or without a path-less <source>', () => {
    const def = DomainDocument.parse(
      disk("<disk device='cdrom'><target dev='hdc'/></disk><disk device='cdrom'><source startupPolicy='optional'/><target dev='hdd'/></disk>"),
    ).def;
    expect(def.disks.map((d) => d.sourcePath)).toEqual([undefined, undefined]);
  });
});

describe('<serial> and <console>', () => {
  const devices = (xml: string) => domain({ devices: xml });
  table([
    ['tcp serial', devices("<serial type='tcp'><source mode='bind' host='0' service='4555'/></serial>"), 'config_unsupported', "'tcp'", '<serial type>'],
    ['bogus serial type', devices("<serial type='carrier-pigeon'/>"), 'xml_error', "'carrier-pigeon'"],
    ['file without source', devices("<serial type='file'/>"), 'xml_error', 'missing <source>', 'serial #1'],
    ['relative file', devices("<serial type='file'><source path='log.txt'/></serial>"), 'xml_error', '<source path>', 'absolute'],
    ['bad append', devices("<serial type='file'><source path='/l' append='yes'/></serial>"), 'xml_error', '<source append>'],
    ['bad unix mode', devices("<serial type='unix'><source mode='listen' path='/s'/></serial>"), 'xml_error', '<source mode>'],
    ['bad port', devices("<serial type='pty'><target port='one'/></serial>"), 'xml_error', '<target port>'],
    ['port 4', devices("<serial type='pty'><target port='4'/></serial>"), 'config_unsupported', "port='4'"],
    ['duplicate port', devices("<serial type='pty'><target port='1'/></serial><serial type='null'><target port='1'/></serial>"), 'xml_error', "port='1'"],
    ['five serials', devices("<serial type='null'/>".repeat(5)), 'config_unsupported', 'too many <serial>'],
    ['pci-serial', devices("<serial type='pty'><target type='pci-serial'/></serial>"), 'config_unsupported', "'pci-serial'"],
    ['virtio console', devices("<console type='pty'><target type='virtio' port='0'/></console>"), 'config_unsupported', "'virtio'", 'console #1'],
    ['two consoles on one port', devices("<console type='pty'/><console type='pty'><target type='serial' port='0'/></console>"), 'xml_error', 'serial port 0'],
  ]);
});

describe('<interface>', () => {
  const nic = (xml: string) => domain({ devices: xml });
  table([
    ['vhostuser', nic("<interface type='vhostuser'><source type='unix' path='/tmp/s' mode='client'/></interface>"), 'config_unsupported', "'vhostuser'", '<interface type>'],
    ['bridge without source', nic("<interface type='bridge'/>"), 'xml_error', "<source bridge='NAME'/>"],
    ['bridge source without name', nic("<interface type='bridge'><source network='x'/></interface>"), 'xml_error', 'bridge'],
    ['bridge name too long', nic("<interface type='bridge'><source bridge='abcdefghijklmnop'/></interface>"), 'xml_error', "'abcdefghijklmnop'", 'at most 15'],
    ['bridge name with slash', nic("<interface type='bridge'><source bridge='br/0'/></interface>"), 'xml_error', "'/'"],
    ['bridge name with space', nic("<interface type='bridge'><source bridge='br 0'/></interface>"), 'xml_error', 'whitespace'],
    ['bridge name with colon', nic("<interface type='bridge'><source bridge='br0:1'/></interface>"), 'xml_error', "':'"],
    ['bridge name dot', nic("<interface type='bridge'><source bridge='.'/></interface>"), 'xml_error', "'.' and '..'"],
    ['bridge name dot dot', nic("<interface type='bridge'><source bridge='..'/></interface>"), 'xml_error', "'.' and '..'"],
    ['bridge name empty', nic("<interface type='bridge'><source bridge=''/></interface>"), 'xml_error', 'empty'],
    ['bridge name option-like', nic("<interface type='bridge'><source bridge='-br'/></interface>"), 'xml_error', "'-'"],
    ['bridge name non-ASCII', nic("<interface type='bridge'><source bridge='brü'/></interface>"), 'xml_error', 'ASCII'],
    ['tap name too long', nic("<interface type='ethernet'><target dev='tap-0123456789ab'/></interface>"), 'xml_error', '<target dev>', 'at most 15'],
    ['tap name with tab', nic("<interface type='ethernet'><target dev='tap&#9;0'/></interface>"), 'xml_error', 'whitespace'],
    ['ethernet with a source', nic("<interface type='ethernet'><source bridge='br0'/></interface>"), 'config_unsupported', '<source>', "type='bridge'"],
    ['unmanaged tap', nic("<interface type='ethernet'><target dev='tap0' managed='no'/></interface>"), 'config_unsupported', "'no'", '<target managed>'],
    ['script', nic("<interface type='bridge'><source bridge='br0'/><script path='/etc/qemu-ifup'/></interface>"), 'config_unsupported', '<script>'],
    ['openvswitch port', nic("<interface type='bridge'><source bridge='ovs0'/><virtualport type='openvswitch'/></interface>"), 'config_unsupported', '<virtualport>'],
    ['vlan tag', nic("<interface type='bridge'><source bridge='br0'/><vlan><tag id='42'/></vlan></interface>"), 'config_unsupported', '<vlan>'],
    ['mtu', nic("<interface type='bridge'><source bridge='br0'/><mtu size='9000'/></interface>"), 'config_unsupported', '<mtu>', "bridge's MTU"],
    ['tap backend device', nic("<interface type='ethernet'><backend tap='/dev/net/tun2'/></interface>"), 'config_unsupported', '<backend tap>'],
    ['vhost backend device', nic("<interface type='bridge'><source bridge='br0'/><backend vhost='/dev/vhost-net'/></interface>"), 'config_unsupported', '<backend vhost>'],
    ['bridge with a wrong type word', nic("<interface type='Bridge'><source bridge='br0'/></interface>"), 'xml_error', "'Bridge'"],
    ['network', nic("<interface type='network'><source network='default'/></interface>"), 'config_unsupported', "'network'"],
    ['direct', nic("<interface type='direct'><source dev='eth0' mode='bridge'/></interface>"), 'config_unsupported', "'direct'"],
    ['unknown type', nic("<interface type='wormhole'/>"), 'xml_error', "'wormhole'"],
    ['missing type', nic('<interface/>'), 'xml_error', "'type'", '<interface>'],
    ['bad MAC', nic("<interface type='user'><mac address='52:54:00:zz:00:01'/></interface>"), 'xml_error', '<mac address>'],
    ['multicast MAC', nic("<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>"), 'xml_error', 'multicast'],
    ['ne2k model', nic("<interface type='user'><model type='ne2k_pci'/></interface>"), 'config_unsupported', "'ne2k_pci'", '<model type>'],
    ['passt backend', nic("<interface type='user'><backend type='passt'/></interface>"), 'config_unsupported', "'passt'"],
  ]);

  it('reads bridge and ethernet interfaces, and dumps them back unchanged', () => {
    const devices =
      "<interface type='bridge'><mac address='52:54:00:AB:cd:02'/><source bridge='brguest'/><target dev='tapguest'/><model type='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>" +
      "<interface type='ethernet'><mac address='52:54:00:ab:cd:03'/><model type='e1000'/></interface>" +
      "<interface type='bridge'><source bridge='br0,vhost=on'/></interface>";
    const doc = DomainDocument.parse(nic(devices));
    expect(doc.def.interfaces).toEqual([
      { type: 'bridge', mac: '52:54:00:ab:cd:02', model: 'virtio', bridge: 'brguest', targetDev: 'tapguest' },
      { type: 'ethernet', mac: '52:54:00:ab:cd:03', model: 'e1000' },
      // Linux allows ',' in a name; it never reaches QEMU's comma syntax (JSON -netdev).
      { type: 'bridge', bridge: 'br0,vhost=on' },
    ]);
    const xml = doc.toXml();
    expect(xml).toContain("<source bridge='brguest'/><target dev='tapguest'/><model type='virtio'/><address type='pci'");
    expect(DomainDocument.parse(xml).toXml()).toBe(xml);
  });

  it('names the tap in <target dev> of the live definition, where libvirt writes it', () => {
    const doc = DomainDocument.parse(
      nic(
        "<interface type='user'/>\n" +
          "    <interface type='bridge'>\n      <mac address='52:54:00:ab:cd:04'/>\n      <source bridge='brguest'/>\n      <model type='virtio'/>\n    </interface>\n" +
          "    <interface type='ethernet'><target dev='vnet7'/></interface>",
      ),
    );
    const live = doc.withInterfaceTarget(1, 'vnet0').withInterfaceTarget(2, 'vnet1');
    expect(live.def.interfaces.map((n) => n.targetDev)).toEqual([undefined, 'vnet0', 'vnet1']);
    expect(live.toXml()).toContain("<source bridge='brguest'/>\n      <target dev='vnet0'/>\n      <model type='virtio'/>");
    expect(live.toXml()).toContain("<interface type='ethernet'><target dev='vnet1'/></interface>");
    expect(doc.def.interfaces[1]!.targetDev).toBeUndefined();
    expect(() => doc.withInterfaceTarget(0, 'vnet0')).toThrow(/no tap interface/);
    expect(() => doc.withInterfaceTarget(1, 'bad name')).toThrow(/whitespace/);
  });

  it('reads user networking with each allowed model', () => {
    for (const model of ['virtio', 'e1000', 'e1000e', 'rtl8139']) {
      const def = DomainDocument.parse(nic(`<interface type='user'><mac address='52:54:00:AB:cd:01'/><model type='${model}'/></interface>`)).def;
      expect(def.interfaces).toEqual([{ type: 'user', mac: '52:54:00:ab:cd:01', model }]);
    }
  });
});

describe('devices Ferry does not run', () => {
  it('keeps them verbatim without refusing', () => {
    const devices =
      "<graphics type='vnc' port='-1'/><video><model type='qxl'/></video><input type='keyboard' bus='usb'/>" +
      "<controller type='scsi' model='virtio-scsi'/><hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>" +
      "<sound model='ich9'/><smartcard mode='passthrough' type='spicevmc'/><channel type='spicevmc'><target type='virtio'/></channel>" +
      "<tpm model='tpm-crb'/><parallel type='pty'/><future-device shiny='yes'><part/></future-device>";
    const xml = domain({ memory: "<memory unit='KiB'>262144</memory><currentMemory unit='KiB'>262144</currentMemory>", devices });
    const doc = DomainDocument.parse(xml);
    expect(doc.toXml()).toBe(`${xml}\n`);
    expect(doc.def.disks).toEqual([]);
  });
});
