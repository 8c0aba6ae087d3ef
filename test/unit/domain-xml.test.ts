import { describe, it, expect } from 'vitest';
import { DomainDocument } from '../../src/domain/index.js';
import { refusal } from '../support/refusal.js';

/**
 * A `virsh dumpxml` of a running guest, as libvirt 10 writes it (apostrophes
 * in libvirt's own elements, double quotes inside <metadata> where libxml2
 * formats), plus the header comment libvirt puts in /etc/libvirt/qemu, a
 * comment among the devices, an unknown element and unknown attributes.
 * `vary` lets a test swap in un-normalised spellings.
 */
function dumpxml(vary: { uuid?: string; mac?: string; memory?: string; currentMemory?: string; hardLimit?: string } = {}): string {
  const uuid = vary.uuid ?? '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14';
  const mac = vary.mac ?? '52:54:00:3a:7c:01';
  const memory = vary.memory ?? "<memory unit='KiB'>4194304</memory>";
  const currentMemory = vary.currentMemory ?? "\n  <currentMemory unit='KiB'>2097152</currentMemory>";
  const hardLimit = vary.hardLimit ?? "<hard_limit unit='KiB'>6291456</hard_limit>";
  return `<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit fedora40
or other application using the libvirt API.
-->

<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>fedora40</name>
  <uuid>${uuid}</uuid>
  <title>Fedora 40 build box</title>
  <description>Builds RPMs at night.
Second line: a &lt; b &amp;&amp; c &gt; d.</description>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://fedoraproject.org/fedora/40"/>
    </libosinfo:libosinfo>
    <app:placement xmlns:app="https://example.org/ferry/test" rack="r12" slot='4'>
      <app:note lang="en">keep on SSD</app:note>
    </app:placement>
  </metadata>
  ${memory}${currentMemory}
  <memtune>
    ${hardLimit}
    <soft_limit unit='KiB'>5242880</soft_limit>
  </memtune>
  <vcpu placement='static' current='2'>4</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    <boot dev='hd'/>
    <boot dev='cdrom'/>
    <bootmenu enable='no'/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state='off'/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'>
    <topology sockets='1' dies='1' clusters='1' cores='4' threads='1'/>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <!-- system disk: an overlay on the golden image -->
    <disk type='file' device='disk' model='virtio-non-transitional'>
      <driver name='qemu' type='qcow2' cache='none' io='native' discard='unmap' error_policy='stop' rerror_policy='report'/>
      <source file='/var/lib/libvirt/images/fedora40.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/golden/fedora40-base.qcow2'/>
        <backingStore type='file' index='4'>
          <format type='raw'/>
          <source file='/var/lib/libvirt/images/golden/fedora40-root.raw'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='directsync' io='native'/>
      <source dev='/dev/vg0/build-scratch' index='1'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
      <alias name='virtio-disk1'/>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-0'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <alias name='usb'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'>
      <alias name='pcie.0'/>
    </controller>
    <controller type='sata' index='0'>
      <alias name='ide'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <interface type='user'>
      <mac address='${mac}'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/4'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <console type='pty' tty='/dev/pts/4'>
      <source path='/dev/pts/4'/>
      <target type='serial' port='0'/>
      <alias name='serial0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/channel/7-fedora40/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <alias name='input0'/>
      <address type='usb' bus='0' port='1'/>
    </input>
    <input type='mouse' bus='ps2'>
      <alias name='input1'/>
    </input>
    <graphics type='spice' port='5900' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
      <image compression='off'/>
    </graphics>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <alias name='video0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <stats period='10'/>
      <alias name='balloon0'/>
      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <alias name='rng0'/>
    </rng>
    <watchdog model='itco' action='reset'/>
    <frobnicator flux='capacitor' gigawatts='1.21'/>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c101,c584</label>
    <imagelabel>system_u:object_r:svirt_image_t:s0:c101,c584</imagelabel>
  </seclabel>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+107:+107</label>
    <imagelabel>+107:+107</imagelabel>
  </seclabel>
  <qemu:commandline>
    <qemu:arg value='-fw_cfg'/>
    <qemu:arg value='name=opt/com.example/config,string=a=1,b=2'/>
    <qemu:env name='QEMU_AUDIO_DRV' value='none'/>
  </qemu:commandline>
</domain>
`;
}

/** The canonical form of the fixture: what every spelling of it must come out as. */
const CANONICAL = dumpxml();

