// Socket.IO load generator for stackvote: many rooms, each with a facilitator and voters
// that keep changing their ballots, with acks timed and every client's last snapshot checked
// against the server's at the end.
//
//   node load.mjs --url http://127.0.0.1:8001,http://127.0.0.1:8002 \
//     --rooms 100 --per-room 10 --duration 300 --vote-interval 5 --out results.json
//
// Usually run through bench/load.py, which starts Redis and the app instances around it.
// Every loop here is bounded: voting stops after --duration, acks time out after
// --ack-timeout, and a watchdog ends the process if anything still hangs.

import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
// The browser's own way of applying a delta (a plain module, nothing browser-only in it).
import { applyDelta } from "../../static/js/room/delta.js";

const OPTIONS = {
  url: { type: "string", default: "http://127.0.0.1:8000" },
  rooms: { type: "string", default: "10" },
  "per-room": { type: "string", default: "10" },
  duration: { type: "string", default: "30" },
  "vote-interval": { type: "string", default: "5" },
  "connect-rate": { type: "string", default: "50" },
  "ack-timeout": { type: "string", default: "10" },
  window: { type: "string", default: "60" },
  "abstain-share": { type: "string", default: "0.1" },
  out: { type: "string", default: "" },
  help: { type: "boolean", default: false },
};

const USAGE = `usage: node load.mjs [--url U1,U2] [--rooms N] [--per-room N] [--duration S]
       [--vote-interval S] [--connect-rate N] [--ack-timeout S] [--window S]
       [--abstain-share X] [--out FILE]

  --url            server URLs, comma-separated; clients are spread over them round-robin
  --rooms          sessions to create (one facilitator + per-room - 1 voters each)
  --per-room       clients per room, the facilitator included (every client votes)
  --duration       seconds of voting after the last client connected
  --vote-interval  mean seconds between one client's votes (uniform jitter of +-50%)
  --connect-rate   new connections per second during the ramp-up
  --ack-timeout    seconds to wait for an ack before counting it as timed out
  --window         seconds of the early and late windows compared for degradation
  --abstain-share  share of votes that are abstentions (score null), default 0.1
  --out            write the results as JSON to this file`;

function options() {
  const { values } = parseArgs({ options: OPTIONS, strict: true });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name, { min = 0, integer = false } = {}) => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      console.error(`--${name} must be ${integer ? "an integer" : "a number"} >= ${min}`);
      process.exit(2);
    }
    return value;
  };
  const urls = values.url.split(",").map((u) => u.trim().replace(/\/+$/, "")).filter(Boolean);
  for (const url of urls) {
    // Load goes to this machine only.
    const host = new URL(url).hostname;
    if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) {
      console.error(`refusing to load ${url}: only 127.0.0.1 / localhost are allowed`);
      process.exit(2);
    }
  }
  return {
    urls,
    rooms: number("rooms", { min: 1, integer: true }),
    perRoom: number("per-room", { min: 1, integer: true }),
    duration: number("duration", { min: 1 }),
    voteInterval: number("vote-interval", { min: 0.05 }),
    connectRate: number("connect-rate", { min: 1 }),
    ackTimeoutMs: number("ack-timeout", { min: 0.1 }) * 1000,
    window: number("window", { min: 1 }),
    abstainShare: number("abstain-share", { min: 0 }),
    out: values.out,
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const now = () => performance.now();
const randomInt = (n) => Math.floor(Math.random() * n);

function percentiles(values) {
  if (values.length === 0) {
    return { count: 0, p50: null, p95: null, p99: null, max: null, mean: null };
  }
  const sorted = Float64Array.from(values).sort();
  const rank = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const round = (x) => Math.round(x * 100) / 100;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: round(rank(0.5)),
    p95: round(rank(0.95)),
    p99: round(rank(0.99)),
    max: round(sorted[sorted.length - 1]),
    mean: round(sum / sorted.length),
  };
}

function bump(counter, key) {
  counter[key] = (counter[key] ?? 0) + 1;
}

