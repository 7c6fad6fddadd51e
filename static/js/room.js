// The voting room: joins over Socket.IO, renders each snapshot, sends votes and commands.

import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { MyBallots } from "./room/ballots.js";
import { CaseCard } from "./room/cases.js";
import { applyDelta } from "./room/delta.js";
import { setHidden, setText } from "./room/dom.js";
import { Identity } from "./room/identity.js";
import { setUpCopyButtons } from "./room/invite.js";
import { Messages, describeChanges } from "./room/messages.js";
import { Outbox } from "./room/outbox.js";
import { renderHeader, renderPresence, renderRecommendation } from "./room/panels.js";

const ACK_TIMEOUT_MS = 8000;
const RETRY_DELAY_MS = 1000;
const FINISH_CONFIRM_MS = 5000;
const NAME_MAX = 40;

const $ = (id) => document.getElementById(id);

const root = $("room");
const sessionId = root.dataset.sessionId;
const template = JSON.parse($("template-data").textContent);
const caseTitles = new Map(template.cases.map((c) => [c.id, c.title]));
const titleOf = (id) => caseTitles.get(id) ?? id;

const dom = {
  title: $("room-title"),
  status: $("room-status"),
  mode: $("room-mode"),
  anonymous: $("room-anonymous"),
  finished: $("finished-banner"),
  connection: $("connection"),
  connectionText: $("connection").querySelector(".connection__text"),
  join: $("join"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  joinSpectator: $("join-spectator"),
  joinSpectatorChoice: $("join-spectator-choice"),
  joinFacilitator: $("join-facilitator"),
  joinError: $("join-error"),
  joinSubmit: $("join-submit"),
  facilitatorBar: $("facilitator-bar"),
  finishButton: $("facilitator-bar").querySelector('[data-action="finish"]'),
  facilitatorLink: $("facilitator-link"),
  facilitatorUrl: $("facilitator-url"),
  keyboardHint: $("keyboard-hint"),
  casesSection: $("cases").closest("section"),
  cases: $("cases"),
  presence: $("presence"),
  presenceEmpty: $("presence-empty"),
  peopleCount: $("people-count"),
  recommendation: $("recommendation"),
  recommendationTitle: $("rec-title"),
  verdict: $("verdict"),
  robust: $("rec-robust"),
  contested: $("rec-contested"),
  contestedList: $("rec-contested-list"),
  ranking: $("ranking"),
};

const cards = new Map(
  [...dom.cases.querySelectorAll(".case")].map((node) => [node.dataset.case, new CaseCard(node)]),
);
const identity = new Identity(sessionId);
const messages = new Messages($("toast"), $("announcer"));
const mine = new MyBallots();
const outbox = new Outbox(sessionId);

// What this tab knows besides my ballots; the snapshot is the server's word.
const room = {
  name: "",
  token: null,
  role: "voter", // what I asked for when joining
  me: null, // my participant id once welcomed
  snapshot: null,
  version: -1,
  joined: false,
  connection: "idle",
  everConnected: false,
  failedAttempts: 0,
  retryTimer: 0,
  removed: "", // why the server is about to close the connection, if it said
};

let socket = null;

const CONNECTION_WORDS = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  storage: "Server reconnecting…",
  offline: "Offline",
};

// After this many failed attempts without ever connecting, WebSocket is probably blocked.
const BLOCKED_AFTER_ATTEMPTS = 3;

function setConnection(state) {
  room.connection = state;
  dom.connection.dataset.state = state;
  setText(dom.connectionText, CONNECTION_WORDS[state]);
  if (room.snapshot) render();
}

// ---------- Joining ----------

function showJoin(message = "") {
  room.joined = false;
  root.dataset.state = "joining";
  setHidden(dom.join, false);
  const facilitating = Boolean(identity.facilitatorToken);
  setHidden(dom.joinFacilitator, !facilitating);
  setHidden(dom.joinSpectatorChoice, facilitating);
  if (!dom.joinName.value) dom.joinName.value = room.name || identity.lastName;
  dom.joinError.textContent = message;
  dom.joinSubmit.disabled = false;
  dom.joinSubmit.textContent = "Join";
  if (message) dom.joinName.setAttribute("aria-invalid", "true");
  dom.joinName.focus();
}

function showRoom() {
  room.joined = true;
  root.dataset.state = "joined";
  setHidden(dom.join, true);
  dom.joinError.textContent = "";
}

