/**
 * What ferryd puts into libvirt's migration cookies. libvirt's clients pass
 * cookies from one phase to the next without reading them; between two
 * ferryds they carry the phase messages of `phase-messages.ts` as JSON,
 * tagged with the phase that wrote them so that a cookie fed to the wrong
 * phase is refused, not misread.
 */
import { FerryError } from '../errors/index.js';
import type { FinishResult, IncomingJobState, MigrationCookie, PerformResult, PrepareResult } from '../migration/phase-messages.js';

/** Each phase's cookie. */
export interface PhaseCookies {
  /** begin → prepare: the source's cookie. */
  begin: { cookie: MigrationCookie };
  /** prepare → perform: the destination's job and where to stream, plus the address the client reached the destination on. */
  prepare: { sourceJobId: string; prepare: PrepareResult; address: string };
  /** perform → finish. */
  perform: { destJobId: string; perform: PerformResult | null };
  /** finish → confirm. */
  finish: { finish: FinishResult };
  /** Ferry's own question to a destination whose finish answer was lost (a finish call with `cancelled`). */
  'abort-check': { destJobId: string; domainUuid: string };
  /** Its answer. */
  'abort-answer': { state: IncomingJobState };
}

/** Encodes the cookie of phase `P`. */
export function writeCookie<P extends keyof PhaseCookies>(phase: P, body: PhaseCookies[P]): Buffer {
  return Buffer.from(JSON.stringify({ ferry: 1, phase, ...body }), 'utf8');
}

/** Decodes a cookie that must be of phase `P`; an empty cookie is `null`. */
export function readCookie<P extends keyof PhaseCookies>(phase: P, raw: Buffer): PhaseCookies[P] | null {
  if (raw.length === 0) return null;
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new FerryError('invalid_arg', 'the migration cookie is not one a ferryd wrote (it is not JSON); both hosts must run ferryd');
  }
  const o = v as { ferry?: unknown; phase?: unknown };
  if (!o || typeof o !== 'object' || o.ferry !== 1) throw new FerryError('invalid_arg', 'the migration cookie is not one a ferryd wrote; both hosts must run ferryd');
  if (o.phase !== phase) throw new FerryError('invalid_arg', `a migration cookie of phase '${String(o.phase)}' was given where one of phase '${phase}' belongs`);
  return v as PhaseCookies[P];
}

/** Whether `raw` is a cookie of phase `P` (for a procedure that takes two kinds). */
export function isCookieOf(phase: keyof PhaseCookies, raw: Buffer): boolean {
  try {
    return readCookie(phase, raw) !== null;
  } catch {
    return false;
  }
}
