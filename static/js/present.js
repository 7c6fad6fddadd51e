// The presenter view: a session on the meeting room's big screen. It connects to watch
// (auth {session, watch: true}), so it is nobody in the room: no name, no controls, not
// counted. It applies `state` and `delta` like the room page and shows what the room is doing:
// the question being voted on, the reveal, the recommendation, or how to join.

import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { t, tn } from "./i18n.js";
import { decisionHeadline, decisionNews, differsText } from "./room/decision.js";
import { Follower } from "./room/delta.js";
import { MIN_CROWD, tally as roomTally } from "./room/quorum.js";
import {
  agreementText,
  bandWord,
  el,
  formatNumber,
  formatSigned,
  setHidden,
  setText,
} from "./room/dom.js";
import { Messages, caseChanges, milestones } from "./room/messages.js";
import { scoreTrack } from "./room/panels.js";
import { verdictSentence } from "./room/verdict.js";

const ACK_TIMEOUT_MS = 8000;

const $ = (id) => document.getElementById(id);

const root = $("present");
const sessionId = root.dataset.sessionId;
const template = JSON.parse($("template-data").textContent);
const templateCases = new Map(template.cases.map((c) => [c.id, c]));
const titleOf = (id) => templateCases.get(id)?.title ?? id;
const stackOf = (id) => (template.stacks || []).find((s) => s.id === id)?.name ?? id;
const scale = template.scale || [];
const stackNames = new Map((template.stacks || []).map((s) => [s.id, s.name]));

const dom = {
  title: $("present-title"),
  headCode: $("head-code"),
  headDoor: $("head-door"),
  connection: $("connection"),
  connectionText: $("connection").querySelector(".connection__text"),
  views: {
    waiting: $("view-waiting"),
    question: $("view-question"),
    questions: $("view-questions"),
    results: $("view-results"),
    gone: $("view-gone"),
  },
  waitingTitle: $("waiting-title"),
  waitingInvite: $("waiting-invite"),
  waitingDoor: $("waiting-door"),
  waitingQr: $("waiting-qr"),
  questionRound: $("question-round"),
  questionTitle: $("question-title"),
  questionHelp: $("question-help"),
  questionCount: $("question-count"),
  questionMeter: $("question-meter"),
  questionCountdown: $("question-countdown"),
  questionsTitle: $("questions-title"),
  questionsList: $("questions-list"),
  resultsTitle: $("results-title"),
  results: $("results"),
  recommendation: $("recommendation"),
  recommendationTitle: $("rec-title"),
  verdict: $("verdict"),
  ranking: $("ranking"),
  decision: $("decision"),
  decisionWhat: $("decision-what"),
  decisionNote: $("decision-note"),
  decisionDiffers: $("decision-differs"),
  goneMessage: $("gone-message"),
};

const messages = new Messages(null, $("announcer"));

const screen = {
  snapshot: null,
  version: -1,
  // The questions revealed since one was last opened: what the reveal view shows (null until
  // this screen has seen a reveal happen; then every revealed question is shown).
  featured: null,
  gone: false,
};

let socket = null;
let retryTimer = 0;
let ticker = 0;

const CONNECTION_WORDS = {
  connecting: () => t("Connecting…"),
  connected: () => t("Live"),
  reconnecting: () => t("Reconnecting…"),
  storage: () => t("Server reconnecting…"),
  offline: () => t("Offline"),
};

function setConnection(state) {
  dom.connection.dataset.state = state;
  setText(dom.connectionText, CONNECTION_WORDS[state]());
}

// ---------- Connection ----------

function connect() {
  setConnection("connecting");
  socket = io({
    auth: { session: sessionId, watch: true },
    // WebSocket only, and the room in the query for the proxy: as the room page connects.
    transports: ["websocket"],
    query: { room: sessionId, lang: document.documentElement.lang },
  });
  socket.on("connect", () => setConnection("connected"));
  follower.listen(socket, setConnection);
  socket.on("connect_error", onConnectError);
  socket.on("disconnect", onDisconnect);
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting"));
}

