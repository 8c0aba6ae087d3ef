/**
 * The page's calls to ferryd (src/http/server.ts): reads with GET, changes
 * with POST and the token, and the event stream. The token comes in the
 * address's fragment (`#token=...`, put there by `ferry dashboard`; a
 * fragment is never sent to a server), is kept for this tab only, and is
 * sent as `Authorization: Bearer`.
 */
const KEY = 'ferry-token';

function takeToken(): string | null {
  const m = /(?:^|[#&])token=([0-9a-f]{64})/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, m[1]!);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

export const token = takeToken();

/** An error ferryd answered: its stable code and sentence. */
export class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function unwrap<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({ error: { code: 'rpc', message: `HTTP ${res.status}` } }))) as { result?: T; error?: { code: string; message: string } };
  if (!res.ok || body.error) throw new CallError(body.error?.code ?? 'rpc', body.error?.message ?? `HTTP ${res.status}`);
  return body.result as T;
}

function headers(): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A read-only method. */
export async function read<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
  const q = Object.keys(params).length ? `?params=${encodeURIComponent(JSON.stringify(params))}` : '';
  return unwrap<T>(await fetch(`/api/call/${method}${q}`, { headers: headers() }));
}

/** A method that changes something (needs the token). */
export async function call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
  return unwrap<T>(await fetch(`/api/call/${method}`, { method: 'POST', headers: { ...headers(), 'Content-Type': 'application/json' }, body: JSON.stringify(params) }));
}

/**
 * Follows `/api/events` (server-sent events, read with fetch so that the
 * token can go in a header): `onEvent` for each, `onState` when the stream
 * opens or drops. A dropped stream is opened again after 1, 2, 4 ... 30 s.
 */
export function followEvents(onEvent: (name: string, data: unknown) => void, onState: (open: boolean) => void): void {
  let delay = 1000;
  const open = async () => {
    try {
      const res = await fetch('/api/events', { headers: headers() });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      onState(true);
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let name = 'message';
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('event: ')) name = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch {
      // Dropped or refused: try again below.
    }
    onState(false);
    setTimeout(() => void open(), delay);
    delay = Math.min(delay * 2, 30_000);
  };
  void open();
}
