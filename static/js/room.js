// The voting room: joins over Socket.IO, renders each snapshot, sends votes and commands.

import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { t, tn } from "./i18n.js";
import { rememberSession } from "./recent.js";
import { sayLimits } from "./limits.js";
import { MyBallots } from "./room/ballots.js";
import { RoomBar, renderWaiting } from "./room/bar.js";
import { CaseCard } from "./room/cases.js";
import { DecisionPanel, decisionNews, decisionText } from "./room/decision.js";
import { Follower } from "./room/delta.js";
import { Confirm } from "./room/dialog.js";
import { setHidden, setText } from "./room/dom.js";
import { Identity } from "./room/identity.js";
import { setUpCopyButtons } from "./room/invite.js";
import { Messages, caseChanges, describeChanges } from "./room/messages.js";
import { Outbox } from "./room/outbox.js";
import { tally } from "./room/quorum.js";
import { renderHeader, renderPresence, renderRecommendation } from "./room/panels.js";
import { verdictSentence } from "./room/verdict.js";

const ACK_TIMEOUT_MS = 8000;
const RETRY_DELAY_MS = 1000;
// How often a control refused "for now" is sent again before the refusal is shown.
const CONTROL_RETRIES = 4;
const FINISH_CONFIRM_MS = 5000;
const NAME_MAX = 40;

const $ = (id) => document.getElementById(id);

const root = $("room");
const sessionId = root.dataset.sessionId;
const template = JSON.parse($("template-data").textContent);
const caseTitles = new Map(template.cases.map((c) => [c.id, c.title]));
const titleOf = (id) => caseTitles.get(id) ?? id;
const stackNames = new Map((template.stacks || []).map((s) => [s.id, s.name]));

const dom = {
  title: $("room-title"),
  status: $("room-status"),
  mode: $("room-mode"),
  anonymous: $("room-anonymous"),
  door: $("room-door"),
  inviteDoor: $("invite-door"),
  finished: $("finished-banner"),
  connection: $("connection"),
  connectionText: $("connection").querySelector(".connection__text"),
  join: $("join"),
  joinTitle: $("join-title"),
  joinContinue: $("join-continue"),
  joinContinueText: $("join-continue-text"),
  joinContinueButton: $("join-continue-button"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  joinSpectator: $("join-spectator"),
  joinSpectatorChoice: $("join-spectator-choice"),
  joinFacilitator: $("join-facilitator"),
  joinError: $("join-error"),
  joinSubmit: $("join-submit"),
  bar: $("roombar"),
  barStatus: $("roombar-status"),
  barEvent: $("roombar-event"),
  barVerdict: $("roombar-verdict"),
  barPeople: $("roombar-people"),
  facilitatorBar: $("facilitator-bar"),
  invite: $("invite"),
  finishButton: $("facilitator-bar").querySelector('[data-action="finish"]'),
  doorButton: $("facilitator-bar").querySelector('[data-action="door"]'),
  toolbarError: $("toolbar-error"),
  autoReveal: $("auto-reveal"),
  waiting: $("waiting"),
  waitingTitle: $("waiting-title"),
  waitingText: $("waiting-text"),
  leaveRow: $("leave-row"),
  leave: $("leave"),
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
  sure: $("rec-sure"),
  flip: $("rec-flip"),
  contested: $("rec-contested"),
  contestedList: $("rec-contested-list"),
  ranking: $("ranking"),
};

const cards = new Map(
  [...dom.cases.querySelectorAll(".case")].map((node) => [
    node.dataset.case,
    new CaseCard(node, template.scale),
  ]),
);
const bar = new RoomBar(dom);
const decisionPanel = new DecisionPanel($("decision-panel"), stackNames);
const confirmDialog = new Confirm($("confirm"));
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
  // Everyone this page has seen in the room, by id (names of people who left since).
  seen: new Map(),
  failedAttempts: 0,
  retryTimer: 0,
  removed: "", // why the server is about to close the connection, if it said
  removedReason: "", // "removed", "left" or "moved"
  focusOnRender: false, // just joined: put focus where the person will act
  autoRevealWanted: null, // the auto-reveal switch's state while a change is on its way
  toolbarErrorFor: null, // the questions open when a refusal was shown in the toolbar
  waiters: [], // [version, resolve]: commands waiting to see the snapshot they made
};

let socket = null;

const CONNECTION_WORDS = {
  idle: () => t("Not connected"),
  connecting: () => t("Connecting…"),
  connected: () => t("Live"),
  reconnecting: () => t("Reconnecting…"),
  storage: () => t("Server reconnecting…"),
  offline: () => t("Offline"),
};

// After this many failed attempts without ever connecting, WebSocket is probably blocked.
const BLOCKED_AFTER_ATTEMPTS = 3;

