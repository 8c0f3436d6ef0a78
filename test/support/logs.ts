import { Writable } from "node:stream";
import { pino } from "pino";

/** A pino logger (debug and up) whose JSON lines the test reads from `lines`. */
export function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split("\n")) if (text) lines.push(JSON.parse(text));
      done();
    },
  });
  return { lines, logger: pino({ level: "debug" }, stream) };
}
