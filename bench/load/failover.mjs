// Load generator for bench/failover.py: rooms that keep voting while the driver breaks Redis
// under them (kills a primary, moves slots), with votes sent the way the browser's outbox sends
// them, and what every vote and every client went through written down for the driver.
//
//   node failover.mjs --url http://127.0.0.1:8001,http://127.0.0.1:8002 --rooms 50 \
//     --voters 10 --duration 40 --log votes.json
//
// Each room: a facilitator who opens every case (and reveals them all at the end) and --voters
// voters, spread over the URLs round-robin per connection. Each voter votes on a random case
// every ~--vote-interval seconds (uniform jitter of +-50 %) for --duration seconds. A vote
// carries a client id and a sequence number, and is sent again with the same pair, as the
// browser does, when no answer comes within --ack-timeout seconds or the answer is a refusal
// "for now" (busy, storage unreachable); after --give-up seconds it is left: "unknown" if an
// attempt went unanswered (it may have been stored), else "refused". A client whose socket
// drops connects again with its participant token.
//
// Printed on stdout: "ROOMS <json session ids>", "PHASE <name> <epoch ms>" (vote, vote-end,
// check) and at the end "RESULT <json>". --log gets every vote: room, voter, case, score, seq,
// first and last attempt (epoch ms), ack time and version, outcome, attempts, unanswered ones.
// The check at the end counts ballots that are not the last acknowledged vote of their voter on
// that case (nor a later vote left unknown): acknowledged votes missing, votes refused but
// counted all the same, and ballots from no vote sent at all.

import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
// The browser's own way of applying a delta.
import { applyDelta } from "../../static/js/room/delta.js";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    rooms: { type: "string", default: "50" },
    voters: { type: "string", default: "10" },
    "vote-interval": { type: "string", default: "2" },
    duration: { type: "string", default: "40" },
    "ack-timeout": { type: "string", default: "3" },
    "give-up": { type: "string", default: "60" },
    settle: { type: "string", default: "30" },
    "connect-concurrency": { type: "string", default: "50" },
    log: { type: "string", default: "" },
    seed: { type: "string", default: "1" },
  },
});
const URLS = values.url.split(",").map((u) => u.replace(/\/+$/, ""));
const ROOMS = Number(values.rooms);
const VOTERS = Number(values.voters);
const INTERVAL = Number(values["vote-interval"]) * 1000;
const DURATION = Number(values.duration) * 1000;
const ACK_TIMEOUT = Number(values["ack-timeout"]) * 1000;
const GIVE_UP = Number(values["give-up"]) * 1000;
const SETTLE = Number(values.settle) * 1000;
for (const url of URLS) {
  if (!["127.0.0.1", "localhost"].includes(new URL(url).hostname)) {
    throw new Error(`only local servers may be loaded, not ${url}`);
  }
}

