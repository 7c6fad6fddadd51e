// The room's and the presenter view's own code (static/js/room/quorum.js and dom.js), run on
// snapshots the server made: reads JSON lines {"state", "finished"} on stdin and writes, for
// each, what the page would say per case: [voted, total, agreement words].

import { createInterface } from "node:readline";

globalThis.document = {
  getElementById: () => null,
  querySelector: () => null,
  documentElement: { lang: "en" },
};

const { tally } = await import("../../static/js/room/quorum.js");
const { agreementText } = await import("../../static/js/room/dom.js");

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { state } = JSON.parse(line);
  const finished = state.session.status === "finished";
  const anonymous = Boolean(state.session.anonymous);
  const said = state.cases.map((c) => {
    const { voted, total } = tally(state.participants, c, anonymous);
    const words = c.results && c.results.band ? agreementText(c.results, c, finished) : "";
    return [voted, total, words];
  });
  process.stdout.write(JSON.stringify(said) + "\n");
}