// A screen nobody attends keeps trying, unless the session is gone for good.
function retryLater() {
  clearTimeout(retryTimer);
  // At a random moment, so the screens of a whole building don't come back at once.
  retryTimer = setTimeout(() => socket.connect(), 1000 + Math.random() * 4000);
}

function onConnectError(err) {
  if (socket.active) {
    setConnection("reconnecting"); // a network problem: the client retries by itself
    return;
  }
  const code = err?.data?.code;
  if (code === "unknown_session") {
    showGone(err.message || t("This session no longer exists."));
    return;
  }
  setConnection(code === "unavailable" ? "storage" : "reconnecting");
  retryLater();
}

function onDisconnect(reason) {
  if (reason === "io client disconnect") return;
  if (reason === "io server disconnect") {
    // Closed on purpose by the server; it won't come back by itself.
    setConnection("reconnecting");
    retryLater();
    return;
  }
  setConnection(navigator.onLine === false ? "offline" : "reconnecting");
}

// The copy of the session on screen, kept in step by snapshots and deltas.
const follower = new Follower(() => socket, ACK_TIMEOUT_MS, onSnapshot);

function onSnapshot(snapshot, previous) {
  screen.version = snapshot.version;
  screen.snapshot = snapshot;
  if (previous) {
    const changes = caseChanges(previous, snapshot);
    if (changes.opened.length) screen.featured = [];
    const closed = [...changes.revealed, ...changes.withheld];
    if (closed.length) screen.featured = [...(screen.featured || []), ...closed];
    // Spoken: questions opened and revealed, the end; never a single vote.
    const said = milestones(previous, snapshot, titleOf, changes);
    const verdict = verdictSentence(snapshot.recommendation, titleOf, stackOf);
    if (snapshot.session.status === "finished" && previous.session.status !== "finished") {
      if (verdict) said.push(t("Recommendation: {verdict}", { verdict }));
    }
    const decided = decisionNews(previous, snapshot, stackNames);
    if (decided) said.push(decided);
    if (said.length) messages.announce(said.join(" "));
  }
  render();
}

function showGone(message) {
  screen.gone = true;
  setText(dom.goneMessage, message);
  render();
}

// ---------- What the screen shows ----------

const VIEWS = ["waiting", "question", "questions", "results", "gone"];

function shownCases(snapshot) {
  return snapshot.cases.filter((c) => c.status === "revealed" || c.status === "locked");
}

function chooseView(snapshot, voting) {
  if (screen.gone) return "gone";
  if (!snapshot) return "connecting";
  if (snapshot.session.status === "finished") return "finished";
  if (voting.length === 1) return "question";
  if (voting.length > 1) return "questions";
  return shownCases(snapshot).length ? "results" : "waiting";
}

function render() {
  const snapshot = screen.snapshot;
  const voting = snapshot ? snapshot.cases.filter((c) => c.status === "voting") : [];
  const name = chooseView(snapshot, voting);
  root.dataset.view = name;
  const section = name === "finished" ? "results" : name;
  for (const view of VIEWS) setHidden(dom.views[view], view !== section);
  setHidden(dom.connection, name === "gone");
  // The join code stays in a corner while people can join, except where the waiting screen
  // shows it large; while the session is closed to newcomers, the corner says so instead.
  const closed = snapshot?.session.door_open === false && name !== "finished";
  const corner = ["question", "questions", "results"].includes(name);
  if (dom.headCode) setHidden(dom.headCode, !corner || closed);
  setHidden(dom.headDoor, !corner || !closed);
  if (!snapshot || name === "gone") {
    stopTicking();
    return;
  }

  const session = snapshot.session;
  setText(dom.title, session.title);
  document.title = `${session.title} · ${t("Presenter view")} · stackvote`;
  if (name === "waiting") renderWaiting(snapshot);
  else if (name === "question") renderQuestion(snapshot, voting[0]);
  else if (name === "questions") renderQuestions(snapshot, voting);
  else renderResults(snapshot, name === "finished");
  tick();
}

function renderWaiting(snapshot) {
  const started = snapshot.cases.some((c) => c.status !== "pending");
  setText(
    dom.waitingTitle,
    started ? t("Waiting for the next question") : t("Waiting for the first question"),
  );
  // Closed to newcomers: no invitation nobody could take up.
  const closed = snapshot.session.door_open === false;
  setHidden(dom.waitingInvite, closed);
  setHidden(dom.waitingQr, closed);
  setHidden(dom.waitingDoor, !closed);
}

