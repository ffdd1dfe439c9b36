// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { StopFilter } from "./_stop.ts";

/** Feeds pieces; returns the emitted text and whether it stopped. */
function feed(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const f = new StopFilter(stops);
  let text = "";
  for (const p of pieces) {
    const s = f.push(p);
    text += s.text;
    if (s.stopped) return { text, stopped: true };
  }
  return { text: text + f.end(), stopped: false };
}

Deno.test("StopFilter: output equals the text cut before the first stop, however it is split", () => {
  const text = "Once upon a time, there was a cat.\nThe end.\n\nTHE END";
  for (const stops of [["\n\n"], ["cat", "time"], ["END"], ["zzz"], ["a time, t"], []]) {
    let cut = text.length;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0) cut = Math.min(cut, i);
    }
    // Every split into pieces of 1..4 characters gives the same result.
    for (let size = 1; size <= 4; size++) {
      const pieces: string[] = [];
      for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
      const r = feed(stops, pieces);
      assert.equal(r.text, text.slice(0, cut), `stops ${JSON.stringify(stops)}, size ${size}`);
      assert.equal(r.stopped, cut < text.length);
    }
  }
});

Deno.test("StopFilter: holds back only a possible stop prefix", () => {
  const f = new StopFilter(["</s>"]);
  assert.deepEqual(f.push("ab<"), { text: "ab", stopped: false });
  assert.deepEqual(f.push("/x"), { text: "</x", stopped: false });
  assert.deepEqual(f.push("</"), { text: "", stopped: false });
  assert.equal(f.end(), "</");
});