// JSON with sorted keys, so two snapshots compare equal whatever order their keys came in.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function getJson(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status} ${body.error ?? ""}`.trim());
  return body;
}

// ---------------------------------------------------------------------------------------------
// Everything counted during the run

// "ramp", then "voting" from the end of the ramp-up to the end of voting, then "check".
let phase = "ramp";

const stats = {
  connections: { attempted: 0, ok: 0, failed: 0, failedBy: {} },
  acks: { sent: 0, ok: 0, error: 0, timeout: 0, errorBy: {} },
  latencies: [], // [sent at (performance.now()), latency ms] of every ok ack
  states: { received: 0, stale: 0, gaps: 0 },
  deltas: { received: 0, gaps: 0 },
  syncs: { sent: 0, newer: 0, failed: 0 },
  disconnects: { unexpected: 0, by: {} },
  controls: { ok: 0, error: 0, errorBy: {} },
};

// ---------------------------------------------------------------------------------------------
// One client: a socket plus the newest snapshot it holds

class Client {
  constructor(room, index, url) {
    this.room = room;
    this.index = index;
    this.url = url;
    this.name = index === 0 ? "facilitator" : `voter ${index}`;
    this.socket = null;
    this.state = null;
    this.closing = false;
    this.syncing = false;
  }

  connect(auth, timeoutMs) {
    stats.connections.attempted += 1;
    const socket = io(this.url, {
      transports: ["websocket"],
      auth,
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
    });
    this.socket = socket;
    socket.on("state", (snapshot) => this.onState(snapshot));
    socket.on("delta", (delta) => this.onDelta(delta));
    socket.on("disconnect", (reason) => {
      if (this.closing) return;
      stats.disconnects.unexpected += 1;
      bump(stats.disconnects.by, reason);
    });
    return withTimeout(
      new Promise((resolve, reject) => {
        socket.once("welcome", () => resolve());
        socket.once("connect_error", (err) => reject(err));
      }),
      timeoutMs,
      "welcome",
    ).then(
      () => {
        stats.connections.ok += 1;
      },
      (err) => {
        stats.connections.failed += 1;
        bump(stats.connections.failedBy, err.message);
        this.closing = true;
        socket.close();
        throw err;
      },
    );
  }

  onState(snapshot) {
    stats.states.received += 1;
    const held = this.state?.version ?? 0;
    if (snapshot.version <= held) {
      // The contract: a snapshot older than the one held is ignored.
      stats.states.stale += 1;
      return;
    }
    if (this.state && snapshot.version > held + 1) stats.states.gaps += 1;
    this.state = snapshot;
  }

  // What the browser does: apply a delta that follows from the snapshot held (SPEC §5); one
  // that does not means a change was missed, so ask for a fresh snapshot.
  onDelta(delta) {
    stats.deltas.received += 1;
    if (!this.state || delta.version <= this.state.version) return;
    if (delta.base !== this.state.version) {
      stats.deltas.gaps += 1;
      this.resync();
      return;
    }
    this.state = applyDelta(this.state, delta);
  }

  async resync() {
    if (this.syncing) return;
    this.syncing = true;
    stats.syncs.sent += 1;
    try {
      const fresh = await this.socket.timeout(10_000).emitWithAck("sync");
      if (fresh && typeof fresh.version === "number" && fresh.version > this.state.version) {
        stats.syncs.newer += 1;
        this.state = fresh;
      }
    } catch {
      stats.syncs.failed += 1;
    } finally {
      this.syncing = false;
    }
  }