/** A small runnable domain, pretty-printed like libvirt writes it. */
function small(inner = '', head = "<domain type='kvm'>"): string {
  return `${head}
  <name>small</name>
  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>
  <memory unit='KiB'>262148</memory>
  <currentMemory unit='KiB'>262148</currentMemory>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
${inner}</domain>
`;
}

describe('round trip', () => {
  it('writes virsh dumpxml output back byte for byte', () => {
    expect(DomainDocument.parse(CANONICAL).toXml()).toBe(CANONICAL);
  });

  it('changes only what it normalises: UUID and MAC case, memory units, missing <currentMemory>', () => {
    const input = dumpxml({
      uuid: '5C4E7A638F274B6E9C1D3A2F0E8B7D14',
      mac: '52:54:00:3A:7C:01',
      memory: "<memory unit='GiB'>4</memory>",
      currentMemory: '',
      hardLimit: '<hard_limit>6291456</hard_limit>',
    });
    const expected = dumpxml({
      currentMemory: "\n  <currentMemory unit='KiB'>4194304</currentMemory>",
      hardLimit: "<hard_limit unit='KiB'>6291456</hard_limit>",
    });
    expect(input).not.toBe(expected);
    expect(DomainDocument.parse(input).toXml()).toBe(expected);
  });

  it('keeps comments, namespaces, unknown elements and attributes in their places', () => {
    const out = DomainDocument.parse(CANONICAL).toXml();
    const order = [
      '<!--\nWARNING',
      "<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
      '<libosinfo:os id="http://fedoraproject.org/fedora/40"/>',
      `<app:placement xmlns:app="https://example.org/ferry/test" rack="r12" slot='4'>`,
      '<soft_limit',
      '<!-- system disk: an overlay on the golden image -->',
      "<disk type='file' device='disk' model='virtio-non-transitional'>",
      "<graphics type='spice'",
      "<frobnicator flux='capacitor' gigawatts='1.21'/>",
      "<seclabel type='dynamic' model='dac' relabel='yes'>",
      "<qemu:arg value='name=opt/com.example/config,string=a=1,b=2'/>",
    ];
    let at = -1;
    for (const fragment of order) {
      const next = out.indexOf(fragment);
      expect(next, fragment).toBeGreaterThan(at);
      at = next;
    }
  });

  it('is idempotent: parsing its own output gives the same XML and model', () => {
    const once = DomainDocument.parse(dumpxml({ currentMemory: '', memory: "<memory unit='G'>4</memory>" }));
    const twice = DomainDocument.parse(once.toXml());
    expect(twice.toXml()).toBe(once.toXml());
    expect(twice.def).toEqual(once.def);
  });

  it('keeps double-quoted attributes double-quoted, and the XML declaration', () => {
    const input = `<?xml version="1.0" encoding="UTF-8"?>
<domain type="qemu">
  <name>dq</name>
  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>
  <memory>131072</memory>
  <os><type>hvm</type></os>
</domain>
`;
    const out = DomainDocument.parse(input).toXml();
    // The added attribute and element follow the document's quoting and indentation.
    expect(out).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<domain type="qemu">
  <name>dq</name>
  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>
  <memory unit="KiB">131072</memory>
  <currentMemory unit="KiB">131072</currentMemory>
  <os><type>hvm</type></os>
</domain>
`);
  });

  it('adds a final newline and keeps CDATA and processing instructions', () => {
    const input = small(`  <description><![CDATA[a <b> & c]]></description>\n  <?ferry hint?>\n`).trimEnd();
    const out = DomainDocument.parse(input).toXml();
    expect(out).toBe(`${input}\n`);
    expect(DomainDocument.parse(input).def.description).toBe('a <b> & c');
  });

  it('rewrites only the spelling of escapes, never the value', () => {
    const input = small(
      `  <description>say &quot;hi&quot; &#65; &apos;x&apos;</description>\n` +
        `  <metadata><x:y xmlns:x='urn:x' v='a&#10;b&#9;c' w="it's"/></metadata>\n`,
    );
    const doc = DomainDocument.parse(input);
    expect(doc.def.description).toBe(`say "hi" A 'x'`);
    const out = doc.toXml();
    expect(out).toContain(`<description>say "hi" A 'x'</description>`);
    // Line breaks and tabs in attribute values survive as references.
    expect(out).toContain(`<x:y xmlns:x='urn:x' v='a&#10;b&#9;c' w="it's"/>`);
    expect(DomainDocument.parse(out).toXml()).toBe(out);
  });

  it('keeps disk paths with commas, quotes, = and spaces exactly', () => {
    const path = `/srv/images/a,b "c" =d'e f.qcow2`;
    const input = small(`  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/images/a,b &quot;c&quot; =d&apos;e f.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type="file" device="disk">
      <source file="/srv/images/x,y 'z' =w&quot;.raw"/>
      <target dev="vdb"/>
    </disk>
  </devices>
`);
    const doc = DomainDocument.parse(input);
    expect(doc.def.disks[0]!.sourcePath).toBe(path);
    expect(doc.def.disks[1]!.sourcePath).toBe(`/srv/images/x,y 'z' =w".raw`);
    expect(doc.toXml()).toBe(input);
    expect(DomainDocument.parse(doc.toXml()).def.disks).toEqual(doc.def.disks);
  });
});

