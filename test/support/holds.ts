/**
 * Gates a test opens by tag: a fake handler waits on `holdOf(tag).promise`
 * and the test calls `release(tag)` when it wants the reply, so tests order
 * replies by events, not by sleeping. One set per test file (module state).
 */

/** One gate. */
export interface Hold {
  promise: Promise<void>;
  open: () => void;
}

/** A set of gates by tag. */
export function createHolds(): { holdOf(tag: string): Hold; release(tag: string): void } {
  const holds = new Map<string, Hold>();
  const holdOf = (tag: string): Hold => {
    let h = holds.get(tag);
    if (!h) {
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      h = { promise, open };
      holds.set(tag, h);
    }
    return h;
  };
  return { holdOf, release: (tag: string) => holdOf(tag).open() };
}