function setConnection(state) {
  room.connection = state;
  dom.connection.dataset.state = state;
  // Before someone first joins there is no connection to speak of ("Not connected" on a join
  // form reads like a fault).
  setHidden(dom.connection, state === "idle" && !room.everConnected);
  setText(dom.connectionText, CONNECTION_WORDS[state]());
  if (room.snapshot) render();
}

// ---------- Joining ----------

function showJoin(message = "", { invalid = true } = {}) {
  room.joined = false;
  root.dataset.state = "joining";
  setHidden(dom.join, false);
  setHidden(dom.joinContinue, true);
  setHidden(dom.joinForm, false);
  const facilitating = Boolean(identity.facilitatorToken);
  setHidden(dom.joinFacilitator, !facilitating);
  setHidden(dom.joinSpectatorChoice, facilitating);
  if (!dom.joinName.value) dom.joinName.value = room.name || identity.lastName;
  dom.joinError.textContent = message;
  dom.joinSubmit.disabled = false;
  dom.joinSubmit.textContent = t("Join");
  if (message && invalid) dom.joinName.setAttribute("aria-invalid", "true");
  dom.joinName.focus();
}

/**
 * The facilitator link on a device that isn't yet in the room, while someone already runs
 * the session: carrying on here makes this device that same person (with their ballots).
 */
function showContinue(text) {
  room.joined = false;
  root.dataset.state = "joining";
  setHidden(dom.join, false);
  setHidden(dom.joinForm, true);
  setHidden(dom.joinContinue, false);
  setText(dom.joinContinueText, text);
  dom.joinContinueButton.disabled = false;
  dom.joinContinueButton.focus();
}

function onContinue() {
  dom.joinContinueButton.disabled = true;
  room.token = null;
  room.name = "";
  room.role = "voter";
  connect();
}

function showRoom() {
  const first = !room.joined;
  room.joined = true;
  root.dataset.state = "joined";
  setHidden(dom.join, true);
  dom.joinError.textContent = "";
  if (first) room.focusOnRender = true;
}

// After joining, focus goes where the person will act: the first open question's scores,
// else the waiting panel (never left on <body>).
function focusStart() {
  const snapshot = room.snapshot;
  if (!snapshot) return;
  room.focusOnRender = false;
  const active = document.activeElement;
  if (active && active !== document.body && !dom.join.contains(active)) return;
  const open = snapshot.cases.find((c) => c.status === "voting");
  const card = open && cards.get(open.id);
  const target = card && !card.vote.hidden ? card.scoreButtons.find((b) => b.tabIndex === 0) : null;
  if (target) target.focus();
  else if (!dom.waiting.hidden) dom.waitingTitle.focus();
  else if (card) card.root.focus();
  else dom.casesSection.querySelector("h2")?.focus();
}

function onJoinSubmit(event) {
  event.preventDefault();
  dom.joinName.removeAttribute("aria-invalid");
  const name = dom.joinName.value.trim();
  if (!name) {
    showJoin(t("Please enter your name."));
    return;
  }
  if (name.length > NAME_MAX) {
    showJoin(t("Please keep your name to {max} characters.", { max: NAME_MAX }));
    return;
  }
  // A different name is a different person: don't reclaim the previous one's seat.
  if (name !== room.name) room.token = null;
  room.name = name;
  room.role = dom.joinSpectator.checked && !identity.facilitatorToken ? "spectator" : "voter";
  dom.joinError.textContent = "";
  dom.joinSubmit.disabled = true;
  dom.joinSubmit.textContent = t("Joining…");
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
    query: { room: sessionId, lang: document.documentElement.lang },
  });
  socket.on("connect", () => {
    room.everConnected = true;
    setConnection("connected");
  });
  socket.on("welcome", onWelcome);
  follower.listen(socket, setConnection);
  socket.on("removed", onRemoved);
  socket.on("role", onRole);
  socket.on("connect_error", onConnectError);
  socket.on("disconnect", onDisconnect);
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting"));
}

function onWelcome(welcome) {
  room.me = welcome.participant_id;
  room.toldRole = welcome.role;
  if (welcome.role !== "facilitator" && identity.facilitatorToken) {
    // The link this page kept no longer gives control (the role was handed on or given up):
    // forget it, and say why the controls are gone.
    identity.facilitatorToken = null;
    messages.toast(t("This facilitator link no longer gives control of this session. You can still join it as a participant."), "info");
  }
  room.token = welcome.token;
  identity.saveMe({
    name: welcome.name || room.name,
    token: welcome.token,
    participant_id: welcome.participant_id,
    role: welcome.role,
  });
  if (welcome.name) room.name = welcome.name;
  rememberSession({ id: sessionId, title: dom.title.textContent, role: welcome.role });
  mine.restore(welcome.ballots, welcome.reasons);
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
        t(
          "We can't open a live connection. A proxy, firewall or browser extension may be blocking WebSocket connections, or the server isn't set up for this address.",
        ),
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
  const message = err && err.message ? err.message : t("We couldn't join this session.");
  if (code === "bad_facilitator_token") {
    // The stored facilitator link is no good (e.g. an old session); join as a regular member.
    identity.facilitatorToken = null;
  }
  // A closed door or a full room is no fault of the name typed.
  showJoin(message, { invalid: code !== "door_closed" && code !== "full" });
}

