/**
 * Starts (or finds) PostgreSQL once per test run and migrates a template database;
 * each test file then clones the template (`CREATE DATABASE ... TEMPLATE`), which is
 * far cheaper than migrating per file. See dev/database.ts for how the server is chosen.
 */
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startDevDatabase } from "../dev/database.js";
import { migrate } from "../src/migrate.js";
import { databaseUrl } from "./support/urls.js";

declare module "vitest" {
  export interface ProvidedContext {
    adminUrl: string;
    templateDatabase: string;
    databaseSource: string;
  }
}

export default async function setup(project: TestProject) {
  const database = await startDevDatabase({
    dataDir: path.join(tmpdir(), `punctual-test-pg-${process.pid}`),
    persistent: false,
    log: (message) => console.warn(message),
  });
  const template = `punctual_test_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`drop database if exists "${template}"`);
  await admin.query(`create database "${template}"`);
  await migrate(databaseUrl(database.url, template));
  console.log(`tests use PostgreSQL from ${database.source}`);
  project.provide("adminUrl", database.url);
  project.provide("templateDatabase", template);
  project.provide("databaseSource", database.source);
  return async () => {
    await admin.query(`drop database if exists "${template}"`);
    await admin.end();
    await database.stop();
  };
}