function onJoinSubmit(event) {
  event.preventDefault();
  dom.joinName.removeAttribute("aria-invalid");
  const name = dom.joinName.value.trim();
  if (!name) {
    showJoin("Please enter your name.");
    return;
  }
  if (name.length > NAME_MAX) {
    showJoin(`Please keep your name to ${NAME_MAX} characters.`);
    return;
  }
  // A different name is a different person: don't reclaim the previous one's seat.
  if (name !== room.name) room.token = null;
  room.name = name;
  room.role = dom.joinSpectator.checked && !identity.facilitatorToken ? "spectator" : "voter";
  dom.joinError.textContent = "";
  dom.joinSubmit.disabled = true;
  dom.joinSubmit.textContent = "Joining…";
  connect();
}

// ---------- Connection ----------

function authPayload() {
  const auth = { session: sessionId, name: room.name, role: room.role };
  if (room.token) auth.token = room.token;
  const facilitatorToken = identity.facilitatorToken;
  if (facilitatorToken) auth.facilitator_token = facilitatorToken;
  return auth;
}

function connect() {
  setConnection("connecting");
  if (socket) {
    socket.connect();
    return;
  }
  socket = io({
    // The callback form runs on every (re)connect, so it always sends the current token.
    auth: (cb) => cb(authPayload()),
    // WebSocket only: one connection stays on one server, so several servers behind a proxy
    // need no sticky sessions.
    transports: ["websocket"],
    // For the proxy: the repo's nginx sends every socket of a room to the same server.
    query: { room: sessionId },
  });
  socket.on("connect", () => {
    room.everConnected = true;
    setConnection("connected");
  });
  socket.on("welcome", onWelcome);
  socket.on("state", applySnapshot);
  socket.on("delta", onDelta);
  socket.on("removed", onRemoved);
  socket.on("status", (status) => {
    if (status && status.storage === "unavailable") {
      setConnection("storage");
    } else if (socket.connected) {
      setConnection("connected");
      resync();
    }
  });
  socket.on("connect_error", onConnectError);
  socket.on("disconnect", onDisconnect);
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting"));
}

function onWelcome(welcome) {
  room.me = welcome.participant_id;
  room.token = welcome.token;
  identity.saveMe({
    name: room.name,
    token: welcome.token,
    participant_id: welcome.participant_id,
    role: welcome.role,
  });
  mine.restore(welcome.ballots);
  showRoom();
  if (room.snapshot) render();
  // Votes that were not answered before the connection dropped go out again, oldest first.
  for (const ballot of outbox.unanswered()) deliver(ballot);
}

function onConnectError(err) {
  if (socket.active) {
    // A network problem: the client retries by itself.
    setConnection("reconnecting");
    room.failedAttempts = (room.failedAttempts || 0) + 1;
    if (!room.everConnected && room.failedAttempts === BLOCKED_AFTER_ATTEMPTS) {
      messages.toast(
        "We can't open a live connection. A proxy, firewall or browser extension may be " +
          "blocking WebSocket connections, or the server isn't set up for this address.",
      );
    }
    return;
  }
  const code = err?.data?.code;
  if (code === "unavailable" || code === "rate_limited" || code === "busy") {
    // Turned away for now, not for good: the server's storage is down, it is busy, or we were
    // too fast.
    // Try again a little later, at a random moment so a whole room doesn't return at once.
    setConnection(code === "unavailable" ? "storage" : "reconnecting");
    clearTimeout(room.retryTimer);
    room.retryTimer = setTimeout(() => socket.connect(), 1000 + Math.random() * 4000);
    return;
  }
  // The server turned us away; err.message says why, in words meant for people.
  setConnection("idle");
  const message = err && err.message ? err.message : "We couldn't join this session.";
  if (code === "bad_facilitator_token") {
    // The stored facilitator link is no good (e.g. an old session); join as a regular member.
    identity.facilitatorToken = null;
  }
  showJoin(message);
}

// The facilitator took me off the list: my token names nobody any more, so forget it; joining
// again (by choice) makes a newcomer.
function onRemoved(notice) {
  room.removed = notice?.message || "You were removed from this session.";
  room.token = null;
  room.me = null;
  identity.forgetMe();
  outbox.waiting.clear(); // votes I had not seen counted must not come back as a newcomer's
}

function onDisconnect(reason) {
  if (reason === "io client disconnect") {
    setConnection("idle");
  } else if (reason === "io server disconnect") {
    // The server closed this connection on purpose; it won't come back by itself.
    setConnection("idle");
    showJoin(room.removed || "The server closed the connection. Join again to continue.");
    room.removed = "";
  } else {
    setConnection(navigator.onLine === false ? "offline" : "reconnecting");
  }
}

let syncing = false;

function resync() {
  if (!socket || !socket.connected || syncing) return;
  syncing = true;
  socket.timeout(ACK_TIMEOUT_MS).emit("sync", (err, snapshot) => {
    syncing = false;
    if (!err) applySnapshot(snapshot);
  });
}