// My role changed (a hand-over, a promotion, a demotion). A new facilitator is sent a link of
// their own, kept like the one a session is created with; someone who no longer facilitates
// forgets theirs (it gives no control any more). Said visibly and to screen readers (the
// toast is an alert), unless nothing changed for this page (a reconnect).
function onRole(event) {
  const role = event?.role;
  if (role !== "facilitator" && role !== "voter" && role !== "spectator") return;
  if (role === "facilitator") {
    if (typeof event.facilitator_token === "string") identity.facilitatorToken = event.facilitator_token;
  } else {
    identity.facilitatorToken = null;
  }
  const was = room.toldRole;
  room.toldRole = role;
  const me = identity.loadMe();
  if (me) identity.saveMe({ ...me, role });
  if (was === role) {
    render();
    return;
  }
  if (role === "facilitator") {
    messages.toast(t("You are a facilitator of this session now. Your own facilitator link is under “Your facilitator link”: keep it to take control from another device."), "info");
  } else if (was === "facilitator") {
    messages.toast(t("You no longer facilitate this session; you take part as a voter."), "info");
  }
  render();
}

// The facilitator took me off the list: my token names nobody any more, so forget it; joining
// again (by choice) makes a newcomer.
function onRemoved(notice) {
  room.removed = notice?.message || t("You were removed from this session.");
  room.removedReason = notice?.reason || "removed";
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
    const why = room.removedReason;
    if (why === "moved") {
      showContinue(
        t("You carried on in another tab or on another device, so this one stopped following the session. Continue here to move back."),
      );
    } else {
      if (why === "removed") {
        // Joining again makes someone new: offer no name, and show no room they are not in.
        room.name = "";
        dom.joinName.value = "";
      }
      showJoin(room.removed || t("The server closed the connection. Join again to continue."), {
        invalid: false,
      });
      if (why === "removed") {
        dom.joinName.value = "";
        root.dataset.state = "removed";
      }
    }
    room.removed = "";
    room.removedReason = "";
  } else {
    setConnection(navigator.onLine === false ? "offline" : "reconnecting");
  }
}

// The copy of the session on screen, kept in step by snapshots and deltas.
const follower = new Follower(() => socket, ACK_TIMEOUT_MS, onSnapshot);

// ---------- Snapshots ----------

function onSnapshot(snapshot, previous) {
  room.version = snapshot.version;
  room.snapshot = snapshot;
  room.waiters = room.waiters.filter(([version, resolve]) => {
    if (snapshot.version < version) return true;
    resolve(snapshot);
    return false;
  });
  mine.reconcile(snapshot, room.me);
  rememberName(snapshot);
  render();
  if (previous && room.joined) {
    const changes = describeChanges(previous, snapshot, titleOf, room.me, mine);
    // The team's decision is the news of its moment: it takes the bar over anything else.
    const decided = decisionNews(previous, snapshot, stackNames);
    const spoken = [changes.spoken, decided].filter(Boolean).join(" ");
    const event = decided ? { text: decided, caseId: null } : changes.event;
    if (spoken) messages.announce(spoken);
    if (event) {
      bar.showEvent(event, titleOf);
      render();
    }
    followTheFacilitator(caseChanges(previous, snapshot).opened);
  }
  if (room.focusOnRender && room.joined) focusStart();
}

/**
 * When a facilitator opens a question, bring it into view for whoever is still where the
 * room last was (at the top of the page, or at the question it last brought them to):
 * someone who scrolled away to read something else stays there. Smooth unless the reader
 * asked for reduced motion; focus is left alone (the live region says what opened).
 */
function followTheFacilitator(opened) {
  if (!opened.length || myRole(room.snapshot) === "facilitator") return;
  const active = document.activeElement;
  if (active && active !== document.body && active.matches("textarea, input, select")) return;
  const last = room.followed ? cards.get(room.followed)?.root : null;
  const stayed = last ? inView(last) : window.scrollY < window.innerHeight / 2;
  const card = cards.get(opened[0]);
  if (!stayed || !card) return;
  room.followed = opened[0];
  const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  card.root.scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "start" });
}

function inView(node) {
  const box = node.getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight;
}

