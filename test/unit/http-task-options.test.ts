import { describe, expect, it } from "vitest";
import { HTTP_TASK_NAME, httpRequest, httpTask, ValidationError } from "../../src/index.js";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("did not throw");
}

describe("httpTask options", () => {
  it("makes a task named punctual.http, keeping results, with the job defaults given", () => {
    const task = httpTask({ queue: "http", maxAttempts: 3, backoff: { baseMs: 5_000 } });
    expect(task).toMatchObject({ name: HTTP_TASK_NAME, storeResult: true, queue: "http", maxAttempts: 3, backoff: { baseMs: 5_000 } });
    expect(httpRequest.name).toBe("punctual.http");
    expect(httpRequest.payload).toBe(task.payload);
  });

  it.each([
    [{ allowPrivateNetwork: true }, "allowPrivateNetwork", "is not an option of httpTask"],
    [{ allowPrivateNetworks: "yes" }, "allowPrivateNetworks", "expected boolean"],
    [{ allowedNetworks: ["10.0.0.0/8", "bogus"] }, "allowedNetworks.1", "is not a CIDR"],
    [{ maxRetryAfterMs: -1 }, "maxRetryAfterMs", ""],
    [{ secrets: { A: 42 } }, "secrets.A", "a secret is a string"],
    [{ lookup: "8.8.8.8" }, "lookup", "must be a function"],
  ])("refuses %j, naming the option", (options, field, message) => {
    const error = thrown(() => httpTask(options as never));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect((error as ValidationError).message).toContain(message);
  });
});
