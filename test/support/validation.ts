import { expect } from "vitest";
import { ValidationError } from "../../src/index.js";

/** Asserts that `call` throws a ValidationError naming `field`, with each message pattern. */
export function expectValidationError(call: () => unknown, field: string, ...messages: RegExp[]): void {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    for (const message of messages) expect((error as ValidationError).message).toMatch(message);
    return;
  }
  expect.unreachable(`expected a ValidationError naming ${field}`);
}