  close() {
    this.closing = true;
    this.socket?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The run

class Run {
  constructor(config) {
    this.config = config;
    this.rooms = [];
    this.rampDoneAt = null; // performance.now() when the last connection attempt settled
    this.votingEndsAt = null;
    this.times = { start: Date.now() };
  }

  async createRoom(r) {
    const { urls } = this.config;
    const url = urls[r % urls.length];
    const created = await getJson(`${url}/api/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: `load room ${r + 1}`, template: "django" }),
    });
    return { id: created.id, facilitatorToken: created.facilitator_token };
  }

  async openRoom(room) {
    const fay = room.clients[0];
    await fay.connect(
      { session: room.id, name: fay.name, facilitator_token: room.facilitatorToken },
      this.config.ackTimeoutMs * 2,
    );
    if (!(await this.control(fay, { action: "open_all" }))) {
      throw new Error("open_all was refused");
    }
  }

  async control(client, payload) {
    let problem;
    try {
      const ack = await client.socket
        .timeout(this.config.ackTimeoutMs)
        .emitWithAck("control", payload);
      if (ack?.ok) {
        stats.controls.ok += 1;
        return ack;
      }
      problem = ack?.error ?? JSON.stringify(ack);
    } catch (err) {
      problem = `no ack: ${err.message}`;
    }
    stats.controls.error += 1;
    bump(stats.controls.errorBy, `${payload.action}: ${problem}`);
    return null;
  }

  // Connections are started at --connect-rate, room after room; a room's voters connect once
  // its facilitator has opened every case.
  async rampUp() {
    const { rooms, perRoom, urls, connectRate, ackTimeoutMs } = this.config;
    const startedAt = now();
    let slot = 0;
    const nextSlot = () => sleep(startedAt + (slot++ * 1000) / connectRate - now());
    const voters = [];
    const settled = [];
    for (let r = 0; r < rooms; r += 1) {
      const room = { index: r, id: null, facilitatorToken: null, clients: [], ready: null };
      this.rooms.push(room);
      for (let i = 0; i < perRoom; i += 1) {
        room.clients.push(new Client(r, i, urls[(r * perRoom + i) % urls.length]));
      }
      await nextSlot();
      room.ready = this.createRoom(r).then(
        (created) => {
          room.id = created.id;
          room.facilitatorToken = created.facilitatorToken;
          return this.openRoom(room);
        },
        (err) => {
          failedConnection(`creating the session failed: ${err.message}`);
          throw err;
        },
      );
      settled.push(room.ready.catch(() => {}));
      voters.push(room.ready.then(() => this.voteLoop(room.clients[0]), () => {}));
      for (const client of room.clients.slice(1)) {
        await nextSlot();
        const joined = room.ready.then(
          () => client.connect({ session: room.id, name: client.name }, ackTimeoutMs * 2),
          (err) => {
            failedConnection(`room not set up: ${err.message}`);
            throw err;
          },
        );
        settled.push(joined.catch(() => {}));
        voters.push(joined.then(() => this.voteLoop(client), () => {}));
      }
    }
    await Promise.all(settled);
    this.rampDoneAt = now();
    this.votingEndsAt = this.rampDoneAt + this.config.duration * 1000;
    this.times.rampDone = Date.now();
    phase = "voting";
    const seconds = ((this.rampDoneAt - startedAt) / 1000).toFixed(1);
    log(
      `ramp-up done in ${seconds} s: ${stats.connections.ok} connected, ` +
        `${stats.connections.failed} failed`,
    );
    return voters;
  }

  votingOver() {
    return this.votingEndsAt !== null && now() >= this.votingEndsAt;
  }

  // One client's votes: a random open case, a random score (sometimes an abstention), at a
  // jittered interval; the next vote waits for the previous ack (a person does too).
  async voteLoop(client) {
    const { voteInterval, ackTimeoutMs, abstainShare } = this.config;
    const interval = () => voteInterval * 1000 * (0.5 + Math.random());
    let next = now() + Math.random() * voteInterval * 1000;
    while (!this.votingOver() && client.socket.connected) {
      const wake = Math.min(next, this.votingEndsAt ?? Infinity);
      if (now() < wake) {
        // While the ramp-up runs the end is not known yet: look again at least every second.
        await sleep(Math.min(wake - now(), 1000));
        continue;
      }
      if (this.votingOver()) break;
      next = now() + interval();
      const open = (client.state?.cases ?? []).filter((c) => c.status === "voting");
      if (open.length === 0) continue;
      const payload = {
        case: open[randomInt(open.length)].id,
        score: Math.random() < abstainShare ? null : randomInt(5),
      };
      const sentAt = now();
      stats.acks.sent += 1;
      try {
        const ack = await client.socket.timeout(ackTimeoutMs).emitWithAck("vote", payload);
        if (ack?.ok) {
          stats.acks.ok += 1;
          stats.latencies.push([sentAt, now() - sentAt]);
        } else {
          stats.acks.error += 1;
          bump(stats.acks.errorBy, ack?.error ?? JSON.stringify(ack));
        }
      } catch (err) {
        stats.acks.timeout += 1;
        bump(stats.acks.errorBy, `no ack: ${err.message}`);
      }
    }
  }

  progress() {
    const c = stats.connections;
    const a = stats.acks;
    log(
      `connected ${c.ok}/${c.attempted} (failed ${c.failed}); acks ok ${a.ok}, ` +
        `error ${a.error}, timeout ${a.timeout}; states ${stats.states.received}; ` +
        `disconnects ${stats.disconnects.unexpected}`,
    );
  }

  async reveal() {
    await Promise.all(
      this.rooms
        .filter((room) => room.clients[0].socket?.connected)
        .map((room) => this.control(room.clients[0], { action: "reveal_all" })),
    );
  }

  // For each room, compare every connected client's last snapshot with
  // GET /api/sessions/<id>. Snapshots may still be on their way (or the room may still change,
  // e.g. presence), so read the server's again until every client holds its version, up to
  // a deadline; what still differs then is a mismatch.
  async check(settleMs) {
    const mismatches = [];
    let clientsChecked = 0;
    await Promise.all(
      this.rooms.map(async (room) => {
        if (room.id === null) return;
        const url = this.config.urls[room.index % this.config.urls.length];
        const live = room.clients.filter((c) => c.socket?.connected && c.state);
        const deadline = now() + settleMs;
        let truth = null;
        let problem = null;
        for (;;) {
          try {
            truth = await getJson(`${url}/api/sessions/${room.id}`);
            problem = null;
          } catch (err) {
            problem = `GET failed: ${err.message}`;
          }
          const settled = truth && live.every((c) => c.state.version === truth.version);
          if (settled || now() >= deadline) break;
          await sleep(250);
        }
        if (truth === null) {
          mismatches.push({ room: room.id, client: null, problem });
          return;
        }
        const cases = canonical(truth.cases);
        for (const client of live) {
          clientsChecked += 1;
          const versionOk = client.state.version === truth.version;
          const casesOk = canonical(client.state.cases) === cases;
          if (!versionOk || !casesOk) {
            mismatches.push({
              room: room.id,
              client: client.name,
              server_version: truth.version,
              client_version: client.state.version,
              cases_equal: casesOk,
            });
          }
        }
      }),
    );
    return { clientsChecked, mismatches };
  }

  closeAll() {
    for (const room of this.rooms) for (const client of room.clients) client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

function failedConnection(reason) {
  stats.connections.attempted += 1;
  stats.connections.failed += 1;
  bump(stats.connections.failedBy, reason);
}

function log(message) {
  const t = new Date().toISOString().slice(11, 19);
  console.error(`[load ${t}] ${message}`);
}

// Ack latency by when the vote was sent (`steady`: [seconds after the ramp-up, latency]): the
// first and the last `window` seconds (a third of the run for short runs), and 10 s slices.
function windows(steady, durationS, windowS) {
  const seconds = Math.min(windowS, durationS / 3);
  const between = (a, b) => steady.filter(([t]) => t >= a && t < b).map(([, l]) => l);
  const per10s = [];
  for (let start = 0; start < durationS; start += 10) {
    per10s.push({ from_s: start, ...percentiles(between(start, start + 10)) });
  }
  return {
    window_seconds: seconds,
    first_window: percentiles(between(0, seconds)),
    last_window: percentiles(between(durationS - seconds, durationS)),
    per_10s: per10s,
  };
}

function summarize(config, run, check) {
  // Send times relative to the end of the ramp-up: negative ones were sent while it ran.
  const sent = stats.latencies.map(([t, l]) => [(t - run.rampDoneAt) / 1000, l]);
  const steady = sent.filter(([t]) => t >= 0);
  const latencies = (rows) => rows.map(([, l]) => l);
  return {
    config: {
      urls: config.urls,
      rooms: config.rooms,
      per_room: config.perRoom,
      duration_s: config.duration,
      vote_interval_s: config.voteInterval,
      connect_rate: config.connectRate,
      ack_timeout_s: config.ackTimeoutMs / 1000,
      abstain_share: config.abstainShare,
    },
    times: {
      started_at: run.times.start / 1000,
      ramp_done_at: run.times.rampDone / 1000,
      voting_ended_at: run.times.votingEnded / 1000,
      finished_at: Date.now() / 1000,
      ramp_seconds: (run.times.rampDone - run.times.start) / 1000,
    },
    connections: {
      attempted: stats.connections.attempted,
      ok: stats.connections.ok,
      failed: stats.connections.failed,
      failed_by: stats.connections.failedBy,
    },
    acks: {
      sent: stats.acks.sent,
      ok: stats.acks.ok,
      error: stats.acks.error,
      timeout: stats.acks.timeout,
      error_by: stats.acks.errorBy,
      steady_ok_per_second: Math.round((steady.length / config.duration) * 10) / 10,
    },
    latency_ms: {
      all: percentiles(latencies(sent)),
      ramp: percentiles(latencies(sent.filter(([t]) => t < 0))),
      steady: percentiles(latencies(steady)),
      ...windows(steady, config.duration, config.window),
    },
    states: stats.states,
    deltas: stats.deltas,
    syncs: stats.syncs,
    disconnects: stats.disconnects,
    controls: {
      ok: stats.controls.ok,
      error: stats.controls.error,
      error_by: stats.controls.errorBy,
    },
    final_check: {
      rooms: run.rooms.filter((r) => r.id !== null).length,
      clients_checked: check.clientsChecked,
      mismatch_count: check.mismatches.length,
      mismatches: check.mismatches.slice(0, 50),
    },
  };
}

async function main() {
  const config = options();
  const clients = config.rooms * config.perRoom;
  // Watchdog: whatever happens, this process ends.
  const budgetMs = ((clients / config.connectRate) * 3 + config.duration + 180) * 1000;
  const watchdog = setTimeout(() => {
    log(`watchdog: still running after ${budgetMs / 1000} s, giving up`);
    process.exit(3);
  }, budgetMs);
  watchdog.unref();

  log(
    `${config.rooms} rooms x ${config.perRoom} clients over ${config.urls.join(", ")}; ` +
      `voting ${config.duration} s, one vote per ~${config.voteInterval} s per client`,
  );
  const run = new Run(config);
  const ticker = setInterval(() => run.progress(), 10_000);
  const voters = await run.rampUp();
  await Promise.all(voters);
  run.times.votingEnded = Date.now();
  phase = "check";
  clearInterval(ticker);
  run.progress();
  log("voting over; revealing every room");
  await run.reveal();
  const check = await run.check(15_000);
  run.closeAll();
  const result = summarize(config, run, check);
  const json = JSON.stringify(result, null, 2);
  if (config.out) writeFileSync(config.out, json);
  else console.log(json);
  const l = result.latency_ms.steady;
  log(
    `done: acks ok ${stats.acks.ok}, error ${stats.acks.error}, timeout ${stats.acks.timeout}; ` +
      `steady p50/p95/p99/max ${l.p50}/${l.p95}/${l.p99}/${l.max} ms; ` +
      `mismatches ${check.mismatches.length}`,
  );
  clearTimeout(watchdog);
  // The sockets are closed; give them a moment to say goodbye, then end.
  setTimeout(() => process.exit(0), 500).unref();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
