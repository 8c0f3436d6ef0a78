import { randomUUID } from "node:crypto";
import { cp, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** zod's entry points, loaded from a copy: a module instance distinct from Punctual's own. */
export interface SecondZod {
  /** The folder that holds the copy (`<dir>/node_modules/zod`); git-ignored (`test/.tmp-*`). */
  dir: string;
  /** The zod 4 API of the copy. */
  v4: typeof import("zod").z;
  /** The zod 3 API the zod package still ships (`zod/v3`): what an app pinned to zod 3 uses. */
  v3: typeof import("zod/v3").z;
  /** zod mini (`zod/mini`). */
  mini: typeof import("zod/mini").z;
  /** Deletes the copy. */
  remove(): Promise<void>;
}

/**
 * Copies `node_modules/zod` into a fresh folder under `test/` and imports it by file
 * URL, as an app that resolves its own copy of zod would. Each call makes its own
 * folder, so test files running at once do not share one.
 */
export async function loadSecondZod(): Promise<SecondZod> {
  const dir = path.join(ROOT, "test", `.tmp-second-zod-${randomUUID().slice(0, 8)}`);
  const zodDir = path.join(dir, "node_modules", "zod");
  const source = path.join(ROOT, "node_modules", "zod");
  // The TypeScript sources are not needed to run it; skipping them halves the copy.
  await cp(source, zodDir, { recursive: true, filter: (file) => file !== path.join(source, "src") });
  const load = (entry: string) => import(pathToFileURL(path.join(zodDir, entry)).href);
  return {
    dir,
    v4: (await load("index.js")).z,
    v3: (await load("v3/index.js")).z,
    mini: (await load("mini/index.js")).z,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
