// Load generator for bench/compare.py: the same scenarios against stackvote and the Node.js
// reference peers, with the official socket.io-client, measuring what the benchmark reports.
//
//   node scenarios.mjs --scenario storm --url http://127.0.0.1:8000[,http://...] [options]
//
// Scenarios (one facilitator per room; everyone votes; all sessions hidden):
//   storm   one room of --per-room clients; each voter casts --votes votes at random moments
//           within --vote-window seconds; then the facilitator reveals everything
//   rooms   --rooms rooms of --per-room clients, each voting every ~--vote-interval seconds
//           (uniform jitter of +-50 %) for --duration seconds
//   idle    --rooms rooms of --per-room clients, connected and silent for --duration seconds
//
// Where clients go when there are several URLs (--placement): "connection" (the default) sends
// each new connection to the next server in turn, as a round-robin load balancer does, so a
// room's people are spread over every server; "room" puts every client of a room (and the
// request creating it) on one server, as a balancer hashing on the session would.
// --quiet-facilitator: the facilitator opens the cases and reveals, but does not vote.
//
// Every client keeps its own view of its room from `state` and `delta` events (a delta whose
// base is not the client's version makes it ask for `sync`), and the time each version
// reached it. Printed on stdout while running: "PHASE <name>" lines (the driver samples the
// servers' CPU and memory at each), and at the end one "RESULT <json>" line.

import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    scenario: { type: "string", default: "storm" },
    rooms: { type: "string", default: "1" },
    "per-room": { type: "string", default: "1001" },
    votes: { type: "string", default: "3" },
    "vote-window": { type: "string", default: "10" },
    "vote-interval": { type: "string", default: "2" },
    duration: { type: "string", default: "30" },
    "connect-concurrency": { type: "string", default: "100" },
    "ack-timeout": { type: "string", default: "10" },
    seed: { type: "string", default: "1" },
    placement: { type: "string", default: "connection" },
    "quiet-facilitator": { type: "boolean", default: false },
  },
});
const URLS = values.url.split(",").map((u) => u.replace(/\/+$/, ""));
const SCENARIO = values.scenario;
const ROOMS = Number(values.rooms);
const PER_ROOM = Number(values["per-room"]);
const ACK_TIMEOUT = Number(values["ack-timeout"]) * 1000;
const PLACEMENT = values.placement;
if (!["connection", "room"].includes(PLACEMENT)) {
  throw new Error(`--placement must be connection or room, not ${PLACEMENT}`);
}
for (const url of URLS) {
  if (!["127.0.0.1", "localhost"].includes(new URL(url).hostname)) {
    throw new Error(`only local servers may be loaded, not ${url}`);
  }
}