// After carrying on from another device the server says who I am; keep my name in step.
function rememberName(snapshot) {
  const self = snapshot.participants.find((p) => p.id === room.me);
  if (!self || self.name === room.name) return;
  room.name = self.name;
  const me = identity.loadMe();
  if (me) identity.saveMe({ ...me, name: self.name });
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
  for (const [id, name] of names) room.seen.set(id, name);

  root.dataset.role = role;
  root.dataset.finished = String(finished);
  document.title = `${session.title} · stackvote`;
  renderHeader(dom, snapshot);

  setHidden(dom.facilitatorBar, !(facilitator && !finished));
  // Bulk actions are only offered when there is something for them to act on.
  const any = (status) => snapshot.cases.some((c) => c.status === status);
  const applicable = {
    open_all: any("pending"),
    reveal_all: any("voting"),
    countdown: any("voting"),
    // Someone here who votes has not voted on an open question (the server's rule too).
    nudge: waitingFor(snapshot) > 0,
    door: true,
    // Who of them holds a ballot only the server knows (in an anonymous session).
    remove_idle: snapshot.participants.some((p) => !p.online && p.role !== "facilitator"),
    finish: true,
  };
  // aria-disabled rather than disabled: a focused button keeps focus when it stops applying.
  for (const button of dom.facilitatorBar.querySelectorAll("button[data-action]")) {
    button.setAttribute("aria-disabled", String(offline || !applicable[button.dataset.action]));
  }
  // While a change of the switch is on its way, it shows what was asked for.
  dom.autoReveal.checked = room.autoRevealWanted ?? Boolean(session.auto_reveal);
  dom.autoReveal.disabled = offline;
  setText(dom.doorButton, doorOpen(session) ? t("Close to newcomers") : t("Open to newcomers"));
  if (room.toolbarErrorFor !== null && room.toolbarErrorFor !== openCases(snapshot)) {
    showToolbarError("");
  }
  setHidden(dom.keyboardHint, role === "spectator" || finished);
  // Once the session is over there is nobody left to invite.
  setHidden(dom.invite, finished);
  setHidden(dom.leaveRow, !room.joined || facilitator);

  const facilitatorToken = identity.facilitatorToken;
  setHidden(dom.facilitatorLink, !(facilitator && facilitatorToken));
  if (facilitatorToken) {
    dom.facilitatorUrl.value = `${root.dataset.joinUrl}#f=${encodeURIComponent(facilitatorToken)}`;
  }

  const view = {
    me: room.me,
    role,
    joined: room.joined,
    voter: role !== "spectator",
    people: snapshot.participants,
    nameOf: (p) => (p.id === room.me ? t("you") : p.name),
    // Someone who left while this page was open keeps their name, marked as gone.
    nameOfId: (id) =>
      names.get(id) ??
      (room.seen.has(id) ? t("{name} (left)", { name: room.seen.get(id) }) : t("someone who left")),
    mine,
    finished,
    facilitator,
    anonymous: session.anonymous,
    offline,
    nudge: session.nudge ?? null,
    decided: session.decision ? decisionText(session.decision, stackNames) : "",
    titleOf,
    verdict: verdictSentence(snapshot.recommendation, titleOf, (id) => stackNames.get(id) ?? id),
  };
  // A card that changes under the keyboard (its score buttons go when it is revealed) keeps
  // focus: the card itself takes it, rather than the page.
  const focusedCard = document.activeElement?.closest?.(".case") ?? null;
  for (const state of snapshot.cases) cards.get(state.id)?.render(state, view);
  if (focusedCard && !focusedCard.contains(document.activeElement)) {
    focusedCard.focus({ preventScroll: true });
  }
  keepTicking(snapshot);

  bar.render(snapshot, view);
  renderWaiting(dom, snapshot, view);
  renderPresence(dom, snapshot, { me: room.me, facilitator, offline });
  placeRecommendation(snapshot);
  renderRecommendation(dom, snapshot.recommendation, titleOf, askFlip);
  decisionPanel.render(snapshot, { facilitator, offline });
}

function doorOpen(session) {
  return session.door_open !== false;
}

// Which questions are open in which round: a refusal in the toolbar is about them.
function openCases(snapshot) {
  return snapshot.cases
    .filter((c) => c.status === "voting")
    .map((c) => `${c.id}:${c.round}`)
    .join(" ");
}

function showToolbarError(message) {
  room.toolbarErrorFor = message && room.snapshot ? openCases(room.snapshot) : null;
  setText(dom.toolbarError, message);
  setHidden(dom.toolbarError, !message);
}

/** The snapshot at `version` or later, once the page has it (or what it has after a while). */
function snapshotAt(version, waitMs = ACK_TIMEOUT_MS) {
  if (room.version >= version) return Promise.resolve(room.snapshot);
  return new Promise((resolve) => {
    const entry = [version, resolve];
    room.waiters.push(entry);
    setTimeout(() => {
      room.waiters = room.waiters.filter((w) => w !== entry);
      resolve(room.snapshot);
    }, waitMs);
  });
}

