/**
 * A secret the worker holds for the HTTP task: its value, or a function that returns it
 * (read at each request, so a rotated secret is picked up). `undefined` is allowed so
 * that `process.env.NAME` can be given as is; a job that needs it then fails saying the
 * secret is not set.
 */
export type SecretSource = string | undefined | (() => string | undefined | Promise<string | undefined>);

/** The secrets a worker holds, by name: what `secretHeaders` in a payload refer to. */
export type Secrets = Readonly<Record<string, SecretSource>>;

/** A secret's value as it was resolved for one request, with its name for redaction. */
export interface ResolvedSecret {
  name: string;
  value: string;
}

/**
 * Resolves the secret headers of a request: header name -> value. Errors name the
 * secret, never its value.
 */
export async function resolveSecretHeaders(
  secretHeaders: Readonly<Record<string, string>>,
  secrets: Secrets,
): Promise<{ headers: Record<string, string>; resolved: ResolvedSecret[] }> {
  const headers: Record<string, string> = {};
  const resolved: ResolvedSecret[] = [];
  for (const [header, name] of Object.entries(secretHeaders)) {
    if (!Object.hasOwn(secrets, name)) {
      throw new Error(`secret ${name} (for header ${header}) is not configured on this worker: give it in httpTask({ secrets })`);
    }
    const source = secrets[name];
    let value: unknown;
    try {
      value = typeof source === "function" ? await source() : source;
    } catch (error) {
      throw new Error(`secret ${name} (for header ${header}) could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (value === undefined || value === "") throw new Error(`secret ${name} (for header ${header}) is not set on this worker`);
    if (typeof value !== "string" || /[\r\n\u0000]/.test(value)) {
      throw new Error(`secret ${name} (for header ${header}) is not a valid header value: a string without CR, LF or NUL`);
    }
    headers[header] = value;
    resolved.push({ name, value });
  }
  return { headers, resolved };
}

/**
 * A function that replaces every verbatim occurrence of the secrets' values in a text
 * with `[secret NAME]`: for what a server or a library may echo (a body, a header, an
 * error message) before it is stored or logged. For a value of the form `Scheme
 * credentials` (`Bearer abc...`), the credentials alone are replaced too. Longest first,
 * so a secret that contains another is replaced whole.
 */
export function secretRedactor(secrets: readonly ResolvedSecret[]): (text: string) => string {
  const needles: { text: string; name: string }[] = [];
  for (const { name, value } of secrets) {
    needles.push({ text: value, name });
    const credentials = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*\s+(\S.*)$/.exec(value)?.[1];
    if (credentials && credentials.length >= 8) needles.push({ text: credentials, name });
  }
  needles.sort((a, b) => b.text.length - a.text.length);
  if (needles.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const needle of needles) out = out.replaceAll(needle.text, `[secret ${needle.name}]`);
    return out;
  };
}

/** The longest secret value, in UTF-8 bytes: how far past the excerpt's end a body is read, so that no secret is cut in half there. */
export function longestSecretBytes(secrets: readonly ResolvedSecret[]): number {
  return secrets.reduce((max, { value }) => Math.max(max, Buffer.byteLength(value)), 0);
}
