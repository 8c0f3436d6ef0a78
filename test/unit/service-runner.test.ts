import { expect, it } from "vitest";
import { ServiceRunner } from "../../src/maintenance/service.js";

it("a round whose report throws (an app's event listener) goes to onError, not to an unhandled rejection, and the next round runs", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  let rounds = 0;
  const errors: unknown[] = [];
  let secondError!: () => void;
  const twoErrors = new Promise<void>((resolve) => (secondError = resolve));
  const runner = new ServiceRunner(
    { name: "counter", runOnce: async () => ({ round: ++rounds }) },
    10,
    () => {
      throw new Error("listener bug");
    },
    (error) => {
      errors.push(error);
      if (errors.length === 2) secondError();
    },
  );
  runner.start();
  await twoErrors;
  await runner.stop();
  // Let any rejection that escaped be reported before looking.
  await new Promise((resolve) => setImmediate(resolve));
  process.off("unhandledRejection", onUnhandled);
  expect(rounds).toBeGreaterThanOrEqual(2);
  expect(errors.map((e) => (e as Error).message)).toEqual(["listener bug", "listener bug"]);
  expect(unhandled).toEqual([]);
});
