// A static HTTP server for the app's site plan: only the planned files, with the cross-origin
// isolation headers onnxruntime-web's threads need (COOP same-origin + COEP require-corp), and
// the right content types (.wasm as application/wasm). Anything else is 404; paths with "..",
// backslashes or NUL are refused with 400 before any lookup.
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import type { SiteFile, SitePlan } from './site-plan.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Content type of a site path by its extension (unknown: application/octet-stream). */
export const contentType = (p: string): string => TYPES[path.extname(p).toLowerCase()] ?? 'application/octet-stream';

/** Headers every response carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

/**
 * The site path a request URL names, or a status: 400 for a malformed or escaping path
 * ("..", ".", backslash, NUL, bad percent-encoding), otherwise the path ('' maps to index.html).
 */
export function sitePath(url: string): string | 400 {
  const q = url.search(/[?#]/);
  const raw = q >= 0 ? url.slice(0, q) : url;
  if (!raw.startsWith('/')) return 400;
  let p: string;
  try {
    p = decodeURIComponent(raw);
  } catch {
    return 400;
  }
  if (p.includes('\\') || p.includes('\0')) return 400;
  const parts = p.split('/').slice(1);
  if (parts.some((s, i) => s === '..' || s === '.' || (s === '' && i < parts.length - 1))) return 400;
  const rel = parts.join('/');
  return rel === '' ? 'index.html' : rel;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(files: Map<string, SiteFile>, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'method not allowed\n');
  }
  const p = sitePath(req.url ?? '/');
  if (p === 400) return send(res, 400, 'bad path\n');
  const f = files.get(p);
  if (!f) return send(res, 404, 'not found\n');
  const headers = { ...SECURITY_HEADERS, 'Content-Type': contentType(p) };
  if ('data' in f) {
    res.writeHead(200, { ...headers, 'Content-Length': f.data.length });
    res.end(req.method === 'HEAD' ? undefined : f.data);
    return;
  }
  const stream = createReadStream(f.source);
  stream.on('error', () => (res.headersSent ? res.destroy() : send(res, 404, 'not found\n')));
  stream.on('open', () => {
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      stream.destroy();
      res.end();
    } else stream.pipe(res);
  });
}

export interface ServeOptions {
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: this machine only). */
  host?: string;
}

export interface RunningServer {
  /** The page's address, e.g. http://127.0.0.1:8080/ */
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Serves the plan's files until close(). A port in use is a UserError. */
export function serveSite(plan: SitePlan, opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8080;
  const server = createServer((req, res) => handle(plan.files, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new UserError(`port ${port} on ${host} is in use (choose another with --port)`) : e.code === 'EACCES' ? new UserError(`no permission to listen on ${host}:${port}`) : e),
    );
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      resolve({
        url: `http://${h}:${a.port}/`,
        server,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
