// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Hub model ids against a fake Hub on 127.0.0.1 (routes and headers as the real
// Hub answers them; see _hub_test_util.ts) serving the real golden Llama folder
// from ../shared/data, read at test time, and a sharded variant split from it.
// Library calls get the endpoint, cache and offline mode as options (the
// environment is shared with other test files running in parallel); the CLI
// test passes HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE to a subprocess.
import nodeAssert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { loadModel } from "../load_model.ts";
import { CausalLM } from "../runtime/model.ts";
import { planHubFiles } from "./_hub_files.ts";
import {
  type FakeFile,
  fakeHub,
  type FakeRepo,
  gitBlobId,
  sha256,
  splitSafetensors,
} from "./_hub_test_util.ts";
import { downloadHubModel, parseHubId, resolveModel, type ResolveModelOptions } from "./hub.ts";

const assert: (ok: unknown, msg?: string) => asserts ok = nodeAssert.ok;
const assertEquals = <T>(a: T, b: T, msg?: string): void => nodeAssert.deepStrictEqual(a, b, msg);
async function rejects(fn: () => Promise<unknown>): Promise<GptqError> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof GptqError, `expected a GptqError, got ${e}`);
    return e;
  }
  throw new nodeAssert.AssertionError({ message: "expected a rejection" });
}

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const LLAMA = fileURLToPath(
  new URL("../../../shared/data/golden/models/llama", import.meta.url),
);
const read = (name: string) => Deno.readFile(`${LLAMA}/${name}`);
const enc = new TextEncoder();

const small = async (name: string): Promise<FakeFile> => ({
  name,
  bytes: await read(name),
  lfs: false,
});
const BASE: FakeFile[] = [
  await small("config.json"),
  await small("generation_config.json"),
  await small("tokenizer.json"),
  await small("tokenizer_config.json"),
];
const MODEL: FakeFile = {
  name: "model.safetensors",
  bytes: await read("model.safetensors"),
  lfs: true,
};
// Files a real repository has that must not be fetched.
const EXTRA: FakeFile[] = [
  { name: "golden.safetensors", bytes: await read("golden.safetensors"), lfs: true },
  { name: "pytorch_model.bin", bytes: new Uint8Array(4096).fill(7), lfs: true },
  { name: "onnx/model.onnx", bytes: new Uint8Array(512).fill(9), lfs: true },
  { name: "README.md", bytes: enc.encode("# tiny llama\n"), lfs: false },
];
const GEN_V1: FakeFile = {
  name: "generation_config.json",
  bytes: enc.encode(JSON.stringify({ bos_token_id: 0, eos_token_id: 0, max_length: 64 })),
  lfs: false,
};
const C_MAIN = gitBlobId(enc.encode("commit main"));
const C_V1 = gitBlobId(enc.encode("commit v1"));
const C_SHARD = gitBlobId(enc.encode("commit sharded"));
const SHARDED = splitSafetensors(MODEL.bytes);

function repos(): Record<string, FakeRepo> {
  return {
    "tiny/llama": {
      refs: { main: C_MAIN, v1: C_V1 },
      commits: {
        [C_MAIN]: [...BASE, MODEL, ...EXTRA],
        [C_V1]: [...BASE.filter((f) => f.name !== "generation_config.json"), GEN_V1, MODEL],
      },
    },
    "tiny/llama-sharded": {
      refs: { main: C_SHARD },
      commits: {
        [C_SHARD]: [
          ...BASE,
          ...SHARDED,
          // Not in the index (as Mistral repos carry consolidated.safetensors): skipped.
          { name: "consolidated.safetensors", bytes: new Uint8Array(256).fill(3), lfs: true },
        ],
      },
    },
    "tiny/pickles": {
      refs: { main: C_MAIN },
      commits: { [C_MAIN]: [BASE[0]!, EXTRA[1]!] },
    },
  };
}

async function withHub<T>(
  fn: (hub: ReturnType<typeof fakeHub>, opts: ResolveModelOptions, home: string) => Promise<T>,
): Promise<T> {
  const hub = fakeHub(repos());
  const home = await Deno.makeTempDir({ prefix: "hf_home_" });
  try {
    return await fn(hub, { endpoint: hub.url, cacheDir: `${home}/hub`, offline: false }, home);
  } finally {
    await hub.close();
    await Deno.remove(home, { recursive: true });
  }
}