// While questions are still being scored they come first; once nothing is open, the verdict does.
function placeRecommendation(snapshot) {
  const finished = snapshot.session.status === "finished";
  const scoring = !finished && snapshot.cases.some((c) => c.status === "voting");
  const position = dom.casesSection.compareDocumentPosition(dom.recommendation);
  const after = Boolean(position & Node.DOCUMENT_POSITION_FOLLOWING);
  if (scoring && !after) dom.casesSection.after(dom.recommendation);
  else if (!scoring && after) dom.casesSection.before(dom.recommendation);
  // The decision follows the recommendation it answers.
  if (dom.recommendation.nextElementSibling !== decisionPanel.root) {
    dom.recommendation.after(decisionPanel.root);
  }
  setText(dom.recommendationTitle, finished ? t("Recommendation") : t("Recommendation so far"));
}

// Countdowns tick once a second while any question has a deadline.
let ticker = 0;
function keepTicking(snapshot) {
  const running = snapshot.cases.some((c) => c.status === "voting" && c.deadline);
  if (running && !ticker) {
    ticker = setInterval(() => {
      for (const card of cards.values()) card.tick();
      if (room.snapshot) bar.render(room.snapshot, bar.last.view);
    }, 1000);
  } else if (!running && ticker) {
    clearInterval(ticker);
    ticker = 0;
  }
}

// ---------- Sending ----------

function ensureOnline() {
  if (socket && socket.connected) return true;
  messages.toast(t("You're offline right now. We'll keep trying to reconnect; try again shortly."));
  return false;
}

function reasonFor(caseId) {
  return (cards.get(caseId)?.reasonInput.value ?? "").trim();
}

function vote(caseId, score) {
  const state = room.snapshot?.cases.find((c) => c.id === caseId);
  if (!state) return;
  if (state.status !== "voting") {
    const why =
      state.status === "pending"
        ? t("This question isn't open for voting yet.")
        : t("Voting on this question is closed.");
    messages.toast(why, "info");
    return;
  }
  const reason = reasonFor(caseId);
  const same =
    mine.has(caseId) && mine.get(caseId) === score && (mine.reasons.get(caseId) ?? "") === reason;
  if (!mine.pending.has(caseId) && same) return;

  const ballot = outbox.add(caseId, score, state.round, reason);
  mine.pending.add(caseId);
  mine.choosing.set(caseId, score);
  render();
  if (socket?.connected) {
    deliver(ballot);
  } else {
    messages.toast(
      t("You're offline; your vote will be sent as soon as the connection is back."),
      "info",
    );
  }
}

/** Ask the server what would put a stack first: its answer, or null when there is none now. */
function askFlip(stack) {
  return new Promise((resolve) => {
    if (!socket?.connected) return resolve(null);
    socket.timeout(ACK_TIMEOUT_MS).emit("flip", { stack }, (err, ack) => {
      resolve(!err && ack?.ok ? ack : null);
    });
  });
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
      messages.toast(ack?.error || t("Your vote didn't go through. Please try again."));
    } else {
      mine.confirm(ballot.case, ballot.score, ballot.reason ?? "", ack.version);
      if (ballot.reason) messages.announce(t("Score and reason saved."));
    }
    render();
  });
}

/**
 * A facilitator command; `extra` goes into the payload, `focusAfter` takes focus if the
 * pressed button goes away. A refusal shows where the button is (its question, the toolbar),
 * else as a toast. Resolves to the server's ack if it accepted the command, else null.
 */
function control(action, caseId, button, focusAfter, extra = {}) {
  if (!ensureOnline()) return Promise.resolve(null);
  const payload = caseId ? { action, case: caseId, ...extra } : { action, ...extra };
  const card = caseId && button ? cards.get(caseId) : null;
  const inToolbar = Boolean(button && dom.facilitatorBar.contains(button));
  const inDecision = Boolean(button && decisionPanel.form.contains(button));
  const refuse = (message) => {
    if (card) card.showError(message, room.snapshot?.cases.find((c) => c.id === caseId));
    else if (inToolbar) showToolbarError(message);
    else if (inDecision) decisionPanel.showError(message);
    else messages.toast(message);
  };
  if (card) card.showError("");
  if (inToolbar) showToolbarError("");
  if (inDecision) decisionPanel.showError("");
  button?.setAttribute("aria-disabled", "true");
  return new Promise((resolve) => {
    const send = (attempt) => socket.timeout(ACK_TIMEOUT_MS).emit("control", payload, (err, ack) => {
      if (ack && !ack.ok && ack.retry && attempt < CONTROL_RETRIES && socket.connected) {
        // Refused for now only (busy, or storage down), so nothing was done and asking
        // again is safe: a click that lands in a busy moment still takes effect.
        setTimeout(() => send(attempt + 1), RETRY_DELAY_MS + Math.random() * 1000);
        return;
      }
      button?.removeAttribute("aria-disabled");
      render(); // the toolbar's buttons get their state back from the snapshot
      if (err) refuse(t("The server didn't answer in time. Please try again."));
      else if (!ack || !ack.ok) refuse(ack?.error || t("That didn't work. Please try again."));
      if (focusAfter && button && (button.hidden || document.activeElement === document.body)) {
        focusAfter.focus();
      }
      resolve(!err && ack && ack.ok ? ack : null);
    });
    send(0);
  });
}