/** "n of m voted": the room's count (room/quorum.js), as the big screen shows it. */
function tally(snapshot, state) {
  const { voted: n, total: m } = roomTally(
    snapshot.participants,
    state,
    Boolean(snapshot.session.anonymous),
  );
  return { n, m, text: t("{n} of {m} voted", { n, m }), share: m ? n / m : 0 };
}

function roundWord(state) {
  return state.round > 1 ? t("Round {round}", { round: state.round }) : "";
}

function renderQuestion(snapshot, state) {
  const round = roundWord(state);
  setText(dom.questionRound, round);
  setHidden(dom.questionRound, !round);
  setText(dom.questionTitle, titleOf(state.id));
  const help = templateCases.get(state.id)?.help || "";
  setText(dom.questionHelp, help);
  setHidden(dom.questionHelp, !help);
  const count = tally(snapshot, state);
  setText(dom.questionCount, count.text);
  dom.questionCount.dataset.votesIn = String(count.n);
  dom.questionCount.dataset.total = String(count.m);
  dom.questionMeter.style.width = `${count.share * 100}%`;
  setDeadline(dom.questionCountdown, state.deadline);
}

function renderQuestions(snapshot, voting) {
  setText(
    dom.questionsTitle,
    tn("Now voting on {count} question", "Now voting on {count} questions", voting.length),
  );
  const rows = voting.map((state) => ({ state, count: tally(snapshot, state) }));
  const key = JSON.stringify(
    rows.map((r) => [r.state.id, r.count.text, r.state.round, r.state.deadline]),
  );
  if (dom.questionsList.dataset.key === key) return;
  dom.questionsList.dataset.key = key;
  dom.questionsList.dataset.many = String(rows.length > 4);
  dom.questionsList.replaceChildren(
    ...rows.map(({ state, count }) => {
      const meter = el("span", { class: "present-meter__fill" });
      meter.style.width = `${count.share * 100}%`;
      const countdown = el("span", { class: "present-countdown present-countdown--small" });
      setDeadline(countdown, state.deadline);
      const round = roundWord(state);
      return el(
        "li",
        { class: "present-open-list__item", dataset: { case: state.id } },
        el(
          "span",
          { class: "present-open-list__title" },
          titleOf(state.id),
          round ? el("span", { class: "present-round", text: ` · ${round}` }) : null,
        ),
        el("span", {
          class: "present-open-list__count",
          dataset: { testid: `count-${state.id}` },
          text: count.text,
        }),
        el("span", { class: "present-meter present-meter--small", "aria-hidden": "true" }, meter),
        countdown,
      );
    }),
  );
}

function renderResults(snapshot, finished) {
  const shown = shownCases(snapshot);
  let cases = shown;
  if (!finished && screen.featured) {
    const featured = new Set(screen.featured);
    const recent = shown.filter((c) => featured.has(c.id));
    if (recent.length) cases = recent;
  }
  if (finished) {
    setText(dom.resultsTitle, cases.length ? t("Final scores") : t("The session is finished"));
  } else if (cases.length === 1) {
    const round = roundWord(cases[0]);
    const title = cases[0].withheld ? t("Voting closed") : t("Scores revealed");
    setText(dom.resultsTitle, round ? `${title} · ${round}` : title);
  } else if (cases.length && cases.every((c) => c.withheld)) {
    setText(
      dom.resultsTitle,
      tn("Voting closed on {count} question", "Voting closed on {count} questions", cases.length),
    );
  } else if (cases.length < shown.length) {
    // The ones just revealed, not every question revealed so far.
    setText(
      dom.resultsTitle,
      tn(
        "Scores just revealed on {count} question",
        "Scores just revealed on {count} questions",
        cases.length,
      ),
    );
  } else {
    setText(
      dom.resultsTitle,
      tn(
        "Scores revealed on {count} question",
        "Scores revealed on {count} questions",
        cases.length,
      ),
    );
  }
  const key = JSON.stringify([
    finished,
    cases.map((c) => [c.id, c.round, c.results, c.withheld]),
  ]);
  if (dom.results.dataset.key !== key) {
    dom.results.dataset.key = key;
    if (cases.length === 1) dom.results.replaceChildren(revealedCase(cases[0], finished));
    else if (cases.length) dom.results.replaceChildren(revealedList(cases));
    else dom.results.replaceChildren();
  }
  renderRecommendation(snapshot.recommendation, finished, snapshot.session.decision);
  renderDecision(snapshot.session.decision, snapshot.recommendation);
}