async function logits(dir: string, ids: number[]): Promise<Float32Array> {
  const lm = await CausalLM.load(dir);
  try {
    return await lm.forward(ids, lm.newCache(ids.length));
  } finally {
    lm.close();
  }
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

const IDS = [0, 17, 250, 3, 999, 42, 511, 7];
const WANT = await logits(LLAMA, IDS);

Deno.test("parseHubId and the file plan", () => {
  assertEquals(parseHubId("HuggingFaceTB/SmolLM2-135M-Instruct"), {
    repo: "HuggingFaceTB/SmolLM2-135M-Instruct",
  });
  assertEquals(parseHubId("a/b@refs/pr/1"), { repo: "a/b", revision: "refs/pr/1" });
  for (const bad of ["./a/b", "/abs/x", "a/b/c", "a", "a/b@", "a/b@../x", "a--b/c", "a/.x"]) {
    assertEquals(parseHubId(bad), null, bad);
  }
  const p = planHubFiles([
    "config.json",
    "model.safetensors",
    "golden.safetensors",
    "pytorch_model.bin",
    "onnx/model.onnx",
    "tokenizer.json",
  ]);
  assertEquals(p.small, ["config.json", "tokenizer.json"]);
  assertEquals(p.weights, ["model.safetensors"]);
  assertEquals(p.foreign, ["pytorch_model.bin"]);
  assertEquals(
    planHubFiles(["model.safetensors.index.json", "consolidated.safetensors"]).index,
    "model.safetensors.index.json",
  );
});

Deno.test("owner/name downloads into the HF cache layout, loads with equal logits, and is not fetched again", async () => {
  await withHub(async (hub, opts) => {
    const logs: string[] = [];
    const progress: number[] = [];
    const snap = await downloadHubModel("tiny/llama", {
      ...opts,
      token: "hf_secret",
      onLog: (l) => logs.push(l),
      onProgress: (p) => progress.push(p.bytes / p.totalBytes),
    });
    const repo = `${opts.cacheDir}/models--tiny--llama`;
    assertEquals(snap.dir, `${repo}/snapshots/${C_MAIN}`);
    assertEquals(snap.commit, C_MAIN);
    assertEquals(await Deno.readTextFile(`${repo}/refs/main`), C_MAIN); // no newline, as Python reads it
    const wanted = [
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ];
    assertEquals(
      await tree(repo),
      [
        ...[...BASE.map((f) => gitBlobId(f.bytes)), sha256(MODEL.bytes)].map((b) => `blobs/${b}`)
          .sort(),
        "refs/main",
        ...[...wanted, "model.safetensors"].map((f) => `snapshots/${C_MAIN}/${f}`).sort(),
      ].sort(),
    );
    // Relative symlinks into blobs/, as huggingface_hub makes them.
    assertEquals(
      await Deno.readLink(`${snap.dir}/model.safetensors`),
      `../../blobs/${sha256(MODEL.bytes)}`,
    );
    assertEquals(
      await Deno.readLink(`${snap.dir}/config.json`),
      `../../blobs/${gitBlobId(BASE[0]!.bytes)}`,
    );
    assertEquals(sha256(await Deno.readFile(`${snap.dir}/model.safetensors`)), sha256(MODEL.bytes));
    // Only what is needed was asked for; the token went to the Hub, not to the CDN.
    const paths = hub.requests.map((r) => r.path);
    assert(!paths.some((p) => /golden|pytorch_model|onnx|README/.test(p)), paths.join(" "));
    assert(
      hub.requests.filter((r) => r.server === "hub").every((r) => r.auth === "Bearer hf_secret"),
    );
    const cdn = hub.requests.filter((r) => r.server === "cdn");
    assertEquals(cdn.length, 1);
    assertEquals(cdn[0]!.auth, null);
    assert(logs.some((l) => l.startsWith("downloading tiny/llama@main")), logs.join("\n"));
    assertEquals(progress.at(-1), 1);
    // Same logits as the local folder.
    assertEquals(await logits(snap.dir, IDS), WANT);
    // Again: one listing request, nothing downloaded.
    const before = hub.requests.length;
    const again = await downloadHubModel("tiny/llama", opts);
    assertEquals(again.fromCache, true);
    assertEquals(again.dir, snap.dir);
    assertEquals(hub.requests.slice(before).map((r) => r.path), [
      `/api/models/tiny/llama/revision/main`,
    ]);
    // A local path that exists wins over the Hub.
    assertEquals(await resolveModel(LLAMA, opts), LLAMA);
  });
});

Deno.test("a sharded repository: the index's shards are fetched (nothing else) and load with equal logits", async () => {
  await withHub(async (hub, opts) => {
    const dir = await resolveModel("tiny/llama-sharded", opts);
    assertEquals((await tree(dir)).filter((f) => f.includes("safetensors")), [
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    assert(!hub.requests.some((r) => r.path.includes("consolidated")));
    assertEquals(await logits(dir, IDS), WANT);
    // loadModel takes the id and the Hub options.
    const gen = async (m: Awaited<ReturnType<typeof loadModel>>) => {
      let s = "";
      try {
        for await (const p of m.generate("The", { max_new_tokens: 6, temperature: 0 })) s += p;
      } finally {
        m.close();
      }
      return s;
    };
    assertEquals(
      await gen(await loadModel("tiny/llama-sharded", { ...opts, backend: "typescript" })),
      await gen(await loadModel(LLAMA, { backend: "typescript" })),
    );
  });
});

Deno.test("an interrupted download continues with Range and ends byte-identical", async () => {
  await withHub(async (hub, opts) => {
    const sha = sha256(MODEL.bytes);
    const blob = `${opts.cacheDir}/models--tiny--llama/blobs/${sha}`;
    // No retries: the call fails, the partial file stays.
    hub.breakOnce.add(sha);
    const e = await rejects(() => downloadHubModel("tiny/llama", { ...opts, retries: 0 }));
    assertEquals(e.code, "HUB");
    assert(e.message.includes("model.safetensors") && e.message.includes("continues"), e.message);
    const partial = (await Deno.stat(`${blob}.incomplete`)).size;
    assert(partial > 0 && partial < MODEL.bytes.length, `partial ${partial}`);
    // The next call resumes from there.
    const n = hub.requests.length;
    const snap = await downloadHubModel("tiny/llama", opts);
    const cdn = hub.requests.slice(n).filter((r) => r.server === "cdn");
    assertEquals(cdn.map((r) => r.range), [`bytes=${partial}-`]);
    assertEquals(snap.downloadedBytes, MODEL.bytes.length - partial);
    assertEquals(sha256(await Deno.readFile(blob)), sha);
    await nodeAssert.rejects(Deno.stat(`${blob}.incomplete`), Deno.errors.NotFound);
    // Within one call: the connection drops, the download reconnects with Range.
    await Deno.remove(`${opts.cacheDir}/models--tiny--llama`, { recursive: true });
    hub.breakOnce.add(sha);
    const logs: string[] = [];
    const m = hub.requests.length;
    const again = await downloadHubModel("tiny/llama", { ...opts, onLog: (l) => logs.push(l) });
    const ranges = hub.requests.slice(m).filter((r) => r.server === "cdn").map((r) => r.range);
    assertEquals(ranges.length, 2);
    assertEquals(ranges[0], null);
    assertEquals(ranges[1], `bytes=${MODEL.bytes.length >> 1}-`);
    assert(logs.some((l) => l.includes("continuing with Range")), logs.join("\n"));
    assertEquals(await Deno.readFile(`${again.dir}/model.safetensors`), MODEL.bytes);
  });
});

Deno.test("a SHA-256 mismatch is refused with a typed error and leaves no blob", async () => {
  await withHub(async (hub, opts) => {
    const sha = sha256(MODEL.bytes);
    hub.corrupt.add(sha);
    const e = await rejects(() => resolveModel("tiny/llama", opts));
    assertEquals(e.code, "HUB_INTEGRITY");
    assert(!e.message.includes("\n"), e.message);
    assert(
      e.message.startsWith("tiny/llama/model.safetensors: download refused: SHA-256"),
      e.message,
    );
    const blobs = `${opts.cacheDir}/models--tiny--llama/blobs`;
    const left = await tree(blobs);
    assert(!left.some((f) => f.startsWith(sha)), left.join(" "));
    assert(!(await tree(`${opts.cacheDir}/models--tiny--llama`)).includes("refs/main"));
    // Once the CDN serves the right bytes, it downloads.
    hub.corrupt.clear();
    assertEquals(await logits(await resolveModel("tiny/llama", opts), IDS), WANT);
  });
});

Deno.test("offline mode: cache only, with a clear error when the model is not cached", async () => {
  await withHub(async (hub, opts) => {
    const e = await rejects(() => resolveModel("tiny/llama", { ...opts, offline: true }));
    assertEquals(e.code, "HUB");
    assert(e.message.includes("HF_HUB_OFFLINE") && e.message.includes("not in the"), e.message);
    assertEquals(hub.requests.length, 0);
    const dir = await resolveModel("tiny/llama", opts);
    await hub.close();
    // Offline: from the cache, no request; a revision the cache does not know is an error.
    assertEquals(await resolveModel("tiny/llama", { ...opts, offline: true }), dir);
    assertEquals(await resolveModel(`tiny/llama@${C_MAIN}`, { ...opts, offline: true }), dir);
    await rejects(() => resolveModel("tiny/llama@v1", { ...opts, offline: true }));
    // Online with the Hub gone: the complete cached snapshot is used, with a note.
    const logs: string[] = [];
    assertEquals(await resolveModel("tiny/llama", { ...opts, onLog: (l) => logs.push(l) }), dir);
    assert(logs.some((l) => l.includes("cannot be reached")), logs.join("\n"));
    // Nothing cached and no Hub: the way out is named.
    const u = await rejects(() => resolveModel("tiny/llama-sharded", opts));
    assertEquals(u.code, "HUB");
    assert(
      u.message.includes(
        "these machines cannot reach the Hub: pass a local folder or set HF_ENDPOINT to a mirror",
      ),
      u.message,
    );
  });
});

Deno.test("revisions: @rev and the revision option pin a commit (refs/<rev>), shared blobs are not fetched again", async () => {
  await withHub(async (hub, opts) => {
    const main = await downloadHubModel("tiny/llama", opts);
    const n = hub.requests.filter((r) => r.server === "cdn").length;
    const v1 = await downloadHubModel("tiny/llama@v1", opts);
    assertEquals(v1.commit, C_V1);
    assertEquals(v1.dir, `${opts.cacheDir}/models--tiny--llama/snapshots/${C_V1}`);
    assertEquals(await Deno.readTextFile(`${opts.cacheDir}/models--tiny--llama/refs/v1`), C_V1);
    assertEquals(await Deno.readFile(`${v1.dir}/generation_config.json`), GEN_V1.bytes);
    // The weights blob is shared: not even asked for again.
    assertEquals(hub.requests.filter((r) => r.server === "cdn").length, n);
    assert(!hub.requests.some((r) => r.path === `/tiny/llama/resolve/${C_V1}/model.safetensors`));
    assertEquals(
      await Deno.realPath(`${v1.dir}/model.safetensors`),
      await Deno.realPath(`${main.dir}/model.safetensors`),
    );
    assertEquals((await downloadHubModel("tiny/llama", { ...opts, revision: "v1" })).dir, v1.dir);
    // A commit hash: no refs file, and a complete snapshot needs no request at all.
    const m = hub.requests.length;
    assertEquals(await resolveModel(`tiny/llama@${C_MAIN}`, opts), main.dir);
    assertEquals(hub.requests.length, m);
    assertEquals((await tree(`${opts.cacheDir}/models--tiny--llama/refs`)).sort(), ["main", "v1"]);
    // Conflicts and unknown revisions.
    const c = await rejects(() => resolveModel("tiny/llama@v1", { ...opts, revision: "main" }));
    assertEquals(c.code, "INVALID_ARGUMENT");
    const r = await rejects(() => resolveModel("tiny/llama@v9", opts));
    assert(r.message.includes("revision 'v9'"), r.message);
    const nf = await rejects(() => resolveModel("tiny/nope", opts));
    assert(
      nf.message.includes("no model 'tiny/nope'") && nf.message.includes("HF_TOKEN"),
      nf.message,
    );
  });
});

Deno.test("a repository without safetensors is refused with a clear message", async () => {
  await withHub(async (hub, opts) => {
    const e = await rejects(() => resolveModel("tiny/pickles", opts));
    assertEquals(e.code, "HUB");
    assert(e.message.includes("has no safetensors weights (only pytorch_model.bin)"), e.message);
    assert(!hub.requests.some((r) => r.path.includes("pytorch_model")));
  });
});

Deno.test("CLI: generate owner/name through HF_ENDPOINT with HF_HOME and HF_TOKEN; inspect, eval, quantize offline", async () => {
  await withHub(async (hub, _opts, home) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(Deno.env.toObject())) {
      if (!/^(HF_|HUGGING|GPTQ_HF_ENDPOINT$)/.test(k)) env[k] = v;
    }
    const cli = async (args: string[], extra: Record<string, string>) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, ...args],
        env: { ...env, HF_HOME: home, ...extra },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      }).output();
      const d = new TextDecoder();
      return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
    };
    const prompt = "Once upon a time";
    const m = await loadModel(LLAMA, { backend: "typescript" });
    let want = "";
    try {
      for await (const p of m.generate(prompt, { max_new_tokens: 8, temperature: 0 })) want += p;
    } finally {
      m.close();
    }
    const args = ["--prompt", prompt, "--max-new-tokens", "8", "--temperature", "0"];
    const r = await cli(
      ["generate", "tiny/llama", ...args, "--backend", "typescript", "--json"],
      { HF_ENDPOINT: hub.url, HF_TOKEN: "hf_env_token" },
    );
    assertEquals(r.code, 0, r.err);
    assert(want.length > 0);
    assertEquals(JSON.parse(r.out).text, want);
    assert(r.err.includes("downloading tiny/llama@main"), r.err);
    const snap = `${home}/hub/models--tiny--llama/snapshots/${C_MAIN}`;
    assert((await Deno.stat(`${snap}/model.safetensors`)).isFile);
    const hubReqs = hub.requests.filter((q) => q.server === "hub");
    assert(hubReqs.length > 0 && hubReqs.every((q) => q.auth === "Bearer hf_env_token"));
    assert(hub.requests.filter((q) => q.server === "cdn").every((q) => q.auth === null));
    await hub.close();
    const i = await cli(["inspect", "tiny/llama", "--json"], {
      HF_ENDPOINT: hub.url,
      HF_HUB_OFFLINE: "1",
    });
    assertEquals(i.code, 0, i.err);
    assertEquals(JSON.parse(i.out).path, snap);
    // eval and quantize take the id too (from the cache now).
    const text = `${LLAMA}/../../../text/wikitext2_test.txt`;
    const offline = { HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: "1" };
    const ev = await cli(
      ["eval", "tiny/llama", "--dataset", text, "--seqlen", "64", "--max-samples", "2", "--json"],
      offline,
    );
    assertEquals(ev.code, 0, ev.err);
    assertEquals(JSON.parse(ev.out).windows, 2);
    const q = await cli([
      "quantize",
      "tiny/llama",
      "--out",
      `${home}/q`,
      "--dataset",
      text,
      "--nsamples",
      "4",
      "--seqlen",
      "64",
      "--group-size",
      "32",
    ], offline);
    assertEquals(q.code, 0, q.err);
    assert((await Deno.stat(`${home}/q/quantize_config.json`)).isFile);
    // The API resolves the id itself: quantizeModel("owner/name", …).
    const quantizeTs = new URL("../quant/quantize.ts", import.meta.url).href;
    const api = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { quantizeModel } from "${quantizeTs}";
         const r = await quantizeModel("tiny/llama", ${JSON.stringify(`${home}/q2`)}, {
           bits: 4, group_size: 32, dataset: ${JSON.stringify(text)}, nsamples: 4, model_seqlen: 64,
         });
         console.log(r.modules.length);`,
      ],
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      env: { ...env, HF_HOME: home, ...offline },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(api.code, 0, new TextDecoder().decode(api.stderr));
    assert((await Deno.stat(`${home}/q2/quantize_config.json`)).isFile);
    const o = await cli(["generate", "tiny/llama-sharded", ...args], offline);
    assertEquals(o.code, 1);
    assert(o.err.startsWith("error: ") && o.err.includes("HF_HUB_OFFLINE"), o.err);
  });
});
