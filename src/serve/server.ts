// Binding the HTTP API to a socket (@hono/node-server) and shutting it down gracefully: stop
// listening, answer every request already taken (the batcher flushes at once), close the
// connections, free the models.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { UserError } from '../tensor/errors.js';
import { type AppOptions, createApp } from './app.js';
import type { Service } from './service.js';

export interface ListenOptions extends AppOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  /** How long a shutdown waits for requests in flight before it closes every connection (default 10 s). */
  drainMs?: number;
}

/** Whether a host name or address only reaches this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Binding beyond loopback needs a bearer token; tokens are non-empty and contain no spaces. */
export function checkBinding(host: string, token: string | undefined): void {
  if (token !== undefined && !/^\S+$/.test(token)) throw new UserError('--token must be non-empty and contain no whitespace');
  if (!isLoopback(host) && token === undefined) {
    throw new UserError(`binding to ${host} (reachable from other machines) needs --token; without one lorkd serve binds to 127.0.0.1 only`);
  }
}

export interface RunningServer {
  service: Service;
  server: Server;
  url: string;
  port: number;
  /** Graceful shutdown (idempotent): resolves once every taken request is answered and the socket is closed. */
  close(): Promise<void>;
}

export async function startServer(service: Service, o: ListenOptions): Promise<RunningServer> {
  checkBinding(o.host, o.token);
  const app = createApp(service, o);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: o.port, hostname: o.host }, () => resolve(s as Server)) as Server;
    s.once('error', (e: NodeJS.ErrnoException) => reject(new UserError(`cannot listen on ${o.host}:${o.port} (${e.code ?? e.message})`)));
  });
  // Responses sent while draining close their connection, so the server can finish closing.
  server.on('request', (_req, res) => {
    if (service.draining) res.shouldKeepAlive = false;
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  let closing: Promise<void> | null = null;
  const drainMs = o.drainMs ?? 10_000;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      // The drain has a deadline: past it every connection is closed (a client part-way through
      // its body included), which ends the requests still reading, and the shutdown goes on.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((r) => {
        timer = setTimeout(() => {
          server.closeAllConnections();
          r();
        }, drainMs);
      });
      const tick = setInterval(() => server.closeIdleConnections(), 50);
      try {
        await Promise.race([service.drain(), deadline]);
        // Let the last responses flush, then drop idle keep-alive connections.
        await new Promise((r) => setImmediate(r));
        server.closeIdleConnections();
        await Promise.race([closed, deadline]);
        server.closeAllConnections();
        await closed;
      } finally {
        clearInterval(tick);
        clearTimeout(timer);
      }
    })());
  return { service, server, url: `http://${host}:${port}`, port, close };
}
