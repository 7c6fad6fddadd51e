// The reference to beat: a Node.js Socket.IO server (the official socket.io 4.x) speaking
// stackvote's protocol over the same HTTP calls, so one load generator drives both.
//
//   node peer.mjs --port 8100 --mode naive|tuned [--window 100]
//
// naive: every change sends the whole snapshot to the whole room, the way stackvote did
//        before its deltas.
// tuned: changes are folded into the room's state and go out as one `delta` at most every
//        --window ms (the first change after a quiet spell at once); newcomers get a snapshot
//        with the next flush. Socket.IO encodes a room broadcast once for all its sockets.
//
// It keeps everything in memory and skips what the benchmark does not measure (the
// recommendation engine, rate limits, validation messages), which only makes it cheaper.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8100" },
    mode: { type: "string", default: "tuned" },
    window: { type: "string", default: "100" },
  },
});
const MODE = values.mode;
const WINDOW_MS = Number(values.window);
if (!["naive", "tuned"].includes(MODE)) throw new Error(`unknown mode ${MODE}`);

const deck = JSON.parse(
  readFileSync(new URL("../../server/decks/django.json", import.meta.url), "utf8"),
);
const sessions = new Map();
const id = (bytes) => randomBytes(bytes).toString("base64url");

// ---------- results (the same statistics stackvote shows once a case is revealed)

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function caseResults(ballots) {
  const scores = [];
  let abstain = 0;
  for (const score of ballots.values()) {
    if (score === null) abstain += 1;
    else scores.push(score);
  }
  const histogram = [0, 0, 0, 0, 0];
  for (const s of scores) histogram[s] += 1;
  const n = scores.length;
  if (n === 0) {
    return { n, abstain, histogram, mean: null, median: null, iqr: null, consensus: null, band: null };
  }
  const sorted = [...scores].sort((a, b) => a - b);
  const mean = scores.reduce((a, b) => a + b, 0) / n;
  let consensus = 1;
  histogram.forEach((count, x) => {
    if (count) consensus += (count / n) * Math.log2(1 - Math.abs(x - mean) / 4);
  });
  const band = consensus >= 0.8 ? "strong" : consensus >= 0.6 ? "moderate" : "weak";
  return {
    n,
    abstain,
    histogram,
    mean,
    median: quantile(sorted, 0.5),
    iqr: quantile(sorted, 0.75) - quantile(sorted, 0.25),
    consensus,
    band,
  };
}

// ---------- sessions

function createSession(body) {
  const session = {
    id: id(16),
    title: String(body.title ?? "session"),
    mode: body.mode === "open" ? "open" : "hidden",
    anonymous: Boolean(body.anonymous),
    status: "active",
    version: 1,
    facilitatorToken: id(24),
    people: new Map(), // id -> {id, name, role, token, sockets}
    tokens: new Map(), // token -> participant id
    names: new Set(),
    cases: new Map(
      deck.cases.map((c) => [c.id, { id: c.id, title: c.title, status: "pending", round: 1, ballots: new Map() }]),
    ),
    // tuned mode: what changed since the last flush
    dirtyPeople: new Set(),
    dirtyCases: new Set(),
    sessionDirty: false,
    lastFlush: -Infinity,
    timer: null,
    newcomers: new Set(),
    sentVersion: 1,
  };
  sessions.set(session.id, session);
  return session;
}

function personView(session, p) {
  const voted = [];
  for (const c of session.cases.values()) if (c.ballots.has(p.id)) voted.push(c.id);
  return { id: p.id, name: p.name, role: p.role, online: p.sockets > 0, voted };
}

function visible(session, c) {
  return c.status === "revealed" || c.status === "locked" || (session.mode === "open" && c.status === "voting");
}

function caseView(session, c) {
  let results = null;
  if (visible(session, c)) {
    results = caseResults(c.ballots);
    if (!session.anonymous) {
      results.ballots = [...c.ballots].map(([participant, score]) => ({ participant, score }));
    }
  }
  return { id: c.id, title: c.title, status: c.status, round: c.round, votes_in: c.ballots.size, results };
}

function summary(session) {
  const { id: sid, title, mode, anonymous, status } = session;
  return { id: sid, title, mode, anonymous, status };
}

function state(session) {
  return {
    version: session.version,
    session: summary(session),
    participants: [...session.people.values()].map((p) => personView(session, p)),
    cases: [...session.cases.values()].map((c) => caseView(session, c)),
    recommendation: null,
  };
}

// ---------- telling the room

let io;

function changed(session, { people = [], cases = [], summaryChanged = false } = {}) {
  session.version += 1;
  if (MODE === "naive") {
    io.to(session.id).emit("state", state(session));
    return;
  }
  for (const p of people) session.dirtyPeople.add(p);
  for (const c of cases) session.dirtyCases.add(c);
  session.sessionDirty ||= summaryChanged;
  schedule(session);
}

function schedule(session) {
  if (session.timer) return;
  const delay = Math.max(0, session.lastFlush + WINDOW_MS - performance.now());
  session.timer = setTimeout(() => flush(session), delay);
}

