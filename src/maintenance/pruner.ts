import type { Queryable } from "../executor.js";
import { jobPruneFinished } from "../sql/jobs.js";
import type { MaintenanceService } from "./service.js";

export interface PruneCounts {
  deleted: number;
  /** Delete statements run; each removes at most `batchSize` rows. */
  batches: number;
}

/**
 * Deletes finished jobs older than `retentionMs`, in batches of `batchSize`, so the
 * table does not grow without bound under steady load and no statement holds many
 * locks or runs long. A round stops after `maxBatches`; the next round goes on.
 */
export class Pruner implements MaintenanceService<PruneCounts> {
  readonly name = "pruner";

  constructor(
    private readonly db: Queryable,
    private readonly retentionMs: number,
    private readonly batchSize = 1000,
    private readonly maxBatches = 20,
  ) {}

  async runOnce(): Promise<PruneCounts> {
    const counts: PruneCounts = { deleted: 0, batches: 0 };
    while (counts.batches < this.maxBatches) {
      const deleted = await jobPruneFinished(this.db, this.retentionMs, this.batchSize);
      counts.batches += 1;
      counts.deleted += deleted;
      if (deleted < this.batchSize) break;
    }
    return counts;
  }
}