// A delta that follows from what is on screen is applied; after a gap (a missed delta), only
// a fresh snapshot will do.
function onDelta(delta) {
  if (!delta || typeof delta.version !== "number" || !room.snapshot) return;
  if (delta.version <= room.version) return;
  const next = applyDelta(room.snapshot, delta);
  if (next) applySnapshot(next);
  else resync();
}

// ---------- Snapshots ----------

function applySnapshot(snapshot) {
  if (!snapshot || typeof snapshot.version !== "number") return;
  if (snapshot.version <= room.version) return; // older than what is on screen
  const previous = room.snapshot;
  room.version = snapshot.version;
  room.snapshot = snapshot;
  mine.reconcile(snapshot, room.me);
  render();
  if (previous) {
    const votesText = (id) => cards.get(id)?.votes.textContent ?? "";
    const summary = describeChanges(previous, snapshot, titleOf, votesText);
    if (summary) messages.announce(summary);
  }
}

function myRole(snapshot) {
  const self = snapshot?.participants.find((p) => p.id === room.me);
  return self ? self.role : room.role;
}

function render() {
  const snapshot = room.snapshot;
  if (!snapshot) return;
  const session = snapshot.session;
  const role = myRole(snapshot);
  const finished = session.status === "finished";
  const facilitator = role === "facilitator";
  const offline = room.connection !== "connected";
  const names = new Map(snapshot.participants.map((p) => [p.id, p.name]));

  root.dataset.role = role;
  document.title = `${session.title} · stackvote`;
  renderHeader(dom, session);

  setHidden(dom.facilitatorBar, !(facilitator && !finished));
  // Bulk actions are only offered when there is something for them to act on.
  const any = (status) => snapshot.cases.some((c) => c.status === status);
  const applicable = { open_all: any("pending"), reveal_all: any("voting"), finish: true };
  // aria-disabled rather than disabled: a focused button keeps focus when it stops applying.
  for (const button of dom.facilitatorBar.querySelectorAll("button[data-action]")) {
    button.setAttribute("aria-disabled", String(offline || !applicable[button.dataset.action]));
  }
  setHidden(dom.keyboardHint, role === "spectator" || finished);

  const facilitatorToken = identity.facilitatorToken;
  setHidden(dom.facilitatorLink, !(facilitator && facilitatorToken));
  if (facilitatorToken) {
    dom.facilitatorUrl.value = `${root.dataset.joinUrl}#f=${encodeURIComponent(facilitatorToken)}`;
  }

  const view = {
    me: room.me,
    role,
    people: snapshot.participants,
    nameOf: (p) => (p.id === room.me ? "you" : p.name),
    nameOfId: (id) => names.get(id) ?? "someone who left",
    mine,
    finished,
    facilitator,
    anonymous: session.anonymous,
    offline,
  };
  for (const state of snapshot.cases) cards.get(state.id)?.render(state, view);

  renderPresence(dom, snapshot, { me: room.me });
  placeRecommendation(snapshot);
  renderRecommendation(dom, snapshot.recommendation, titleOf);
}

// While questions are still being scored they come first; once nothing is open, the verdict does.
function placeRecommendation(snapshot) {
  const finished = snapshot.session.status === "finished";
  const scoring = !finished && snapshot.cases.some((c) => c.status === "voting");
  const position = dom.casesSection.compareDocumentPosition(dom.recommendation);
  const after = Boolean(position & Node.DOCUMENT_POSITION_FOLLOWING);
  if (scoring && !after) dom.casesSection.after(dom.recommendation);
  else if (!scoring && after) dom.casesSection.before(dom.recommendation);
  setText(dom.recommendationTitle, finished ? "Recommendation" : "Recommendation so far");
}

// ---------- Sending ----------

function ensureOnline() {
  if (socket && socket.connected) return true;
  messages.toast("You're offline right now. We'll keep trying to reconnect; try again shortly.");
  return false;
}

function vote(caseId, score) {
  const state = room.snapshot?.cases.find((c) => c.id === caseId);
  if (!state) return;
  if (state.status !== "voting") {
    const why =
      state.status === "pending"
        ? "This question isn't open for voting yet."
        : "Voting on this question is closed.";
    messages.toast(why, "info");
    return;
  }
  if (!mine.pending.has(caseId) && mine.has(caseId) && mine.get(caseId) === score) return;

  const ballot = outbox.add(caseId, score, state.round);
  mine.pending.add(caseId);
  mine.choosing.set(caseId, score);
  render();
  if (socket?.connected) {
    deliver(ballot);
  } else {
    messages.toast("You're offline; your vote will be sent as soon as the connection is back.", "info");
  }
}

