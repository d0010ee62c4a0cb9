// Drives mxjob-server through the TypeScript types generated from
// openapi/mxjob.json (openapi-typescript) and the openapi-fetch client.
//
// Usage: node main.js SERVER_URL SEED_JSON
//
// `cargo xtask clients` generates target/clients/typescript/mxjob.d.ts and
// compiles this file with `tsc --strict` (tsconfig.json beside it) into
// target/clients/typescript/dist/; tests/tests/clients.rs runs the result.
// It prints one `ok: STEP ...` line per step and exits non-zero at the first
// answer it did not expect.

import { readFileSync } from "node:fs";

import createClient from "openapi-fetch";
import type { components, paths } from "mxjob-client";

type MXJob = components["schemas"]["MXJob"];
type Status = components["schemas"]["Status"];

const LANGUAGE = "typescript";
const COLLECTION = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs";
const OBJECT = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}";

class Surprise extends Error {}

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Surprise(message);
  }
}

function step(name: string, detail: string): void {
  console.log(`ok: ${name} ${detail}`);
}

/** The successful body of an answer, or a failure naming the error. */
function body<T>(what: string, answer: { data?: T; error?: unknown; response: Response }): T {
  expect(
    answer.data !== undefined,
    `${what} answered ${answer.response.status}: ${JSON.stringify(answer.error)}`,
  );
  return answer.data;
}

/** The seed without its status and the metadata the server owns. */
function newJob(seedPath: string): MXJob {
  const seed = JSON.parse(readFileSync(seedPath, "utf-8")) as MXJob;
  const { status: _status, ...job } = seed;
  return {
    ...job,
    metadata: { name: seed.metadata.name, namespace: seed.metadata.namespace },
  };
}

async function main(args: string[]): Promise<void> {
  expect(args.length === 2, "usage: main.js SERVER_URL SEED_JSON");
  const [url, seedPath] = args;
  const job = newJob(seedPath);
  const name = job.metadata.name ?? "";
  const namespace = job.metadata.namespace ?? "";
  const client = createClient<paths>({ baseUrl: url });
  const object = { params: { path: { namespace, name } } };

  const create = await client.POST(COLLECTION, { params: { path: { namespace } }, body: job });
  const created = body("create", create);
  expect(create.response.status === 201, `create answered ${create.response.status}`);
  expect(created.metadata.name === name, `created ${created.metadata.name}`);
  expect(created.metadata.generation === 1, `generation ${created.metadata.generation}`);
  step("create", `${name} resourceVersion=${created.metadata.resourceVersion}`);

  const read = body("read", await client.GET(OBJECT, object));
  expect(read.metadata.uid === created.metadata.uid, "read returned another uid");
  expect(
    read.spec.ttlSecondsAfterFinished === job.spec.ttlSecondsAfterFinished,
    `read ttlSecondsAfterFinished=${read.spec.ttlSecondsAfterFinished}`,
  );
  step("read", `${name} uid=${read.metadata.uid}`);

  const changed: MXJob = { ...read, spec: { ...read.spec, ttlSecondsAfterFinished: 600 } };
  const replaced = body("replace", await client.PUT(OBJECT, { ...object, body: changed }));
  expect(replaced.spec.ttlSecondsAfterFinished === 600, "replace kept the old TTL");
  expect(replaced.metadata.generation === 2, `generation ${replaced.metadata.generation}`);
  expect(
    replaced.metadata.resourceVersion !== read.metadata.resourceVersion,
    "replace kept the resourceVersion",
  );
  step("replace", "ttlSecondsAfterFinished=600 generation=2");

  const patch = { metadata: { labels: { client: LANGUAGE } } };
  const patched = body("patch", await client.PATCH(OBJECT, { ...object, body: patch }));
  expect(
    JSON.stringify(patched.metadata.labels) === JSON.stringify({ client: LANGUAGE }),
    `labels ${JSON.stringify(patched.metadata.labels)}`,
  );
  expect(patched.metadata.generation === 2, "a label changed the generation");
  step("patch", `label client=${LANGUAGE}`);

  const list = async (labelSelector: string): Promise<string[]> => {
    const query = { params: { path: { namespace }, query: { labelSelector } } };
    const listed = body("list", await client.GET(COLLECTION, query));
    return listed.items.map((item) => item.metadata.name ?? "");
  };
  const names = await list(`client=${LANGUAGE}`);
  expect(JSON.stringify(names) === JSON.stringify([name]), `list by label found ${names}`);
  const others = await list("client=nobody");
  expect(others.length === 0, `list by another label found ${others}`);
  step("list", `client=${LANGUAGE} -> ${JSON.stringify(names)}`);

  // `replaced` carries the resourceVersion from before the patch.
  const stale = await client.PUT(OBJECT, { ...object, body: replaced });
  expect(stale.data === undefined, "a stale replace succeeded");
  const conflict: Status | undefined = stale.error;
  expect(stale.response.status === 409, `stale replace answered ${stale.response.status}`);
  expect(conflict !== undefined, "409 without a Status body");
  expect(conflict.reason === "Conflict", `Status reason ${conflict.reason}`);
  expect(conflict.code === 409, `Status code ${conflict.code}`);
  step("conflict", `409 ${conflict.reason}`);

  const deleted = body("delete", await client.DELETE(OBJECT, object));
  expect(deleted.status === "Success", `delete answered status ${deleted.status}`);
  const gone = await client.GET(OBJECT, object);
  expect(gone.response.status === 404, `read after delete answered ${gone.response.status}`);
  expect(gone.error?.reason === "NotFound", `read after delete: ${JSON.stringify(gone.error)}`);
  step("delete", `${name} (then 404 NotFound)`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
