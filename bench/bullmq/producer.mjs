// BullMQ's producer, timed as bench/bench_add.py times the bridge's: one process, adds awaited
// one at a time (or addBulk in chunks), the same payload shape, a warm-up, then the timed run.
// Usage: node producer.mjs REDIS_URL MODE JOBS CHUNK WARMUP   (MODE: add-key | add | add-bulk)
// Prints {"jobs": n, "seconds": s} on success; exits 1 if the queue does not hold every job.
import { Queue } from "bullmq";
import IORedis from "ioredis";

const [url, mode, jobsText, chunkText, warmupText] = process.argv.slice(2);
const jobs = Number(jobsText);
const chunk = Number(chunkText);
const warmup = Number(warmupText);
// BullMQ takes an ioredis client it is handed (its documented way under ES modules).
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const NAME = "bench.noop";
const runId = Math.random().toString(16).slice(2, 10);

function inputs(tag, n) {
  const payloads = [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    payloads.push({ order_id: i, email: `user${i}@example.com` });
    ids.push(`bench-${runId}-${tag}-${i}`);
  }
  return [payloads, ids];
}

async function send(queue, payloads, ids) {
  if (mode === "add-key") {
    for (let i = 0; i < payloads.length; i++) await queue.add(NAME, payloads[i], { jobId: ids[i] });
  } else if (mode === "add") {
    for (let i = 0; i < payloads.length; i++) await queue.add(NAME, payloads[i]);
  } else if (mode === "add-bulk") {
    for (let start = 0; start < payloads.length; start += chunk) {
      const items = [];
      for (let i = start; i < Math.min(start + chunk, payloads.length); i++) {
        items.push({ name: NAME, data: payloads[i], opts: { jobId: ids[i] } });
      }
      await queue.addBulk(items);
    }
  } else {
    throw new Error(`unknown MODE ${mode}: add-key, add or add-bulk`);
  }
}

const queue = new Queue("bench", { connection });
await queue.waitUntilReady();
const client = connection; // the same connection BullMQ uses; flushes only its database
await client.flushdb();
await send(queue, ...inputs("warmup", warmup)); // scripts loaded, connection open
await client.flushdb();
const [payloads, ids] = inputs("timed", jobs);
const started = process.hrtime.bigint();
await send(queue, payloads, ids);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const waiting = await queue.getWaitingCount();
await client.flushdb();
await queue.close();
await connection.quit();
if (waiting !== jobs) {
  console.error(`FAILED: BullMQ ${mode} sent ${jobs} jobs but the queue holds ${waiting}`);
  process.exit(1);
}
console.log(JSON.stringify({ jobs, seconds }));