// The team's decision, once made, leads the verdict's box: it is what was chosen.
function renderDecision(decision, recommendation) {
  setHidden(dom.decision, !decision);
  dom.recommendation.dataset.decided = String(Boolean(decision));
  if (!decision) return;
  const key = JSON.stringify(decision);
  if (dom.decision.dataset.key !== key) {
    dom.decision.dataset.key = key;
    setText(dom.decisionWhat, decisionHeadline(decision, stackNames));
    setText(dom.decisionNote, decision.note);
    setHidden(dom.decisionNote, !decision.note);
  }
  const differs = differsText(decision, recommendation);
  setText(dom.decisionDiffers, differs);
  setHidden(dom.decisionDiffers, !differs);
}

function histogram(results, compact) {
  const n = results.n || 0;
  const counts = results.histogram || [0, 0, 0, 0, 0];
  return el(
    "ul",
    { class: compact ? "present-hist present-hist--compact" : "present-hist", role: "list" },
    counts.map((count, score) => {
      const bar = el("span", { class: "present-hist__bar" });
      // A share of the people who scored: the column's height, or its width on a phone.
      bar.style.setProperty("--share", n ? `${(count / n) * 100}%` : "0%");
      const label = scale[score] || "";
      const said = label
        ? tn("{score} ({label}): {count} person", "{score} ({label}): {count} people", count, {
            score,
            label,
          })
        : tn("{score}: {count} person", "{score}: {count} people", count, { score });
      return el(
        "li",
        { class: "present-hist__col", dataset: { score: String(score), count: String(count) } },
        el("span", { class: "visually-hidden", text: said }),
        el("span", { class: "present-hist__count", "aria-hidden": "true", text: String(count) }),
        el("span", { class: "present-hist__track", "aria-hidden": "true" }, bar),
        el("span", { class: "present-hist__score", "aria-hidden": "true", text: String(score) }),
        compact
          ? null
          : el("span", { class: "present-hist__label", "aria-hidden": "true", text: label }),
      );
    }),
  );
}

function noScores(state) {
  if (state.withheld) {
    return t("Voting closed without results: fewer than {crowd} people scored this question.", {
      crowd: MIN_CROWD,
    });
  }
  return state.results?.abstain
    ? t("Everyone who voted skipped this one.")
    : t("Nobody scored this one.");
}

function revealedCase(state, finished) {
  const results = state.results || {};
  const n = results.n || 0;
  const body = [el("h3", { class: "present-case__title", text: titleOf(state.id) })];
  if (!n) {
    body.push(el("p", { class: "present-case__empty", text: noScores(state) }));
    return el("article", { class: "present-case", dataset: { case: state.id } }, body);
  }
  const abstain = results.abstain || 0;
  body.push(
    histogram(results, false),
    el(
      "dl",
      { class: "present-stats" },
      el(
        "div",
        { class: "present-stats__item" },
        el("dt", { text: t("Median") }),
        el("dd", { dataset: { testid: `median-${state.id}` }, text: formatNumber(results.median) }),
      ),
      el(
        "div",
        { class: "present-stats__item" },
        el("dt", { text: t("Agreement") }),
        el("dd", {
          dataset: { testid: `consensus-${state.id}` },
          text: formatNumber(results.consensus),
        }),
      ),
    ),
    el("p", {
      class: "band present-band",
      dataset: { band: results.band || "" },
      text: agreementText(results, state, finished),
    }),
    abstain
      ? el("p", {
          class: "present-case__abstain",
          text: tn("{count} person skipped.", "{count} people skipped.", abstain),
        })
      : null,
  );
  return el("article", { class: "present-case", dataset: { case: state.id } }, body);
}

