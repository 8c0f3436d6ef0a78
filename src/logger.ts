import { pino, type Logger } from "pino";

/**
 * Punctual's default logger: pretty lines when stdout is a terminal, JSON otherwise
 * (for log collectors). Level from `LOG_LEVEL` (default `info`).
 */
export function createLogger(name = "punctual"): Logger {
  const pretty = process.stdout.isTTY === true;
  return pino({
    name,
    level: process.env.LOG_LEVEL ?? "info",
    transport: pretty
      ? { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } }
      : undefined,
  });
}

export type { Logger };