describe('model', () => {
  it('derives everything Ferry understands from the fixture', () => {
    expect(DomainDocument.parse(CANONICAL).def).toEqual({
      type: 'kvm',
      name: 'fedora40',
      uuid: '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14',
      title: 'Fedora 40 build box',
      description: 'Builds RPMs at night.\nSecond line: a < b && c > d.',
      memoryKiB: 4194304,
      currentMemoryKiB: 2097152,
      hardLimitKiB: 6291456,
      vcpus: 4,
      os: { type: 'hvm', arch: 'x86_64', machine: 'pc-q35-8.2', boot: ['hd', 'cdrom'] },
      features: ['acpi', 'apic', 'vmport'],
      cpuMode: 'host-passthrough',
      cpu: { mode: 'host-passthrough', check: 'none', migratable: 'on', features: [] },
      clockOffset: 'utc',
      onPoweroff: 'destroy',
      onReboot: 'restart',
      onCrash: 'destroy',
      emulator: '/usr/bin/qemu-system-x86_64',
      disks: [
        {
          device: 'disk',
          type: 'file',
          format: 'qcow2',
          cache: 'none',
          io: 'native',
          errorPolicy: 'stop',
          rerrorPolicy: 'report',
          sourcePath: '/var/lib/libvirt/images/fedora40.qcow2',
          backingStore: {
            type: 'file',
            format: 'qcow2',
            sourcePath: '/var/lib/libvirt/images/golden/fedora40-base.qcow2',
            backingStore: { type: 'file', format: 'raw', sourcePath: '/var/lib/libvirt/images/golden/fedora40-root.raw' },
          },
          targetDev: 'vda',
          targetBus: 'virtio',
          readonly: false,
          shareable: false,
        },
        {
          device: 'disk',
          type: 'block',
          format: 'raw',
          cache: 'directsync',
          io: 'native',
          sourcePath: '/dev/vg0/build-scratch',
          targetDev: 'vdb',
          targetBus: 'virtio',
          readonly: false,
          shareable: true,
        },
        { device: 'cdrom', type: 'file', format: 'raw', targetDev: 'sda', targetBus: 'sata', readonly: true, shareable: false },
      ],
      serials: [{ element: 'serial', type: 'pty', targetPort: 0 }],
      consoles: [{ element: 'console', type: 'pty', targetPort: 0 }],
      interfaces: [{ type: 'user', mac: '52:54:00:3a:7c:01', model: 'virtio' }],
      // The peripherals QEMU gets (qemu/peripheral-args.ts); a ps2 mouse is the machine's own i8042.
      usb: { model: 'qemu-xhci', ports: 15 },
      inputs: [
        { type: 'tablet', bus: 'usb', usbPort: '1' },
        { type: 'mouse', bus: 'ps2' },
      ],
      memballoon: { model: 'virtio' },
      rngs: [{ backend: 'random', path: '/dev/urandom' }],
      channels: [{ name: 'org.qemu.guest_agent.0' }],
      video: { model: 'virtio', heads: 1 },
      // Kept in the XML, no effect on the guest: each once, with its type, never dropped silently.
      // vmport, the timers and S3/S4 are machine options (qemu/platform-args.ts).
      platform: { vmport: 'off', rtcTickPolicy: 'catchup', pitTickPolicy: 'delay', hpet: false, suspendToMem: false, suspendToDisk: false },
      ignored: ['resource', 'seclabel (dynamic)', 'controller (sata)', 'graphics (spice)', 'watchdog (itco)', 'frobnicator', 'memballoon <stats>'],
    });
  });

  it('fills in libvirt defaults for a minimal domain', () => {
    const doc = DomainDocument.parse(
      "<domain type='qemu'><name>m</name><memory>65536</memory><os><type>hvm</type></os></domain>",
    );
    expect(doc.def).toMatchObject({
      type: 'qemu',
      memoryKiB: 65536,
      currentMemoryKiB: 65536,
      vcpus: 1,
      os: { type: 'hvm' },
      features: [],
      onPoweroff: 'destroy',
      onReboot: 'restart',
      onCrash: 'destroy',
      disks: [],
      serials: [],
      consoles: [],
      interfaces: [],
    });
    expect(doc.def.os.boot).toBeUndefined();
    expect(doc.def.emulator).toBeUndefined();
  });

  it('is deeply frozen, so it cannot drift from the DOM', () => {
    const doc = DomainDocument.parse(CANONICAL);
    expect(Object.isFrozen(doc.def)).toBe(true);
    expect(Object.isFrozen(doc.def.disks[0]!.backingStore!.backingStore)).toBe(true);
    expect(() => {
      (doc.def as { name: string }).name = 'other';
    }).toThrow(TypeError);
  });

  it('parses a backing chain down to the terminating <backingStore/>', () => {
    const doc = DomainDocument.parse(
      small(`  <devices>
    <disk type='file'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/i/mid.qcow2'/>
        <backingStore type='block'>
          <format type='raw'/>
          <source dev='/dev/sdz'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda'/>
    </disk>
    <disk type='file'>
      <driver type='qcow2'/>
      <source file='/i/unknown-chain.qcow2'/>
      <target dev='vdb'/>
    </disk>
  </devices>
`),
    );
    const [vda, vdb] = doc.def.disks;
    expect(vda!.backingStore).toEqual({
      type: 'file',
      format: 'qcow2',
      sourcePath: '/i/mid.qcow2',
      backingStore: { type: 'block', format: 'raw', sourcePath: '/dev/sdz' },
    });
    // No <backingStore> at all: the chain is not described (left to the image).
    expect(vdb!.backingStore).toBeUndefined();
    expect(vdb!.targetBus).toBe('virtio');
  });

  it('infers the bus from the target prefix and defaults the format to raw', () => {
    const doc = DomainDocument.parse(
      small(`  <devices>
    <disk><source file='/a'/><target dev='vda'/></disk>
    <disk type='block'><source dev='/dev/b'/><target dev='sdb'/></disk>
    <disk device='cdrom'><source file='/c.iso'/><target dev='hdc'/></disk>
  </devices>
`),
    );
    expect(doc.def.disks.map((d) => [d.targetDev, d.targetBus, d.format, d.readonly])).toEqual([
      ['vda', 'virtio', 'raw', false],
      ['sdb', 'scsi', 'raw', false],
      ['hdc', 'ide', 'raw', true],
    ]);
  });
});

