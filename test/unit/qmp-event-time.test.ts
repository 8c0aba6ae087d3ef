import { describe, expect, it } from 'vitest';
import { eventTimeMs } from '../../src/qemu/index.js';

describe('the stop time behind the downtime figure', () => {
  it("is QEMU's own timestamp of the STOP event, in epoch milliseconds", () => {
    expect(eventTimeMs({ event: 'STOP', data: {}, timestamp: { seconds: 1_764_000_000, microseconds: 123_456 } })).toBe(1_764_000_000_123);
  });

  it('is unknown for an event without a timestamp (the caller then uses its own clock)', () => {
    expect(eventTimeMs({ event: 'STOP', data: {}, timestamp: { seconds: 0, microseconds: 0 } })).toBeUndefined();
    expect(eventTimeMs({ event: 'STOP', data: {}, timestamp: { seconds: Number.NaN, microseconds: 0 } })).toBeUndefined();
  });
});