// A small seeded generator, so every server gets the same plan.
let seed = Number(values.seed) >>> 0 || 1;
function random() {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

function phase(name) {
  console.log(`PHASE ${name}`);
}

async function post(url, path, body) {
  const response = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function get(url, path) {
  const response = await fetch(url + path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// ---------- one client

class Client {
  constructor(room, url, auth) {
    this.room = room;
    this.url = url;
    this.auth = auth;
    this.id = null;
    this.version = -1;
    this.session = null;
    this.people = new Map();
    this.cases = new Map();
    this.timeline = []; // [time, version] each time the view moved on
    this.messages = 0;
    this.gaps = 0;
    this.syncing = false;
    this.seated = null;
  }

  /** Connect like the browser does: turned away for now (busy, too fast, storage down), it
   * tries again a moment later. */
  async connect() {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const outcome = await this.connectOnce();
      if (outcome !== "later") return outcome;
      this.retries = (this.retries ?? 0) + 1;
      await sleep(500 + random() * 1500);
    }
    return false;
  }

  connectOnce() {
    return new Promise((resolve) => {
      const started = now();
      this.socket = io(this.url, {
        transports: ["websocket"],
        auth: this.auth,
        reconnection: false,
        forceNew: true,
        timeout: 20000,
        extraHeaders: { origin: this.url },
      });
      this.socket.on("welcome", (w) => {
        this.id = w.participant_id;
      });
      this.socket.on("state", (s) => {
        this.messages += 1;
        this.take(s);
        if (this.seated === null) {
          this.seated = now() - started;
          resolve(true);
        }
      });
      this.socket.on("delta", (d) => {
        this.messages += 1;
        this.apply(d);
      });
      this.socket.on("connect_error", (err) => {
        this.error = err.message;
        const code = err.data?.code;
        resolve(["busy", "rate_limited", "unavailable"].includes(code) ? "later" : false);
      });
    });
  }

  take(state) {
    if (state.version <= this.version) return;
    this.session = state.session;
    this.people = new Map(state.participants.map((p) => [p.id, p]));
    this.cases = new Map(state.cases.map((c) => [c.id, c]));
    this.moved(state.version);
  }

  apply(delta) {
    if (this.version < 0 || delta.version <= this.version) return;
    if (delta.base !== this.version) {
      this.gaps += 1;
      this.resync();
      return;
    }
    if (delta.session) this.session = delta.session;
    for (const p of delta.participants ?? []) this.people.set(p.id, p);
    for (const gone of delta.gone ?? []) this.people.delete(gone);
    for (const c of delta.cases ?? []) this.cases.set(c.id, c);
    this.moved(delta.version);
  }

  moved(version) {
    this.version = version;
    this.timeline.push(now(), version);
  }

  resync() {
    if (this.syncing) return;
    this.syncing = true;
    this.socket.timeout(ACK_TIMEOUT).emit("sync", (err, state) => {
      this.syncing = false;
      if (!err) this.take(state);
    });
  }

  /** When this client first saw `version` or newer (Infinity if never). */
  sawAt(version) {
    const t = this.timeline;
    let lo = 0;
    let hi = t.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (t[2 * mid + 1] >= version) hi = mid;
      else lo = mid + 1;
    }
    return lo < t.length / 2 ? t[2 * lo] : Infinity;
  }

  call(event, data) {
    return new Promise((resolve) => {
      this.socket.timeout(ACK_TIMEOUT).emit(event, data, (err, ack) => resolve(err ? null : ack));
    });
  }
}

// ---------- the run

const stats = {
  scenario: SCENARIO,
  connections: { ok: 0, failed: 0, errors: {}, seconds: 0, p99_seat_ms: 0 },
  votes: { sent: 0, ok: 0, refused: {}, timeouts: 0 },
  // The facilitator's controls: sent (every attempt), taken, turned away (by reason), and
  // those never taken however often sent.
  controls: { sent: 0, ok: 0, refused: {}, failed: 0 },
  ack_ms: [],
  visible_ms: [],
};

async function seat(rooms) {
  phase("connect");
  const started = now();
  const clients = rooms.flatMap((r) => r.clients);
  let next = 0;
  const workers = Array.from({ length: Number(values["connect-concurrency"]) }, async () => {
    while (next < clients.length) {
      const client = clients[next++];
      if (await client.connect()) stats.connections.ok += 1;
      else {
        stats.connections.failed += 1;
        stats.connections.errors[client.error] = (stats.connections.errors[client.error] ?? 0) + 1;
      }
    }
  });
  await Promise.all(workers);
  stats.connections.seconds = (now() - started) / 1000;
  stats.connections.retries = clients.reduce((n, c) => n + (c.retries ?? 0), 0);
  const seats = clients.filter((c) => c.seated !== null).map((c) => c.seated).sort((a, b) => a - b);
  stats.connections.p99_seat_ms = seats.length ? seats[Math.floor(seats.length * 0.99)] : null;
  phase("seated");
}

async function makeRooms() {
  const rooms = [];
  for (let r = 0; r < ROOMS; r += 1) {
    const url = URLS[r % URLS.length];
    const created = await post(url, "/api/sessions", { title: `bench ${r}`, template: "django" });
    const room = { id: created.id, url, clients: [], acked: new Map(), uncertain: new Set(), votes: [] };
    for (let n = 0; n < PER_ROOM; n += 1) {
      const auth = { session: created.id, name: `P${r}-${n}` };
      if (n === 0) auth.facilitator_token = created.facilitator_token;
      const server = PLACEMENT === "room" ? url : URLS[(r * PER_ROOM + n) % URLS.length];
      room.clients.push(new Client(room, server, auth));
    }
    rooms.push(room);
  }
  return rooms;
}

async function vote(client, cases) {
  const caseId = pick(cases);
  const score = Math.floor(random() * 5);
  const sent = now();
  stats.votes.sent += 1;
  const ack = await client.call("vote", { case: caseId, score });
  const key = `${client.id}|${caseId}`;
  if (ack === null) {
    stats.votes.timeouts += 1;
    client.room.uncertain.add(key);
    return;
  }
  stats.ack_ms.push(now() - sent);
  if (!ack.ok) {
    stats.votes.refused[ack.error] = (stats.votes.refused[ack.error] ?? 0) + 1;
    return;
  }
  stats.votes.ok += 1;
  client.room.acked.set(key, score);
  client.room.votes.push([sent, ack.version]);
}

/** A facilitator's control, sent again as the page does when it is turned away for now
 * (`retry`) or not answered (opening and revealing everything can be repeated safely). */
async function control(client, payload) {
  for (let attempt = 0; attempt < 10; attempt += 1) {
    stats.controls.sent += 1;
    const ack = await client.call("control", payload);
    if (ack?.ok) {
      stats.controls.ok += 1;
      return ack;
    }
    const why = ack === null ? "no answer" : ack.error;
    stats.controls.refused[why] = (stats.controls.refused[why] ?? 0) + 1;
    if (ack !== null && !ack.retry) break;
    await sleep(200 + random() * 300);
  }
  stats.controls.failed += 1;
  return null;
}

async function voteAt(client, cases, times) {
  const start = now();
  for (const at of times) {
    const wait = start + at - now();
    if (wait > 0) await sleep(wait);
    await vote(client, cases);
  }
}

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

async function settle(rooms) {
  // Reveal everything, wait until every client has seen the reveal, then compare.
  phase("reveal");
  const reveals = await Promise.all(rooms.map((r) => control(r.clients[0], { action: "reveal_all" })));
  const deadline = now() + 15000;
  for (const [i, room] of rooms.entries()) {
    const target = reveals[i]?.version ?? 0;
    while (now() < deadline && room.clients.some((c) => c.version < target)) await sleep(50);
  }
  await sleep(500);
  phase("check");
  const check = { clients: 0, behind: 0, mismatched: 0, results_ok: 0, results_wrong: 0, wrong_examples: [] };
  for (const room of rooms) {
    // Asked where the room was created (the same answer from any server sharing a store).
    const server = await get(room.url, `/api/sessions/${room.id}`);
    const results = await get(room.url, `/api/sessions/${room.id}/results`);
    for (const client of room.clients) {
      check.clients += 1;
      if (client.version < server.version) check.behind += 1;
      const same =
        client.version === server.version &&
        server.cases.every((c) => {
          const mine = client.cases.get(c.id);
          return mine && mine.votes_in === c.votes_in && mine.status === c.status;
        }) &&
        server.participants.length === client.people.size;
      if (!same) check.mismatched += 1;
    }
    // The results API must hold exactly the acknowledged votes.
    const counted = new Map();
    for (const c of results.cases) {
      for (const b of c.ballots ?? []) counted.set(`${b.participant}|${c.id}`, b.score);
    }
    let right = counted.size >= room.acked.size;
    for (const [key, score] of room.acked) {
      if (room.uncertain.has(key)) continue;
      if (counted.get(key) !== score) {
        right = false;
        if (check.wrong_examples.length < 5) check.wrong_examples.push({ key, acked: score, counted: counted.get(key) ?? null });
      }
    }
    for (const key of counted.keys()) {
      if (!room.acked.has(key) && !room.uncertain.has(key)) {
        right = false;
        if (check.wrong_examples.length < 5) check.wrong_examples.push({ key, acked: null, counted: counted.get(key) });
      }
    }
    if (right) check.results_ok += 1;
    else check.results_wrong += 1;
  }
  return check;
}

function visibility(rooms) {
  // Vote to visible: from sending the vote to the moment the last client of its room saw a
  // version at least as new as the one the ack named.
  const out = [];
  for (const room of rooms) {
    for (const [sent, version] of room.votes) {
      let last = 0;
      for (const client of room.clients) {
        const at = client.sawAt(version);
        if (at > last) last = at;
      }
      if (Number.isFinite(last)) out.push(last - sent);
    }
  }
  return out;
}

function clientsMessages(rooms) {
  return rooms.flatMap((r) => r.clients.map((c) => c.messages));
}

/** Per server: its clients, and the messages they received in all and while voting. */
function perServer(rooms, voteMessages) {
  const out = new Map(URLS.map((url) => [url, { url, clients: 0, messages: 0, vote_messages: 0 }]));
  for (const [i, client] of rooms.flatMap((r) => r.clients).entries()) {
    const entry = out.get(client.url);
    entry.clients += 1;
    entry.messages += client.messages;
    entry.vote_messages += voteMessages ? voteMessages[i] : 0;
  }
  return [...out.values()];
}

let voteMessages = null;

async function main() {
  const cpuStart = process.cpuUsage();
  const rooms = await makeRooms();
  await seat(rooms);
  const cases = (await get(rooms[0].url, `/api/sessions/${rooms[0].id}`)).cases.map((c) => c.id);
  await Promise.all(rooms.map((r) => control(r.clients[0], { action: "open_all" })));
  await sleep(300);

  let check = null;
  if (SCENARIO === "idle") {
    phase("idle");
    await sleep(Number(values.duration) * 1000);
    phase("idle-end");
  } else {
    phase("vote");
    const before = clientsMessages(rooms);
    const plans = [];
    for (const room of rooms) {
      for (const client of room.clients) {
        if (!client.id) continue;
        if (values["quiet-facilitator"] && client === room.clients[0]) continue;
        const times = [];
        if (SCENARIO === "storm") {
          const window = Number(values["vote-window"]) * 1000;
          for (let i = 0; i < Number(values.votes); i += 1) times.push(random() * window);
          times.sort((a, b) => a - b);
        } else {
          const mean = Number(values["vote-interval"]) * 1000;
          let t = random() * mean;
          while (t < Number(values.duration) * 1000) {
            times.push(t);
            t += mean * (0.5 + random());
          }
        }
        plans.push(voteAt(client, cases, times));
      }
    }
    await Promise.all(plans);
    phase("vote-end");
    voteMessages = clientsMessages(rooms).map((n, i) => n - before[i]);
    await sleep(1000);
    check = await settle(rooms);
  }

  const clients = rooms.flatMap((r) => r.clients);
  const visible = visibility(rooms);
  const cpu = process.cpuUsage(cpuStart);
  const result = {
    scenario: SCENARIO,
    connections: stats.connections,
    votes: stats.votes,
    controls: stats.controls,
    ack_ms: { p50: percentile(stats.ack_ms, 0.5), p99: percentile(stats.ack_ms, 0.99) },
    visible_ms: {
      p50: percentile(visible, 0.5),
      p99: percentile(visible, 0.99),
      max: percentile(visible, 1),
      measured: visible.length,
    },
    messages: clients.reduce((n, c) => n + c.messages, 0),
    gaps: clients.reduce((n, c) => n + c.gaps, 0),
    per_server: perServer(rooms, voteMessages),
    check,
    generator_cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  for (const c of clients) c.socket?.disconnect();
  setTimeout(() => process.exit(0), 500);
}

setTimeout(() => {
  console.error("scenario took too long; giving up");
  process.exit(3);
}, 600_000).unref();

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