function timerSeconds(scope) {
  const select = scope.querySelector('select[data-role="timer-seconds"]');
  return Number(select?.value) || 60;
}

// ---------- Input ----------

function onCardClick(event) {
  const button = event.target.closest("button");
  const card = event.target.closest(".case");
  if (!button || !card) return;
  const caseId = card.dataset.case;
  if (button.dataset.score !== undefined) {
    const score = button.dataset.score === "abstain" ? null : Number(button.dataset.score);
    vote(caseId, score);
  } else if (button.dataset.role === "reason-save") {
    saveReason(caseId);
  } else if (button.dataset.action && button.getAttribute("aria-disabled") !== "true") {
    const action = button.dataset.action;
    if (action === "countdown") {
      control("countdown", caseId, button, card, { seconds: timerSeconds(card) });
    } else if (action === "stop_countdown") {
      control("countdown", caseId, button, card, { seconds: 0 });
    } else {
      control(action, caseId, button, card);
    }
  }
}

function saveReason(caseId) {
  if (!mine.has(caseId) && !mine.choosing.has(caseId)) {
    messages.toast(t("Pick a score first: the reason goes with it."), "info");
    return;
  }
  const score = mine.choosing.has(caseId) ? mine.choosing.get(caseId) : mine.get(caseId);
  vote(caseId, score);
}

const ARROWS = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };

// Arrows move between a question's scores; digit keys score the focused card, "?" or "a"
// skips it.
function onCardKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, summary")) return;
  const card = event.target.closest(".case");
  if (!card || !room.joined || myRole(room.snapshot) === "spectator") return;
  const scoreButton = event.target.closest("button[data-score]");
  if (scoreButton && (event.key in ARROWS || event.key === "Home" || event.key === "End")) {
    const buttons = cards.get(card.dataset.case).scoreButtons;
    const at = buttons.indexOf(scoreButton);
    let next = at + (ARROWS[event.key] ?? 0);
    if (event.key === "Home") next = 0;
    if (event.key === "End") next = buttons.length - 1;
    next = (next + buttons.length) % buttons.length;
    event.preventDefault();
    for (const b of buttons) b.tabIndex = -1;
    buttons[next].tabIndex = 0;
    buttons[next].focus();
    return;
  }
  let score;
  if (/^[0-4]$/.test(event.key)) score = Number(event.key);
  else if (event.key === "?" || event.key === "a" || event.key === "A") score = null;
  else return;
  event.preventDefault();
  vote(card.dataset.case, score);
}

function onReasonInput(event) {
  const input = event.target.closest('textarea[data-role="reason-input"]');
  if (!input) return;
  cards.get(input.closest(".case").dataset.case)?.countReason();
}

let finishTimer = 0;
/**
 * How many people here who vote have not voted on some open question: in an anonymous session
 * the most missing on any one question (who they are is not told), else everyone missing.
 */
function waitingFor(snapshot) {
  const anonymous = Boolean(snapshot.session.anonymous);
  const missing = new Set();
  let most = 0;
  for (const c of snapshot.cases) {
    if (c.status !== "voting") continue;
    const count = tally(snapshot.participants, c, anonymous);
    most = Math.max(most, count.total - count.voted);
    for (const p of count.missing || []) missing.add(p.id);
  }
  return anonymous ? most : missing.size;
}

async function nudge(button) {
  const waiting = waitingFor(room.snapshot);
  const ack = await control("nudge", null, button);
  if (!ack) return;
  const text = room.snapshot.session.anonymous
    ? t("Reminder sent to everyone who hasn't voted yet.")
    : tn("Reminder sent to {count} person who hasn't voted yet.", "Reminder sent to {count} people who haven't voted yet.", waiting);
  messages.toast(text, "info");
}

function onToolbarClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button || button.getAttribute("aria-disabled") === "true") return;
  const action = button.dataset.action;
  if (action === "countdown") {
    control("countdown", null, button, null, { seconds: timerSeconds(dom.facilitatorBar) });
    return;
  }
  if (action === "door") {
    control("door", null, button, null, { open: !doorOpen(room.snapshot.session) });
    return;
  }
  if (action === "remove_idle") {
    removeIdle(button);
    return;
  }
  if (action === "nudge") {
    nudge(button);
    return;
  }
  if (action !== "finish") {
    control(action, null, button);
    return;
  }
  // Finishing can't be undone: the first press asks, the second one does it.
  if (button.dataset.confirm !== "true") {
    button.dataset.confirm = "true";
    button.textContent = t("Press again to finish");
    messages.announce(t("Press the button again to end voting for everyone."));
    finishTimer = setTimeout(resetFinish, FINISH_CONFIRM_MS);
    return;
  }
  resetFinish();
  control("finish", null, button);
}

