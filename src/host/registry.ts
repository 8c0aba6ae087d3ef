/** The host's domains, found by name, UUID or runtime id as virsh finds them. */
import { canonicalUuid } from '../domain/index.js';
import { FerryError } from '../errors/index.js';
import type { HostedDomain } from './hosted-domain.js';
import type { DomainSummary, ListFilter } from './views.js';

/** Lookup tables of the host's domains. */
export class DomainRegistry {
  private readonly byUuid = new Map<string, HostedDomain>();

  /** Adds a domain; refuses a name or UUID already in use. */
  add(d: HostedDomain): void {
    this.assertFree(d.name, d.uuid);
    this.byUuid.set(d.uuid, d);
  }

  /** Removes a domain. */
  remove(d: HostedDomain): void {
    if (this.byUuid.get(d.uuid) === d) this.byUuid.delete(d.uuid);
  }

  /** Every domain, in name order. */
  all(): HostedDomain[] {
    return [...this.byUuid.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Domain by UUID, if any. */
  getByUuid(uuid: string): HostedDomain | undefined {
    return this.byUuid.get(canonicalUuid(uuid) ?? uuid.toLowerCase());
  }

  /** Domain by name, if any. */
  getByName(name: string): HostedDomain | undefined {
    for (const d of this.byUuid.values()) if (d.name === name) return d;
    return undefined;
  }

  /**
   * Finds a domain the way virsh does: a positive integer is tried as a
   * runtime id, a UUID as a UUID, then the string as a name.
   */
  lookup(ref: unknown): HostedDomain {
    if (typeof ref !== 'string' || ref.length === 0 || ref.length > 256) {
      throw new FerryError('invalid_arg', 'a domain name, id or UUID is required');
    }
    if (/^[1-9][0-9]{0,9}$/.test(ref)) {
      const id = Number(ref);
      for (const d of this.byUuid.values()) if (d.runtime?.id === id) return d;
    }
    const uuid = canonicalUuid(ref);
    if (uuid !== undefined) {
      const d = this.byUuid.get(uuid);
      if (d) return d;
    }
    const d = this.getByName(ref);
    if (d) return d;
    throw new FerryError('no_domain', `Domain not found: no domain with matching name, id or uuid '${ref}'`);
  }

  /**
   * Throws `dom_exist` when `name` or `uuid` belongs to another domain
   * (`except` is the domain being redefined, which may keep both).
   */
  assertFree(name: string, uuid: string, except?: HostedDomain): void {
    const byId = this.byUuid.get(uuid);
    if (byId && byId !== except) {
      throw new FerryError('dom_exist', `domain '${byId.name}' already exists with uuid ${uuid}`);
    }
    const byName = this.getByName(name);
    if (byName && byName !== except) {
      throw new FerryError('dom_exist', `domain '${name}' already exists with uuid ${byName.uuid}`);
    }
  }

  /** Rows of `list` matching `f` (virsh semantics: active only unless --all/--inactive). */
  list(f: ListFilter): DomainSummary[] {
    return this.all()
      .filter((d) => {
        if (f.inactive && d.active) return false;
        // A state filter names the states wanted, so it lifts the active-only default, as in virsh.
        if (!f.all && !f.inactive && !f.state?.length && !d.active) return false;
        if (f.state?.length) {
          const s = d.status.state;
          const bucket = s === 'running' || s === 'paused' || s === 'shutoff' ? s : 'other';
          if (!f.state.includes(bucket)) return false;
        }
        if (f.persistent && !d.persistent) return false;
        if (f.transient && d.persistent) return false;
        if (f.autostart && !d.autostart) return false;
        if (f.noAutostart && d.autostart) return false;
        return true;
      })
      .map((d) => d.summary());
  }
}
