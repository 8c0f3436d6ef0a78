import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A network namespace of the test's own, joined to the root namespace by a veth pair
 * with private addresses (10.213.N.1 on the root side, 10.213.N.2 inside), and a TCP
 * relay on the root side's address that forwards to the test's PostgreSQL. Workers run
 * inside the namespace and reach the database only through the veth, so faults put on
 * the veth (nftables rules in a table of the test's own, matching that interface only)
 * cut them off and nothing else. `remove` takes it all down; call it also on failure.
 */
export interface TestNetwork {
  /** The namespace, for `ip netns exec`. */
  namespace: string;
  /** `databaseUrl` rewritten to go through the relay on the veth. */
  url: string;
  /** Drops every packet on the veth, both ways: a silent partition (no RST, nothing). */
  partition(): Promise<void>;
  /** Drops only the database's answers on one connection (by its port inside the namespace): requests still arrive. */
  dropReplies(innerPort: number): Promise<void>;
  /** Drops the namespace's new connection attempts (SYNs); established ones carry on. */
  blockNewConnections(): Promise<void>;
  /** Drops both ways the packets of one connection, by its port inside the namespace. */
  dropConnection(innerPort: number): Promise<void>;
  /** Removes every fault. */
  heal(): Promise<void>;
  /**
   * The port inside the namespace of the connection whose database-side socket has
   * `upstreamPort` as local port (`pg_stat_activity.client_port`).
   */
  innerPort(upstreamPort: number): number | undefined;
  remove(): Promise<void>;
}

export async function createTestNetwork(databaseUrl: string): Promise<TestNetwork> {
  const id = randomInt(1000, 9999);
  const subnet = randomInt(0, 255);
  const namespace = `pqns${id}`;
  const outer = `pqo${id}`;
  const inner = `pqi${id}`;
  const table = `punctual_test_${id}`;
  const outerAddress = `10.213.${subnet}.1`;
  const innerAddress = `10.213.${subnet}.2`;
  let relay: Relay | undefined;
  const remove = async () => {
    await relay?.close();
    await run("nft", ["delete", "table", "inet", table]).catch(() => {});
    // Deleting the namespace deletes the veth pair with it.
    await run("ip", ["netns", "delete", namespace]).catch(() => {});
    await run("ip", ["link", "delete", outer]).catch(() => {});
  };
  try {
    await run("ip", ["netns", "add", namespace]);
    await run("ip", ["link", "add", outer, "type", "veth", "peer", "name", inner]);
    await run("ip", ["link", "set", inner, "netns", namespace]);
    await run("ip", ["addr", "add", `${outerAddress}/30`, "dev", outer]);
    await run("ip", ["link", "set", outer, "up"]);
    const inside = (...args: string[]) => run("ip", ["netns", "exec", namespace, "ip", ...args]);
    await inside("addr", "add", `${innerAddress}/30`, "dev", inner);
    await inside("link", "set", inner, "up");
    await inside("link", "set", "lo", "up");
    await nft(`add table inet ${table}`);
    await nft(`add chain inet ${table} input { type filter hook input priority -10; policy accept; }`);
    await nft(`add chain inet ${table} output { type filter hook output priority -10; policy accept; }`);
    const target = new URL(databaseUrl);
    relay = await startRelay(outerAddress, target.hostname, Number(target.port || 5432));
    const url = new URL(databaseUrl);
    url.hostname = outerAddress;
    url.port = String(relay.port);
    return {
      namespace,
      url: url.toString(),
      partition: async () => {
        await nft(`add rule inet ${table} input iifname "${outer}" drop`);
        await nft(`add rule inet ${table} output oifname "${outer}" drop`);
      },
      blockNewConnections: () => nft(`add rule inet ${table} input iifname "${outer}" tcp flags & (syn|ack) == syn drop`),
      dropReplies: (port) => nft(`add rule inet ${table} output oifname "${outer}" tcp dport ${port} drop`),
      dropConnection: async (port) => {
        await nft(`add rule inet ${table} input iifname "${outer}" tcp sport ${port} drop`);
        await nft(`add rule inet ${table} output oifname "${outer}" tcp dport ${port} drop`);
      },
      heal: async () => {
        await nft(`flush chain inet ${table} input`);
        await nft(`flush chain inet ${table} output`);
      },
      innerPort: (upstreamPort) => relay!.pairs.get(upstreamPort),
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

function nft(command: string) {
  return run("nft", command.split(" ")).then(() => {});
}

interface Relay {
  port: number;
  /** Local port of each connection to the database → the client's port in the namespace. */
  pairs: Map<number, number>;
  close(): Promise<void>;
}

/** Forwards every connection to `host:port`; keeps which client port each upstream port serves. */
function startRelay(address: string, host: string, port: number): Promise<Relay> {
  const pairs = new Map<number, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host, port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      // A peer that went away: end the other side too.
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on("connect", () => pairs.set(upstream.localPort!, client.remotePort!));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, address, () => {
      resolve({
        port: (server.address() as { port: number }).port,
        pairs,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
