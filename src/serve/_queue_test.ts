// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { FifoQueue } from "./_queue.ts";

Deno.test("FifoQueue: grants turns one at a time in arrival order", async () => {
  const q = new FifoQueue();
  const order: number[] = [];
  let inside = 0;
  const jobs = [0, 1, 2, 3, 4].map(async (i) => {
    const release = await q.acquire();
    inside++;
    assert.equal(inside, 1, "two holders at once");
    order.push(i);
    await new Promise((r) => setTimeout(r, 1));
    inside--;
    release();
    release(); // a second call is harmless
  });
  assert.equal(q.waiting, 4);
  await Promise.all(jobs);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(q.busy, false);
});

Deno.test("FifoQueue: an aborted waiter leaves the queue and never runs", async () => {
  const q = new FifoQueue();
  const first = await q.acquire();
  const ac = new AbortController();
  const ran: string[] = [];
  const dropped = q.acquire(ac.signal).then((r) => {
    ran.push("dropped");
    r();
  });
  const kept = q.acquire().then((r) => {
    ran.push("kept");
    r();
  });
  assert.equal(q.waiting, 2);
  ac.abort(new Error("client gone"));
  await assert.rejects(dropped, /client gone/);
  assert.equal(q.waiting, 1);
  first();
  await kept;
  assert.deepEqual(ran, ["kept"]);
  // Already aborted: rejected at once, the queue untouched.
  await assert.rejects(q.acquire(AbortSignal.abort(new Error("late"))), /late/);
  assert.equal(q.busy, false);
});