// Several questions at once: one line each, under one heading row.
const SHORT_BAND = {
  strong: () => t("Strong"),
  moderate: () => t("Moderate"),
  weak: () => t("Weak"),
};

function revealedList(cases) {
  const head = el(
    "li",
    { class: "present-case-list__item present-case-list__head", "aria-hidden": "true" },
    el("span", { text: t("Question") }),
    el("span", { text: t("Scores") }),
    el("span", { text: t("Median") }),
    el("span", { text: t("Agreement") }),
  );
  const rows = cases.map((state) => {
    const results = state.results || {};
    const n = results.n || 0;
    const band = results.band || "";
    const cells = n
      ? [
          histogram(results, true),
          el(
            "span",
            { class: "present-case-list__median" },
            el("span", { class: "visually-hidden", text: `${t("Median")} ` }),
            formatNumber(results.median),
          ),
          el(
            "span",
            { class: "band present-band", dataset: { band } },
            el("span", { class: "visually-hidden", text: bandWord(band) }),
            el("span", { "aria-hidden": "true", text: SHORT_BAND[band]?.() ?? "" }),
          ),
        ]
      : [el("span", { class: "present-case-list__empty", text: noScores(state) })];
    return el(
      "li",
      { class: "present-case-list__item", dataset: { case: state.id } },
      el("span", { class: "present-case-list__title", text: titleOf(state.id) }),
      cells,
    );
  });
  return el("ol", { class: "present-case-list" }, head, rows);
}

function renderRecommendation(recommendation, finished, decision) {
  setHidden(dom.recommendation, !recommendation && !finished && !decision);
  setText(
    dom.recommendationTitle,
    finished ? t("Final recommendation") : t("Recommendation so far"),
  );
  if (!recommendation) {
    setText(
      dom.verdict,
      finished ? t("No revealed question has scores, so there is no recommendation.") : "",
    );
    dom.ranking.replaceChildren();
    delete dom.ranking.dataset.key;
    return;
  }
  setText(dom.verdict, verdictSentence(recommendation, titleOf, stackOf));
  const ranking = recommendation.ranking || [];
  const key = JSON.stringify(ranking.map((r) => [r.stack, r.name, r.score]));
  if (dom.ranking.dataset.key === key) return;
  dom.ranking.dataset.key = key;
  const scores = ranking.map((r) => r.score);
  const min = Math.min(0, ...scores);
  const max = Math.max(0, ...scores);
  dom.ranking.replaceChildren(
    ...ranking.map((row, index) => {
      return el(
        "li",
        {
          class:
            index === 0
              ? "present-ranking__item present-ranking__item--top"
              : "present-ranking__item",
          dataset: { stack: row.stack },
        },
        el("span", {
          class: "present-ranking__rank",
          "aria-hidden": "true",
          text: String(index + 1),
        }),
        el("span", { class: "present-ranking__name", text: row.name }),
        scoreTrack(row.score, min, max),
        el("span", { class: "present-ranking__score", text: formatSigned(row.score) }),
      );
    }),
  );
}

// ---------- Countdowns ----------

function setDeadline(node, deadline) {
  if (deadline) node.dataset.deadline = String(deadline);
  else delete node.dataset.deadline;
  setHidden(node, !deadline);
}

function clock(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// Display only: the server closes voting at the deadline, whatever this clock says.
function tick() {
  const nodes = [...root.querySelectorAll(".present-view:not([hidden]) [data-deadline]")];
  const now = Date.now() / 1000;
  for (const node of nodes) {
    const left = Math.max(0, Math.ceil(Number(node.dataset.deadline) - now));
    setText(node, left > 0 ? t("{time} left", { time: clock(left) }) : t("Time's up"));
    node.dataset.urgent = String(left <= 10);
  }
  if (nodes.length && !ticker) ticker = setInterval(tick, 1000);
  else if (!nodes.length) stopTicking();
}

function stopTicking() {
  clearInterval(ticker);
  ticker = 0;
}

// ---------- Start ----------

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") follower.resync();
});
window.addEventListener("offline", () => setConnection("offline"));
window.addEventListener("online", () => {
  if (socket && !socket.connected) setConnection("reconnecting");
});
render();
connect();
