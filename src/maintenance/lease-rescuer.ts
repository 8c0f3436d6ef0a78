import type { Queryable } from "../executor.js";
import { jobRescueExpired } from "../sql/jobs.js";
import type { MaintenanceService } from "./service.js";

export interface RescueCounts {
  /** Jobs taken back from workers whose lease expired. */
  rescued: number;
  /** Of those, how many ended (no attempts left, or cancelled) rather than going back to pending. */
  ended: number;
  jobs: { id: number; task: string; state: string; previousOwner: string | null }[];
}

/**
 * Takes back running jobs whose worker stopped renewing the lease (killed, frozen, cut
 * off from the database), so they run again within seconds instead of staying locked.
 * Any live worker runs it; rounds are bounded by `batchSize` and repeat while full.
 */
export class LeaseRescuer implements MaintenanceService<RescueCounts> {
  readonly name = "lease-rescuer";

  constructor(
    private readonly db: Queryable,
    private readonly batchSize = 500,
    private readonly maxBatches = 10,
  ) {}

  async runOnce(): Promise<RescueCounts> {
    const counts: RescueCounts = { rescued: 0, ended: 0, jobs: [] };
    for (let batch = 0; batch < this.maxBatches; batch++) {
      const rows = await jobRescueExpired(this.db, this.batchSize);
      for (const row of rows) {
        counts.jobs.push({ id: Number(row.id), task: row.task, state: row.state, previousOwner: row.previous_owner });
        if (row.state !== "pending") counts.ended += 1;
      }
      counts.rescued += rows.length;
      if (rows.length < this.batchSize) break;
    }
    return counts;
  }
}
