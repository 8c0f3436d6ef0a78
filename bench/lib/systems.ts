import type { SystemModule } from "../systems/types.js";

/** Every system the bench knows, in the order the table shows them. */
export const SYSTEM_IDS = ["punctual", "graphile-worker", "pg-boss", "bullmq-postgres", "bullmq-redis"] as const;

export async function loadSystem(id: string): Promise<SystemModule> {
  if (!(SYSTEM_IDS as readonly string[]).includes(id)) throw new Error(`unknown system "${id}"; known: ${SYSTEM_IDS.join(", ")}`);
  return (await import(`../systems/${id}.js`)).default as SystemModule;
}