let seed = Number(values.seed) >>> 0 || 1;
function random() {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Wall-clock milliseconds, comparable with the driver's time.time().
const epoch = () => performance.timeOrigin + performance.now();

function phase(name) {
  console.log(`PHASE ${name} ${epoch()}`);
}

/** An HTTP call, tried again while the server says storage is unreachable (503). */
async function request(method, url, path, body) {
  const deadline = epoch() + GIVE_UP;
  for (;;) {
    let response;
    try {
      response = await fetch(url + path, {
        method,
        headers: { "content-type": "application/json", origin: url },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (epoch() > deadline) throw err;
      await sleep(250);
      continue;
    }
    if (response.ok) return response.json();
    if (response.status !== 503 || epoch() > deadline) {
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    }
    await sleep(250);
  }
}

// ---------- one client

class Client {
  constructor(room, index, url, auth) {
    this.room = room;
    this.index = index;
    this.url = url;
    this.auth = auth;
    this.clientId = `bench-${room.index}-${index}-${Math.floor(random() * 1e9)}`;
    this.seq = 0;
    this.id = null;
    this.token = null;
    this.snapshot = null;
    this.version = -1;
    this.syncing = false;
    this.connected = false;
    this.drops = 0;
    this.gaps = 0;
    this.reconnecting = null;
  }

  /** Connect (again, with the participant token once there is one); true once seated. */
  async connect() {
    for (let attempt = 0; attempt < 60; attempt += 1) {
      const outcome = await this.connectOnce();
      if (outcome === true) return true;
      if (outcome === false) return false;
      await sleep(250 + random() * 500);
    }
    return false;
  }

  connectOnce() {
    return new Promise((resolve) => {
      const auth = this.token ? { session: this.auth.session, token: this.token } : this.auth;
      if (this.token && this.auth.facilitator_token) auth.facilitator_token = this.auth.facilitator_token;
      const socket = io(this.url, {
        transports: ["websocket"],
        auth,
        reconnection: false,
        forceNew: true,
        timeout: 20000,
        extraHeaders: { origin: this.url },
      });
      this.socket = socket;
      let seated = false;
      socket.on("welcome", (w) => {
        this.id = w.participant_id;
        this.token = w.token;
      });
      socket.on("state", (s) => {
        this.take(s);
        if (!seated) {
          seated = true;
          this.connected = true;
          resolve(true);
        }
      });
      socket.on("delta", (d) => this.apply(d));
      socket.on("connect_error", (err) => {
        this.error = err.message;
        const code = err.data?.code;
        socket.close();
        resolve(["busy", "rate_limited", "unavailable"].includes(code) || !err.data ? "later" : false);
      });
      socket.on("disconnect", (reason) => {
        if (!seated || this.closing) return;
        this.connected = false;
        this.drops += 1;
        this.lastDrop = reason;
        this.reconnecting = this.connect().finally(() => {
          this.reconnecting = null;
        });
      });
    });
  }

  take(state) {
    // As the browser: a snapshot older than the one on screen is ignored.
    if (state.version <= this.version) return;
    this.snapshot = state;
    this.version = state.version;
  }

  apply(delta) {
    if (!this.snapshot || delta.version <= this.version) return;
    const next = applyDelta(this.snapshot, delta);
    if (next === null) {
      this.gaps += 1;
      this.resync();
      return;
    }
    this.snapshot = next;
    this.version = next.version;
  }

  resync() {
    if (this.syncing) return;
    this.syncing = true;
    this.socket.timeout(ACK_TIMEOUT).emit("sync", (err, state) => {
      this.syncing = false;
      if (!err && state && typeof state.version === "number") this.take(state);
    });
  }

  /** One attempt: the ack, or null if none came in time. */
  call(event, data) {
    return new Promise((resolve) => {
      if (!this.connected) {
        resolve(null);
        return;
      }
      this.socket.timeout(ACK_TIMEOUT).emit(event, data, (err, ack) => resolve(err ? null : ack));
    });
  }

  /** Send until answered for good (ok, or a refusal that is not "for now"), or GIVE_UP. */
  async deliver(event, data, record) {
    const deadline = epoch() + GIVE_UP;
    for (;;) {
      if (this.reconnecting) await this.reconnecting;
      record.attempts += 1;
      record.sent = epoch();
      const ack = await this.call(event, data);
      if (ack === null) {
        record.unanswered += 1;
      } else if (ack.ok) {
        record.acked = epoch();
        record.version = ack.version;
        record.outcome = "acked";
        return ack;
      } else if (ack.retry) {
        record.refusals[ack.error] = (record.refusals[ack.error] ?? 0) + 1;
      } else {
        record.outcome = "refused";
        record.error = ack.error;
        return ack;
      }
      if (epoch() > deadline) {
        record.outcome = record.unanswered ? "unknown" : "refused";
        return null;
      }
      await sleep(200 + random() * 300);
    }
  }
}

// ---------- the run

const votes = [];

async function makeRooms() {
  const rooms = [];
  for (let r = 0; r < ROOMS; r += 1) {
    const created = await request("POST", URLS[r % URLS.length], "/api/sessions", {
      title: `failover ${r}`,
      template: "django",
    });
    const room = { index: r, id: created.id, clients: [] };
    for (let n = 0; n <= VOTERS; n += 1) {
      const auth = { session: created.id, name: `P${r}-${n}` };
      if (n === 0) auth.facilitator_token = created.facilitator_token;
      const url = URLS[(r * (VOTERS + 1) + n) % URLS.length];
      room.clients.push(new Client(room, n, url, auth));
    }
    rooms.push(room);
  }
  return rooms;
}

async function seat(clients) {
  let next = 0;
  let failed = 0;
  const workers = Array.from({ length: Number(values["connect-concurrency"]) }, async () => {
    while (next < clients.length) {
      const client = clients[next++];
      if (!(await client.connect())) failed += 1;
    }
  });
  await Promise.all(workers);
  return failed;
}

async function voter(client, cases, end) {
  let at = epoch() + random() * INTERVAL;
  for (;;) {
    const wait = at - epoch();
    if (wait > 0) await sleep(wait);
    if (epoch() >= end) return;
    client.seq += 1;
    const record = {
      room: client.room.index,
      voter: client.index,
      participant: client.id,
      case: pick(cases),
      score: Math.floor(random() * 5),
      seq: client.seq,
      first: epoch(),
      sent: 0,
      acked: null,
      version: null,
      outcome: null,
      attempts: 0,
      unanswered: 0,
      refusals: {},
    };
    votes.push(record);
    await client.deliver(
      "vote",
      { case: record.case, score: record.score, client: client.clientId, seq: record.seq },
      record,
    );
    at = Math.max(at + INTERVAL * (0.5 + random()), epoch());
  }
}

/** Reveal everything in every room, wait for every client to see it, then compare each
 * client's view, and the results, with what the server holds. */
async function check(rooms) {
  const reveals = await Promise.all(
    rooms.map((room) => {
      const record = { attempts: 0, unanswered: 0, refusals: {} };
      return room.clients[0].deliver("control", { action: "reveal_all" }, record);
    }),
  );
  const deadline = epoch() + SETTLE;
  for (const [i, room] of rooms.entries()) {
    const target = reveals[i]?.version ?? 0;
    while (epoch() < deadline && room.clients.some((c) => c.version < target)) await sleep(100);
  }
  await sleep(1000);
  phase("check");
  const out = {
    clients: 0,
    converged: 0,
    behind: 0,
    ahead: 0,
    different: 0,
    unrevealed_rooms: reveals.filter((r) => !r?.ok).length,
    rooms_wrong: 0,
    acked_missing: 0,
    refused_counted: 0,
    unexpected: 0,
    examples: [],
  };
  const byKey = new Map();
  for (const v of votes) {
    const key = `${v.room}|${v.participant}|${v.case}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(v);
  }
  for (const room of rooms) {
    const server = await request("GET", URLS[0], `/api/sessions/${room.id}`);
    const results = await request("GET", URLS[0], `/api/sessions/${room.id}/results`);
    for (const client of room.clients) {
      out.clients += 1;
      const mine = client.snapshot;
      const same =
        client.version === server.version &&
        mine !== null &&
        server.cases.every((c) => {
          const seen = mine.cases.find((m) => m.id === c.id);
          return seen && seen.votes_in === c.votes_in && seen.status === c.status;
        }) &&
        server.participants.length === mine.participants.length;
      if (same) out.converged += 1;
      else if (client.version < server.version) out.behind += 1;
      else if (client.version > server.version) out.ahead += 1;
      else out.different += 1;
    }
    // Each ballot must be the last acknowledged vote of its voter on that case, or a later
    // vote whose fate was left unknown.
    const counted = new Map();
    for (const c of results.cases) {
      for (const b of c.ballots ?? []) counted.set(`${room.index}|${b.participant}|${c.id}`, b.score);
    }
    let right = true;
    const keys = new Set([...counted.keys()]);
    for (const [key, list] of byKey) if (key.startsWith(`${room.index}|`)) keys.add(key);
    for (const key of keys) {
      const list = byKey.get(key) ?? [];
      let last = -1;
      for (const [i, v] of list.entries()) if (v.outcome === "acked") last = i;
      const allowed = new Set(last >= 0 ? [list[last].score] : [undefined]);
      for (const v of list.slice(last + 1)) if (v.outcome === "unknown") allowed.add(v.score);
      const value = counted.get(key);
      if (allowed.has(value)) continue;
      right = false;
      // A later vote refused ({ok: false}: "not counted") that was counted after all?
      const refused = list.slice(last + 1).find((v) => v.outcome === "refused" && v.score === value);
      if (refused) out.refused_counted += 1;
      else if (last >= 0) out.acked_missing += 1;
      else out.unexpected += 1;
      if (out.examples.length < 5) {
        out.examples.push({ key, counted: value ?? null, votes: list });
      }
    }
    if (!right) out.rooms_wrong += 1;
  }
  return out;
}

async function main() {
  const cpuStart = process.cpuUsage();
  const rooms = await makeRooms();
  console.log(`ROOMS ${JSON.stringify(rooms.map((r) => r.id))}`);
  const clients = rooms.flatMap((r) => r.clients);
  const failed = await seat(clients);
  const cases = (await request("GET", URLS[0], `/api/sessions/${rooms[0].id}`)).cases.map((c) => c.id);
  await Promise.all(
    rooms.map((r) => r.clients[0].deliver("control", { action: "open_all" }, { attempts: 0, unanswered: 0, refusals: {} })),
  );
  await sleep(500);
  phase("vote");
  const end = epoch() + DURATION;
  await Promise.all(rooms.flatMap((r) => r.clients.slice(1).map((c) => voter(c, cases, end))));
  phase("vote-end");
  const checked = await check(rooms);
  const outcomes = {};
  for (const v of votes) outcomes[v.outcome] = (outcomes[v.outcome] ?? 0) + 1;
  const cpu = process.cpuUsage(cpuStart);
  const result = {
    connections: { ok: clients.length - failed, failed },
    votes: { sent: votes.length, ...outcomes },
    drops: clients.reduce((n, c) => n + c.drops, 0),
    gaps: clients.reduce((n, c) => n + c.gaps, 0),
    check: checked,
    generator_cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  if (values.log) writeFileSync(values.log, JSON.stringify(votes));
  console.log(`RESULT ${JSON.stringify(result)}`);
  for (const c of clients) {
    c.closing = true;
    c.socket?.disconnect();
  }
  setTimeout(() => process.exit(0), 500);
}

setTimeout(() => {
  console.error("the run took too long; giving up");
  process.exit(3);
}, 900_000).unref();

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