function flush(session) {
  session.timer = null;
  session.lastFlush = performance.now();
  if (session.version !== session.sentVersion) {
    const delta = { base: session.sentVersion, version: session.version };
    if (session.sessionDirty) delta.session = summary(session);
    const people = [];
    for (const pid of session.dirtyPeople) {
      const p = session.people.get(pid);
      if (p) people.push(personView(session, p));
    }
    if (people.length) delta.participants = people;
    const cases = [];
    for (const cid of session.dirtyCases) cases.push(caseView(session, session.cases.get(cid)));
    if (cases.length) delta.cases = cases;
    session.dirtyPeople.clear();
    session.dirtyCases.clear();
    session.sessionDirty = false;
    session.sentVersion = session.version;
    // Newcomers are not in the room yet: they get the snapshot below instead.
    io.to(session.id).emit("delta", delta);
  }
  if (session.newcomers.size) {
    const snapshot = state(session);
    for (const socket of session.newcomers) {
      if (socket.connected) {
        socket.join(session.id);
        socket.emit("state", snapshot);
      }
    }
    session.newcomers.clear();
  }
}

// ---------- HTTP

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => resolve(body));
  });
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const http = createServer(async (req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "POST" && url.pathname === "/api/sessions") {
    const session = createSession(JSON.parse((await readBody(req)) || "{}"));
    const room = `http://${req.headers.host}/s/${session.id}`;
    return reply(res, 201, {
      id: session.id,
      join_url: room,
      facilitator_url: `${room}#f=${session.facilitatorToken}`,
      facilitator_token: session.facilitatorToken,
    });
  }
  const match = url.pathname.match(/^\/api\/sessions\/([^/]+)(\/results)?$/);
  const session = match && sessions.get(match[1]);
  if (req.method === "GET" && session) {
    if (!match[2]) return reply(res, 200, state(session));
    return reply(res, 200, {
      session: summary(session),
      cases: [...session.cases.values()].map((c) => ({ id: c.id, title: c.title, ...(caseView(session, c).results ?? {}) })),
      recommendation: null,
    });
  }
  if (url.pathname === "/healthz") return reply(res, 200, { status: "ok" });
  return reply(res, 404, { error: "There is nothing at this address." });
});

// ---------- Socket.IO

io = new Server(http, { transports: ["websocket"], maxHttpBufferSize: 16 * 1024 });

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  const session = sessions.get(auth.session);
  if (!session) return next(Object.assign(new Error("There is no session at this link."), { data: { code: "unknown_session" } }));
  let person = auth.token ? session.people.get(session.tokens.get(auth.token)) : undefined;
  const facilitator = auth.facilitator_token === session.facilitatorToken;
  if (!person) {
    const name = String(auth.name ?? "").trim();
    if (!name || name.length > 40) return next(Object.assign(new Error("Please enter a name."), { data: { code: "refused" } }));
    if (session.names.has(name.toLowerCase())) {
      return next(Object.assign(new Error("That name is taken."), { data: { code: "refused" } }));
    }
    person = { id: id(6), name, role: facilitator ? "facilitator" : auth.role === "spectator" ? "spectator" : "voter", token: id(24), sockets: 0 };
    session.people.set(person.id, person);
    session.tokens.set(person.token, person.id);
    session.names.add(name.toLowerCase());
  } else if (facilitator) {
    person.role = "facilitator";
  }
  person.sockets += 1;
  socket.data = { session, person };
  changed(session, { people: [person.id] });
  next();
});

io.on("connection", (socket) => {
  const { session, person } = socket.data;
  const ballots = {};
  for (const c of session.cases.values()) if (c.ballots.has(person.id)) ballots[c.id] = c.ballots.get(person.id);
  socket.emit("welcome", { participant_id: person.id, token: person.token, role: person.role, ballots });
  if (MODE === "naive") {
    socket.join(session.id);
    socket.emit("state", state(session));
  } else {
    session.newcomers.add(socket);
    schedule(session);
  }

  socket.on("vote", (data, ack) => {
    const c = session.cases.get(data?.case);
    const score = data?.score;
    if (!c || c.status !== "voting" || person.role === "spectator" || !(score === null || (Number.isInteger(score) && score >= 0 && score <= 4))) {
      return ack?.({ ok: false, error: "Voting on this case is closed." });
    }
    const first = !c.ballots.has(person.id);
    if (c.ballots.get(person.id) !== score || first) {
      c.ballots.set(person.id, score);
      changed(session, { people: first ? [person.id] : [], cases: [c.id] });
    }
    ack?.({ ok: true, version: session.version });
  });

  socket.on("control", (data, ack) => {
    if (person.role !== "facilitator") return ack?.({ ok: false, error: "Only the facilitator can do that." });
    const action = data?.action;
    const touched = [];
    const move = (c, from, to) => {
      if (from.includes(c.status)) {
        c.status = to;
        touched.push(c.id);
      }
    };
    for (const c of session.cases.values()) {
      if (action === "open_all" || (action === "open" && c.id === data.case)) move(c, ["pending"], "voting");
      if (action === "reveal_all" || (action === "reveal" && c.id === data.case)) move(c, ["voting"], "revealed");
      if (action === "lock" && c.id === data.case) move(c, ["voting", "revealed"], "locked");
      if (action === "finish") move(c, ["voting", "revealed"], "locked");
    }
    if (action === "finish") session.status = "finished";
    if (!touched.length && action !== "finish") return ack?.({ ok: false, error: "Nothing to do." });
    changed(session, { cases: touched, summaryChanged: action === "finish" });
    ack?.({ ok: true, version: session.version });
  });

  socket.on("sync", (_data, ack) => {
    if (MODE === "tuned" && session.timer) {
      clearTimeout(session.timer);
      flush(session);
    }
    ack?.(state(session));
  });

  socket.on("disconnect", () => {
    session.newcomers.delete(socket);
    person.sockets -= 1;
    if (person.sockets === 0) changed(session, { people: [person.id] });
  });
});

http.listen(Number(values.port), "127.0.0.1", () => {
  console.log(`peer (${MODE}) listening on ${values.port}`);
});
