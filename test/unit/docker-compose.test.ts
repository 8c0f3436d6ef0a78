import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// No Docker engine runs in CI, so the compose file is checked by reading it.
const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"), { merge: true });
const root = new URL("../../", import.meta.url);

describe("docker-compose.yml", () => {
  it("has PostgreSQL, a setup step, two worker replicas, a producer and the dashboard", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["dashboard", "postgres", "producer", "setup", "worker"]);
    expect(compose.services.postgres.image).toMatch(/^postgres:\d+/);
    expect(compose.services.worker.deploy.replicas).toBe(2);
  });

  it("points every app service at the compose PostgreSQL with matching credentials", () => {
    const pg = compose.services.postgres.environment;
    for (const name of ["setup", "worker", "producer", "dashboard"]) {
      const url = new URL(compose.services[name].environment.DATABASE_URL);
      expect(url.hostname).toBe("postgres");
      expect(url.port).toBe("5432");
      expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER);
      expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
      expect(url.pathname).toBe(`/${pg.POSTGRES_DB}`);
      expect(compose.services[name].image).toMatch(/^node:20/);
    }
  });

  it("starts workers only after setup migrated, and setup only once PostgreSQL is healthy", () => {
    expect(compose.services.setup.depends_on.postgres.condition).toBe("service_healthy");
    expect(compose.services.worker.depends_on.setup.condition).toBe("service_completed_successfully");
    expect(compose.services.producer.depends_on.setup.condition).toBe("service_completed_successfully");
    expect(compose.services.dashboard.depends_on.setup.condition).toBe("service_completed_successfully");
    expect(compose.services.postgres.healthcheck.test).toContain("pg_isready");
  });

  it("runs files that exist in this repository", () => {
    const worker: string[] = compose.services.worker.command;
    expect(worker.slice(0, 4)).toEqual(["node", "--import", "tsx", "src/cli/main.ts"]);
    expect(worker).toContain("worker");
    const tasksModule = worker[worker.indexOf("--tasks") + 1]!;
    for (const file of [worker[3]!, tasksModule, compose.services.producer.command[3]]) {
      expect(existsSync(new URL(file, root)), file).toBe(true);
    }
  });

  it("serves the dashboard beyond the container's loopback only with a token from the environment, published on the host's loopback", () => {
    const dashboard = compose.services.dashboard;
    expect(dashboard.command.slice(0, 5)).toEqual(["node", "--import", "tsx", "src/cli/main.ts", "dashboard"]);
    expect(existsSync(new URL(dashboard.command[3], root))).toBe(true);
    expect(dashboard.command[dashboard.command.indexOf("--host") + 1]).toBe("0.0.0.0");
    const port = dashboard.command[dashboard.command.indexOf("--port") + 1];
    expect(dashboard.ports).toEqual([`127.0.0.1:${port}:${port}`]);
    // The CLI refuses 0.0.0.0 without a token: it comes from the user's environment, never from this file.
    expect(dashboard.environment.PUNCTUAL_DASHBOARD_TOKEN).toMatch(/^\$\{PUNCTUAL_DASHBOARD_TOKEN(:-)?\}$/);
    expect(dashboard.command).not.toContain("--token");
  });
});