describe('serial and console', () => {
  const devices = (inner: string) => small(`  <devices>\n${inner}  </devices>\n`);

  it('treats a console on serial port 0 as the same device as serial 0', () => {
    const def = DomainDocument.parse(
      devices(`    <serial type='file'><source path='/var/log/g.log' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
`),
    ).def;
    expect(def.serials).toEqual([{ element: 'serial', type: 'file', path: '/var/log/g.log', append: true, targetPort: 0 }]);
    // The serial's settings win; the console only names the same port.
    expect(def.consoles).toEqual([{ element: 'console', type: 'file', path: '/var/log/g.log', append: true, targetPort: 0 }]);
  });

  it('makes a lone console define serial port 0', () => {
    const def = DomainDocument.parse(devices(`    <console type='pty'/>\n`)).def;
    expect(def.serials).toEqual([{ element: 'console', type: 'pty', targetPort: 0 }]);
    expect(def.consoles).toEqual([{ element: 'console', type: 'pty', targetPort: 0 }]);
  });

  it('reads unix sockets (default mode connect) and null, and assigns free ports in order', () => {
    const def = DomainDocument.parse(
      devices(`    <serial type='unix'><source mode='bind' path='/run/ferry/g.sock'/><target port='1'/></serial>
    <serial type='unix'><source path='/run/other.sock'/></serial>
    <serial type='null'/>
`),
    ).def;
    expect(def.serials).toEqual([
      { element: 'serial', type: 'unix', path: '/run/ferry/g.sock', mode: 'bind', targetPort: 1 },
      { element: 'serial', type: 'unix', path: '/run/other.sock', mode: 'connect', targetPort: 0 },
      { element: 'serial', type: 'null', targetPort: 2 },
    ]);
    expect(def.consoles).toEqual([]);
  });
});

