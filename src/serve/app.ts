// The HTTP API (hono) over a Service. Every error is one line of JSON, {"error": "..."}, with a
// 4xx status for the request's own faults; nothing a client sends can stop the service.
//   POST   /v1/predict?task=NAME      image as the raw body or multipart -> Answer
//   GET    /v1/tasks                  departments, class names, preprocessing, versions
//   GET    /healthz                   liveness (never needs the token)
//   GET    /metrics                   Prometheus text
//   PUT    /v1/admin/tasks/NAME       {"file": "...", "task"?: "..."}: hot add or replace
//   DELETE /v1/admin/tasks/NAME       hot remove
// With a token, every route but /healthz needs `Authorization: Bearer TOKEN` (else 401).
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { UserError } from '../tensor/errors.js';
import { bodyKind } from './decode.js';
import { HttpError } from './http-error.js';
import type { Service } from './service.js';

export interface AppOptions {
  /** Bearer token required by every route but /healthz (none: no authentication). */
  token?: string;
  /** Largest request body, bytes. */
  maxBodyBytes: number;
}

function sameToken(got: string, want: string): boolean {
  const a = Buffer.from(got);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

const fail = (c: Context, e: HttpError): Response => {
  for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
  return c.json({ error: e.message.split('\n')[0] }, e.status);
};

/** The request's image bytes: the raw body, or the first file of a multipart body ("image" first). */
async function readImageBody(c: Context): Promise<{ bytes: Uint8Array; name: string }> {
  const kind = bodyKind(c.req.header('content-type'));
  if (kind === 'raw') return { bytes: new Uint8Array(await c.req.arrayBuffer()), name: 'image' };
  let form: Record<string, unknown>;
  try {
    form = await c.req.parseBody({ all: false });
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, `unreadable multipart body (${(e as Error).message})`);
  }
  const files = Object.entries(form).filter((e): e is [string, File] => typeof e[1] === 'object' && e[1] !== null && 'arrayBuffer' in e[1]);
  const file = files.find(([k]) => k === 'image') ?? files[0];
  if (!file) throw new HttpError(400, 'the multipart body has no file (send the image as a file field, e.g. "image")');
  return { bytes: new Uint8Array(await file[1].arrayBuffer()), name: file[1].name || file[0] };
}

export function createApp(service: Service, o: AppOptions): Hono {
  const app = new Hono();
  app.onError((e, c) => {
    if (e instanceof HttpError) return fail(c, e);
    if (e instanceof UserError) return fail(c, new HttpError(400, e.message));
    return fail(c, new HttpError(500, `internal error: ${e.message}`));
  });
  app.notFound((c) => fail(c, new HttpError(404, `no route ${c.req.method} ${c.req.path}`)));

  if (o.token !== undefined) {
    const token = o.token;
    app.use('*', async (c, next) => {
      if (c.req.path === '/healthz') return next();
      const h = c.req.header('authorization') ?? '';
      const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
      if (!m || !sameToken(m[1]!, token)) {
        c.header('WWW-Authenticate', 'Bearer');
        service.metrics.requests.inc({ task: 'unauthorized', status: '401' });
        return c.json({ error: 'missing or wrong bearer token' }, 401);
      }
      return next();
    });
  }

  const limit = bodyLimit({
    maxSize: o.maxBodyBytes,
    onError: (c) => fail(c, new HttpError(413, `body larger than ${o.maxBodyBytes} bytes`)),
  });

  app.post('/v1/predict', limit, async (c) => c.json(await service.predict(c.req.query('task'), () => readImageBody(c))));

  app.get('/v1/tasks', (c) => c.json({ mode: service.o.mode, maxBatch: service.o.maxBatch, maxWaitMs: service.o.maxWaitMs, tasks: service.tasks() }));

  app.get('/healthz', (c) =>
    c.json({ status: service.draining ? 'draining' : 'ok', departments: service.departments.size, queue: service.batcher.depth }, service.draining ? 503 : 200),
  );

  app.get('/metrics', (c) => c.text(service.metrics.text(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }));

  app.put('/v1/admin/tasks/:name', bodyLimit({ maxSize: 64 * 1024 }), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new HttpError(400, 'send a JSON body {"file": "/path/to.safetensors", "task"?: "name in a decomposition checkpoint"}');
    }
    const b = body as { file?: unknown; task?: unknown };
    if (typeof b?.file !== 'string' || (b.task !== undefined && typeof b.task !== 'string')) {
      throw new HttpError(400, 'the JSON body needs "file" (a string) and optionally "task" (a string)');
    }
    const r = service.put(c.req.param('name'), b.file, b.task as string | undefined);
    return c.json(r, r.replaced === null ? 201 : 200);
  });

  app.delete('/v1/admin/tasks/:name', (c) => {
    const r = service.remove(c.req.param('name'));
    if (!r) throw new HttpError(404, `unknown task "${c.req.param('name')}"`);
    return c.json(r);
  });

  return app;
}