function resetFinish() {
  clearTimeout(finishTimer);
  delete dom.finishButton.dataset.confirm;
  dom.finishButton.textContent = t("Finish session");
}

// The sweep: everyone offline who holds no ballot leaves in one change; the toast says how
// many went (the people in the snapshot before, less those still in the one it made).
async function removeIdle(button) {
  const answer = await confirmDialog.ask({
    title: t("Remove people who are offline and haven't voted?"),
    text: t("Everyone who is offline and hasn't scored or skipped any question leaves the list (facilitators stay). They can join again as someone new, unless the session is closed to newcomers."),
    confirm: t("Remove them"),
    danger: true,
  });
  if (!answer) return;
  const before = new Set(room.snapshot.participants.map((p) => p.id));
  const ack = await control("remove_idle", null, button);
  if (!ack) return;
  const after = await snapshotAt(ack.version);
  const left = [...before].filter((id) => !after.participants.some((p) => p.id === id)).length;
  messages.toast(
    tn("{count} person removed: they were offline and hadn't voted.", "{count} people removed: they were offline and hadn't voted.", left),
    "info",
  );
}

async function onAutoReveal() {
  room.autoRevealWanted = dom.autoReveal.checked;
  const ack = await control("auto_reveal", null, null, null, { on: dom.autoReveal.checked });
  // The answer may come before the snapshot holding the change: until that is on screen, the
  // switch keeps showing what was asked for rather than flicking back.
  if (ack) await snapshotAt(ack.version);
  room.autoRevealWanted = null;
  render();
}

// The facilitator's buttons in the people list.
async function onPersonAction(event) {
  const button = event.target.closest("button[data-person-action]");
  if (!button || button.getAttribute("aria-disabled") === "true") return;
  const id = button.dataset.participant;
  const person = room.snapshot?.participants.find((p) => p.id === id);
  if (!person) return;
  const action = button.dataset.personAction;
  if (action === "hand_over") {
    const answer = await confirmDialog.ask({
      title: t("Hand the session to {name}?", { name: person.name }),
      text: t("{name} will run the session from now on and you'll carry on as a voter. Your facilitator link stops working.", { name: person.name }),
      confirm: t("Hand over"),
    });
    if (!answer) return;
    const ack = await control("hand_over", null, null, null, { participant: id });
    if (ack) messages.toast(t("{name} runs the session now; you take part as a voter.", { name: person.name }), "info");
    return;
  }
  if (action === "promote") {
    const ack = await control("promote", null, null, null, { participant: id });
    if (ack) messages.toast(t("{name} is a co-facilitator now, with a facilitator link of their own.", { name: person.name }), "info");
    return;
  }
  if (action === "demote") {
    const self = id === room.me;
    if (self) {
      const answer = await confirmDialog.ask({
        title: t("Step down as facilitator?"),
        text: t("The other facilitators carry on; you'll take part as a voter, and your facilitator link stops working."),
        confirm: t("Step down"),
      });
      if (!answer) return;
    }
    const ack = await control("demote", null, null, null, { participant: id });
    if (ack && !self) messages.toast(t("{name} takes part as a voter now.", { name: person.name }), "info");
    return;
  }
  // In an anonymous session their votes stay counted: taking them out would show what they
  // were (the server refuses), so there is nothing to choose.
  const anonymous = Boolean(room.snapshot.session.anonymous);
  const text = t("They'll be told and taken out of the room. They can join again as someone new.");
  const answer = await confirmDialog.ask({
    title: t("Remove {name}?", { name: person.name }),
    text: anonymous ? text + " " + t("Any votes they gave stay counted.") : text,
    confirm: t("Remove"),
    danger: true,
    check: anonymous
      ? null
      : { label: t("Also drop their scores on questions still open"), checked: false },
  });
  if (answer) {
    const keep = anonymous || !answer.checked;
    await control("remove", null, null, null, { participant: id, keep_ballots: keep });
  }
}

async function onLeave() {
  const anonymous = Boolean(room.snapshot?.session.anonymous);
  const text = t("You'll be taken off the list of people. You can join again later as someone new.");
  const answer = await confirmDialog.ask({
    title: t("Leave this session?"),
    text: anonymous ? text + " " + t("Any votes you gave stay counted.") : text,
    confirm: t("Leave"),
    danger: true,
    check: anonymous ? null : { label: t("Keep my scores on questions still open"), checked: true },
  });
  if (!answer || !ensureOnline()) return;
  const keep = anonymous || answer.checked;
  socket.timeout(ACK_TIMEOUT_MS).emit("leave", { keep_ballots: keep }, (err, ack) => {
    if (err) messages.toast(t("The server didn't answer in time. Please try again."));
    else if (!ack || !ack.ok) messages.toast(ack?.error || t("That didn't work. Please try again."));
    else {
      room.removed = t("You left this session. Join again whenever you like.");
      room.removedReason = "left";
    }
  });
}