describe('uuid', () => {
  it('is generated when missing and inserted right after <name>, indented like it', () => {
    const input = small().replace("  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>\n", '');
    const doc = DomainDocument.parse(input);
    expect(doc.def.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(doc.toXml()).toBe(small().replace('0f8fad5b-d9cb-469f-a165-70867728950e', doc.def.uuid));
    expect(DomainDocument.parse(input).def.uuid).not.toBe(doc.def.uuid);
  });

  it('is inserted without whitespace into compact XML', () => {
    const doc = DomainDocument.parse("<domain type='kvm'><name>c</name><memory>2048</memory><os><type>hvm</type></os></domain>");
    expect(doc.toXml()).toBe(
      `<domain type='kvm'><name>c</name><uuid>${doc.def.uuid}</uuid><memory unit='KiB'>2048</memory>` +
        `<currentMemory unit='KiB'>2048</currentMemory><os><type>hvm</type></os></domain>\n`,
    );
  });

  it('accepts 32 bare hex digits in any case and stores the dashed lower-case form', () => {
    const doc = DomainDocument.parse(small().replace('0f8fad5b-d9cb-469f-a165-70867728950e', '0F8FAD5BD9CB469FA16570867728950E'));
    expect(doc.def.uuid).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(doc.toXml()).toBe(small());
  });
});

describe('mutators', () => {
  it('withName changes only the <name> text and leaves the original alone', () => {
    const doc = DomainDocument.parse(CANONICAL);
    const renamed = doc.withName('fedora40-copy');
    expect(renamed.def.name).toBe('fedora40-copy');
    expect(renamed.toXml()).toBe(CANONICAL.replace('<name>fedora40</name>', '<name>fedora40-copy</name>'));
    expect(doc.def.name).toBe('fedora40');
    expect(doc.toXml()).toBe(CANONICAL);
  });

  it('withName refuses a bad name with invalid_arg', () => {
    const err = refusal(() => DomainDocument.parse(CANONICAL).withName('a/b'));
    expect(err.code).toBe('invalid_arg');
    expect(err.message).toContain("'/'");
  });

  it('withUuid canonicalises and refuses junk', () => {
    const doc = DomainDocument.parse(CANONICAL).withUuid('AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE');
    expect(doc.def.uuid).toBe('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
    expect(doc.toXml()).toBe(CANONICAL.replace('5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14', 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'));
    expect(refusal(() => doc.withUuid('not-a-uuid')).code).toBe('invalid_arg');
  });

  it('withDiskSource rewrites the source attribute in place, keeping the rest', () => {
    const doc = DomainDocument.parse(CANONICAL);
    const moved = doc.withDiskSource('vda', "/mnt/dest/fedora40,v2 'new'.qcow2");
    expect(moved.def.disks[0]!.sourcePath).toBe("/mnt/dest/fedora40,v2 'new'.qcow2");
    expect(moved.def.disks[0]!.backingStore).toEqual(doc.def.disks[0]!.backingStore);
    expect(moved.toXml()).toBe(
      CANONICAL.replace(
        "<source file='/var/lib/libvirt/images/fedora40.qcow2' index='2'/>",
        "<source file='/mnt/dest/fedora40,v2 &apos;new&apos;.qcow2' index='2'/>",
      ),
    );
    const block = doc.withDiskSource('vdb', '/dev/vg1/scratch');
    expect(block.toXml()).toContain("<source dev='/dev/vg1/scratch' index='1'/>");
  });

  it('withDiskSource can drop the backing chain', () => {
    const flat = DomainDocument.parse(CANONICAL).withDiskSource('vda', '/mnt/flat.qcow2', { removeBackingStore: true });
    expect(flat.def.disks[0]!.backingStore).toBeUndefined();
    expect(flat.toXml()).toContain(
      "      <source file='/mnt/flat.qcow2' index='2'/>\n      <target dev='vda' bus='virtio'/>\n",
    );
  });

  it('withDiskSource fills an empty cdrom', () => {
    const doc = DomainDocument.parse(CANONICAL).withDiskSource('sda', '/iso/install.iso');
    expect(doc.def.disks[2]!.sourcePath).toBe('/iso/install.iso');
    expect(doc.toXml()).toContain(
      "      <driver name='qemu' type='raw'/>\n      <source file='/iso/install.iso'/>\n      <target dev='sda' bus='sata'/>\n",
    );
  });

  it('withDiskSource refuses unknown targets and bad paths', () => {
    const doc = DomainDocument.parse(CANONICAL);
    const unknown = refusal(() => doc.withDiskSource('vdz', '/x'));
    expect(unknown.code).toBe('invalid_arg');
    expect(unknown.message).toContain('vda, vdb, sda');
    expect(refusal(() => doc.withDiskSource('vda', 'relative.qcow2')).code).toBe('invalid_arg');
    expect(refusal(() => doc.withDiskSource('vda', '/a\nb')).code).toBe('invalid_arg');
  });

  it('withEmulator replaces <emulator> or adds it first in <devices>', () => {
    const doc = DomainDocument.parse(CANONICAL).withEmulator('/opt/qemu/bin/qemu-system-x86_64');
    expect(doc.toXml()).toBe(
      CANONICAL.replace('/usr/bin/qemu-system-x86_64', '/opt/qemu/bin/qemu-system-x86_64'),
    );
    const withDevices = DomainDocument.parse(small(`  <devices>\n    <serial type='null'/>\n  </devices>\n`)).withEmulator('/q');
    expect(withDevices.toXml()).toContain("  <devices>\n    <emulator>/q</emulator>\n    <serial type='null'/>\n  </devices>\n");
    const bare = DomainDocument.parse(small()).withEmulator('/q');
    expect(bare.def.emulator).toBe('/q');
    expect(bare.toXml()).toContain("  </os>\n  <devices>\n    <emulator>/q</emulator>\n  </devices>\n</domain>\n");
  });

  it('clone is an independent document with the same XML', () => {
    const doc = DomainDocument.parse(CANONICAL);
    const copy = doc.clone();
    expect(copy).not.toBe(doc);
    expect(copy.toXml()).toBe(doc.toXml());
    expect(copy.withName('x').toXml()).not.toBe(doc.toXml());
    expect(doc.toXml()).toBe(CANONICAL);
  });
});

describe('attribute quotes', () => {
  it('survive normalisation, mutators and clone, attribute by attribute', () => {
    const input =
      `<domain type='kvm'><name>q</name><uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>` +
      `<memory unit="GiB">1</memory><os><type arch="x86_64" machine='pc'>hvm</type></os>` +
      `<devices><disk type="file"><source file="/a" index='1'/><target dev='vda' bus="virtio"/></disk></devices></domain>`;
    const doc = DomainDocument.parse(input);
    const out = doc.toXml();
    expect(out).toContain(`<memory unit="KiB">1048576</memory><currentMemory unit='KiB'>1048576</currentMemory>`);
    expect(out).toContain(`<type arch="x86_64" machine='pc'>hvm</type>`);
    const moved = doc.clone().withName('q2').withDiskSource('vda', `/b"c'd`);
    expect(moved.toXml()).toContain(`<source file="/b&quot;c'd" index='1'/><target dev='vda' bus="virtio"/>`);
    expect(DomainDocument.parse(moved.toXml()).def.disks[0]!.sourcePath).toBe(`/b"c'd`);
  });
});

describe('the demo guest', () => {
  // examples/test-guest.xml as the demo writes it, with the kernel path filled in.
  const demo = `<!-- The Ferry test guest. -->
<domain type='kvm'>
  <name>demo-guest</name>
  <title>Ferry test guest</title>
  <memory unit='KiB'>262148</memory>
  <currentMemory unit='KiB'>262148</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/work/guest/build/guest.elf</kernel>
    <cmdline>ws=128 rate=50 hb=500 verify=sample</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1'/>
  </devices>
</domain>
`;

  it('keeps its odd memory size and has one serial device', () => {
    const doc = DomainDocument.parse(demo);
    expect(doc.def).toMatchObject({
      memoryKiB: 262148,
      currentMemoryKiB: 262148,
      os: { kernel: '/work/guest/build/guest.elf', cmdline: 'ws=128 rate=50 hb=500 verify=sample' },
      serials: [{ element: 'serial', type: 'pty', targetPort: 0 }],
      consoles: [{ element: 'console', type: 'pty', targetPort: 0 }],
    });
    expect(doc.toXml()).toBe(demo.replace('  <title>', `  <uuid>${doc.def.uuid}</uuid>\n  <title>`));
  });
});

describe('input type', () => {
  it('refuses a non-string with xml_error', () => {
    expect(refusal(() => DomainDocument.parse(undefined as unknown as string)).code).toBe('xml_error');
  });
});