/** Send a vote until the server answers it; a timeout or a dropped connection means "again". */
function deliver(ballot) {
  if (!socket?.connected || !outbox.isCurrent(ballot)) return;
  socket.timeout(ACK_TIMEOUT_MS).emit("vote", ballot, (err, ack) => {
    if (!outbox.isCurrent(ballot)) return; // a newer vote on this case replaced it
    if (err) {
      // No answer: the vote may or may not have counted. Sending it again is safe.
      setTimeout(() => deliver(ballot), RETRY_DELAY_MS);
      return;
    }
    if (ack && !ack.ok && ack.retry) {
      // Not counted, for now only (the server is busy, or its storage is down): try again a
      // little later, at a random moment so a whole room doesn't come back at once.
      setTimeout(() => deliver(ballot), RETRY_DELAY_MS + Math.random() * 2000);
      return;
    }
    outbox.settle(ballot);
    mine.pending.delete(ballot.case);
    mine.choosing.delete(ballot.case);
    if (!ack || !ack.ok) {
      messages.toast(ack?.error || "Your vote didn't go through. Please try again.");
    } else {
      mine.confirm(ballot.case, ballot.score, ack.version);
    }
    render();
  });
}

/** A facilitator command; `focusAfter` takes focus if the pressed button goes away. */
function control(action, caseId, button, focusAfter) {
  if (!ensureOnline()) return;
  const payload = caseId ? { action, case: caseId } : { action };
  button.setAttribute("aria-disabled", "true");
  socket.timeout(ACK_TIMEOUT_MS).emit("control", payload, (err, ack) => {
    button.removeAttribute("aria-disabled");
    render(); // the toolbar's buttons get their state back from the snapshot
    if (err) messages.toast("The server didn't answer in time. Please try again.");
    else if (!ack || !ack.ok) messages.toast(ack?.error || "That didn't work. Please try again.");
    if (focusAfter && (button.hidden || document.activeElement === document.body)) {
      focusAfter.focus();
    }
  });
}

// ---------- Input ----------

function onCardClick(event) {
  const button = event.target.closest("button");
  const card = event.target.closest(".case");
  if (!button || !card) return;
  if (button.dataset.score !== undefined) {
    const score = button.dataset.score === "abstain" ? null : Number(button.dataset.score);
    vote(card.dataset.case, score);
  } else if (button.dataset.action && button.getAttribute("aria-disabled") !== "true") {
    control(button.dataset.action, card.dataset.case, button, card);
  }
}

// Digit keys score the focused card; "?" or "a" skips it.
function onCardKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, summary")) return;
  const card = event.target.closest(".case");
  if (!card || !room.joined || myRole(room.snapshot) === "spectator") return;
  let score;
  if (/^[0-4]$/.test(event.key)) score = Number(event.key);
  else if (event.key === "?" || event.key === "a" || event.key === "A") score = null;
  else return;
  event.preventDefault();
  vote(card.dataset.case, score);
}

let finishTimer = 0;
function onToolbarClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button || button.getAttribute("aria-disabled") === "true") return;
  const action = button.dataset.action;
  if (action !== "finish") {
    control(action, null, button);
    return;
  }
  // Finishing can't be undone: the first press asks, the second one does it.
  if (button.dataset.confirm !== "true") {
    button.dataset.confirm = "true";
    button.textContent = "Press again to finish";
    messages.announce("Press Finish again to end voting for everyone.");
    finishTimer = setTimeout(resetFinish, FINISH_CONFIRM_MS);
    return;
  }
  resetFinish();
  control("finish", null, button);
}

function resetFinish() {
  clearTimeout(finishTimer);
  delete dom.finishButton.dataset.confirm;
  dom.finishButton.textContent = "Finish session";
}

// Links to a case (from the recommendation) also move keyboard focus onto it.
function onCaseLink(event) {
  const link = event.target.closest("a[data-focus-case]");
  const card = link && cards.get(link.dataset.focusCase);
  if (!card) return;
  event.preventDefault();
  card.root.scrollIntoView({ behavior: "smooth", block: "center" });
  card.root.focus({ preventScroll: true });
}

// ---------- Start ----------

function start() {
  identity.adoptFragment();
  setUpCopyButtons(root, (message) => messages.announce(message));

  dom.joinForm.addEventListener("submit", onJoinSubmit);
  dom.cases.addEventListener("click", onCardClick);
  dom.cases.addEventListener("keydown", onCardKey);
  dom.facilitatorBar.addEventListener("click", onToolbarClick);
  root.addEventListener("click", onCaseLink);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") resync();
  });
  window.addEventListener("offline", () => setConnection("offline"));
  window.addEventListener("online", () => {
    if (socket && !socket.connected && room.joined) setConnection("reconnecting");
  });

  const me = identity.loadMe();
  if (me) {
    room.name = me.name;
    room.role = me.role === "spectator" ? "spectator" : "voter";
  }
  if (me && me.token) {
    room.token = me.token;
    connect();
  } else {
    showJoin();
  }
}

start();
