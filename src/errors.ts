/** The base class of every error Punctual raises on purpose. */
export class PunctualError extends Error {
  override name = "PunctualError";
}

/**
 * Bad input: raised before anything is written. `field` names what was wrong, as a
 * dotted path (`payload.email`, `runAt`, `jobs.3.key`).
 */
export class ValidationError extends PunctualError {
  override name = "ValidationError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * `ctx.complete(tx)` found the job no longer held by this worker (its lease expired
 * and another worker took it over): the caller's transaction must roll back.
 */
export class LeaseLostError extends PunctualError {
  override name = "LeaseLostError";
  constructor(readonly jobId: number) {
    super(`job ${jobId} is no longer leased to this worker: roll back this transaction; another worker runs the job`);
  }
}

/** A task name that the client or worker was not given. */
export class UnknownTaskError extends ValidationError {
  override name = "UnknownTaskError";
  constructor(
    readonly task: string,
    known: readonly string[],
    field = "task",
  ) {
    super(field, `unknown task "${task}"; known tasks: ${known.length ? known.join(", ") : "(none)"}`);
  }
}