// The team's decision, recorded (or changed) by a facilitator; a refusal shows by the form.
async function onDecide(event) {
  event.preventDefault();
  const button = decisionPanel.submit;
  if (button.getAttribute("aria-disabled") === "true") return;
  const ack = await control("decide", null, button, null, decisionPanel.value());
  if (!ack) return;
  decisionPanel.saved();
  messages.announce(t("Decision saved."));
  render();
}

// Links to a case (from the recommendation or the bar) also move keyboard focus onto it.
function onCaseLink(event) {
  const link = event.target.closest("a[data-focus-case]");
  const card = link && cards.get(link.dataset.focusCase);
  if (!card) return;
  event.preventDefault();
  card.root.scrollIntoView({ behavior: "smooth", block: "center" });
  card.root.focus({ preventScroll: true });
}

// ---------- Start ----------

/**
 * The sticky bar must never cover what has focus (WCAG 2.4.11): the page's scroll padding
 * follows the bar's height, so focusing scrolls clear of it, and anything focused under it
 * anyway (a browser that ignores the padding, a bar that just grew) is scrolled into view.
 */
function keepFocusClearOfTheBar() {
  const pad = () => {
    const height = dom.bar.hidden ? 0 : Math.ceil(dom.bar.getBoundingClientRect().height);
    document.documentElement.style.scrollPaddingTop = `${height + 8}px`;
  };
  new ResizeObserver(pad).observe(dom.bar);
  pad();
  document.addEventListener("focusin", (event) => {
    const target = event.target;
    if (dom.bar.hidden || !(target instanceof Element) || dom.bar.contains(target)) return;
    const bar = dom.bar.getBoundingClientRect();
    const box = target.getBoundingClientRect();
    if (box.bottom > bar.top && box.top < bar.bottom) {
      window.scrollBy({ top: box.top - bar.bottom - 8, behavior: "instant" });
    }
  });
}

/**
 * Someone holding a facilitator link, new on this device. The server says whom it names: if
 * that facilitator is here already, offer to carry on as them here; if nobody holds it yet,
 * ask for a name (or use the one given when creating the session); if it gives no control any
 * more, say so at once and offer to join as a participant.
 */
async function startWithLink(me) {
  let answer = null;
  let refusal = "";
  try {
    const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}/link`, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ facilitator_token: identity.facilitatorToken }),
    });
    const body = response.ok ? await response.json().catch(() => null) : null;
    if (body?.valid === false) {
      refusal = body.message || t("This facilitator link no longer gives control of this session. You can still join it as a participant.");
    } else if (body) {
      answer = body;
    }
  } catch {
    // Offline or refused: the join form still works, and connecting will say.
  }
  if (refusal) {
    identity.facilitatorToken = null;
    showJoin(refusal, { invalid: false });
    return;
  }
  const holder = answer?.facilitator;
  if (holder) {
    showContinue(
      t("{name} is running this session from another tab or device. Carry on here as {name}: your scores come along, and the other one stops following the session.", { name: holder.name }),
    );
  } else if (me && me.name) {
    connect();
  } else {
    showJoin();
  }
}

function start() {
  identity.adoptFragment();
  sayLimits();
  setUpCopyButtons(root, (message) => messages.announce(message));

  dom.joinForm.addEventListener("submit", onJoinSubmit);
  dom.joinContinueButton.addEventListener("click", onContinue);
  dom.cases.addEventListener("click", onCardClick);
  dom.cases.addEventListener("keydown", onCardKey);
  dom.cases.addEventListener("input", onReasonInput);
  dom.facilitatorBar.addEventListener("click", onToolbarClick);
  dom.autoReveal.addEventListener("change", onAutoReveal);
  dom.presence.addEventListener("click", onPersonAction);
  dom.leave.addEventListener("click", onLeave);
  decisionPanel.form.addEventListener("submit", onDecide);
  root.addEventListener("click", onCaseLink);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") follower.resync();
  });
  window.addEventListener("offline", () => setConnection("offline"));
  window.addEventListener("online", () => {
    if (socket && !socket.connected && room.joined) setConnection("reconnecting");
  });
  // The controls stay open on wide screens; on a phone they fold away under their summary.
  dom.facilitatorBar.open = window.matchMedia("(min-width: 701px)").matches;
  keepFocusClearOfTheBar();

  const me = identity.loadMe();
  if (me) {
    room.name = me.name;
    room.role = me.role === "spectator" ? "spectator" : "voter";
  }
  if (me && me.token) {
    room.token = me.token;
    connect();
  } else if (identity.facilitatorToken) {
    startWithLink(me);
  } else {
    showJoin();
  }
}

start();
