import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * Serves `handler` (a `WorkerMetrics.handler`) on `host:port` with `node:http`;
 * resolves once it listens (rejects if the port cannot be bound). Default host
 * `127.0.0.1`, as every operator surface of Punctual: in a pod, where the kubelet's
 * probes and Prometheus come from outside the container, pass `host: "0.0.0.0"`. The
 * endpoints only read: counts by task and queue, never a payload, key or id.
 */
export function listenMetrics(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  { port, host = "127.0.0.1" }: { port: number; host?: string },
): Promise<Server> {
  const server = createServer(handler);
  // Probes and scrapes are short: a client that opens a connection and says nothing
  // must not hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
